"""CIFAR-10-C / CIFAR-100-C loader, tested on small fixture files in the released layout."""

import numpy as np
import pytest

from actfx.data import CIFAR_C_CORRUPTIONS, load_cifar_c

N = 6  # images per severity in the fixture (10000 in the real files)


@pytest.fixture
def cifar_c_dir(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for name in ("gaussian_noise", "contrast"):
        x = rng.integers(0, 256, size=(5 * N, 32, 32, 3), dtype=np.uint8)
        np.save(tmp_path / f"{name}.npy", x)
        truth[name] = x
    labels = np.tile(rng.integers(0, 10, size=N), 5)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path, truth, labels


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_severity_slices(cifar_c_dir, severity):
    root, truth, labels = cifar_c_dir
    x, y = load_cifar_c(root, "gaussian_noise", severity)
    sl = slice((severity - 1) * N, severity * N)
    assert x.shape == (N, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x, truth["gaussian_noise"][sl].astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels[sl])
    x8, _ = load_cifar_c(str(root), "gaussian_noise", severity, dtype=np.uint8)
    np.testing.assert_array_equal(x8, truth["gaussian_noise"][sl])


def test_all_severities_and_short_labels(cifar_c_dir):
    root, truth, labels = cifar_c_dir
    x, y = load_cifar_c(root, "contrast", dtype=np.float64)
    assert x.shape == (5 * N, 32, 32, 3) and x.dtype == np.float64
    np.testing.assert_array_equal(y, labels)
    np.save(root / "labels.npy", labels[:N])  # CIFAR-100-C style single copy is tiled
    _, y2 = load_cifar_c(root, "contrast", 4)
    np.testing.assert_array_equal(y2, labels[3 * N : 4 * N])


def test_missing_files_are_named(cifar_c_dir, tmp_path):
    root, _, _ = cifar_c_dir
    with pytest.raises(FileNotFoundError, match=r"pixelate\.npy"):
        load_cifar_c(root, "pixelate", 1)
    (root / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels\.npy"):
        load_cifar_c(root, "contrast", 1)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_cifar_c(tmp_path / "nope", "contrast", 1)


def test_bad_arguments_and_malformed_files(cifar_c_dir):
    root, _, labels = cifar_c_dir
    with pytest.raises(ValueError, match="corruption must be one of"):
        load_cifar_c(root, "rain", 1)
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match="severity must be an int in 1..5"):
            load_cifar_c(root, "contrast", bad)
    with pytest.raises(ValueError, match="dtype must be uint8 or a float dtype"):
        load_cifar_c(root, "contrast", 1, dtype=np.int32)
    np.save(root / "snow.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="5 severities x n images, got 7"):
        load_cifar_c(root, "snow", 1)
    np.save(root / "fog.npy", np.zeros((10, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="should hold uint8 images"):
        load_cifar_c(root, "fog", 1)
    (root / "frost.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match="could not read CIFAR-C file"):
        load_cifar_c(root, "frost", 1)
    np.save(root / "labels.npy", labels[:4])
    with pytest.raises(ValueError, match="labels.*should have 30"):
        load_cifar_c(root, "contrast", 1)


def test_names():
    assert len(CIFAR_C_CORRUPTIONS) == 19 and len(set(CIFAR_C_CORRUPTIONS)) == 19


@pytest.mark.parametrize(
    "bad, match",
    [
        (99, r"label 7 is 99 \(out of range"),
        (-3, r"label 7 is -3 \(out of range"),
        (2.7, r"label 7 is 2.7 \(not an integer\)"),
        (np.nan, r"label 7 is nan \(not finite\)"),
        (np.inf, r"label 7 is inf \(not finite\)"),
    ],
)
def test_bad_labels_name_file_and_value(cifar_c_dir, bad, match):
    """issue 12: 99, -3, 2.7 (-> 2) and NaN (-> -2147483648) used to load silently."""
    root, _, labels = cifar_c_dir
    y = labels.astype(np.float64)
    y[7] = bad
    np.save(root / "labels.npy", y if isinstance(bad, float) else y.astype(np.int64))
    with pytest.raises(ValueError, match=r"labels\.npy.*whole numbers in \[0, 10\); " + match):
        load_cifar_c(root, "contrast", 1)


def test_num_classes_bound_and_folder_inference(cifar_c_dir, tmp_path):
    root, _, labels = cifar_c_dir
    y = labels.copy()
    y[0] = 57
    np.save(root / "labels.npy", y)
    with pytest.raises(ValueError, match="label 0 is 57"):
        load_cifar_c(root, "contrast", 1)  # a CIFAR-10-C label bound by default
    _, got = load_cifar_c(root, "contrast", 1, num_classes=100)
    assert got[0] == 57 and got.dtype == np.int32
    c100 = tmp_path / "CIFAR-100-C"
    c100.mkdir()
    np.save(c100 / "contrast.npy", np.zeros((5 * N, 32, 32, 3), np.uint8))
    np.save(c100 / "labels.npy", y.astype(np.float32))  # whole floats are fine
    assert load_cifar_c(c100, "contrast", 1)[1][0] == 57
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            load_cifar_c(root, "contrast", 1, num_classes=bad)


def test_truncated_and_wrong_label_dtype(cifar_c_dir):
    root, truth, labels = cifar_c_dir
    path = root / "gaussian_noise.npy"
    path.write_bytes(path.read_bytes()[:5000])  # cut inside the data
    with pytest.raises(ValueError, match=r"could not read CIFAR-C file .*gaussian_noise\.npy"):
        load_cifar_c(root, "gaussian_noise", 1)
    np.save(root / "labels.npy", np.array(["a"] * (5 * N)))
    with pytest.raises(ValueError, match=r"labels\.npy.*labels must be integers, got dtype"):
        load_cifar_c(root, "contrast", 1)
