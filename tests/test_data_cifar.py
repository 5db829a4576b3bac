"""CIFAR-10/100 pickle loaders, tested on small fixture files written in the official layout."""

import os
import pickle

import numpy as np
import pytest

from actfx.data import load_cifar10, load_cifar100


def _encode(images):
    """NHWC uint8 -> official rows [R plane, G plane, B plane], each 32x32 row-major."""
    return np.stack([np.concatenate([im[..., c].ravel() for c in range(3)]) for im in images])


def _write(path, payload):
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=2)


@pytest.fixture
def cifar10_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    truth = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = 4 if name != "test_batch" else 3
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        _write(
            d / name,
            {
                b"batch_label": b"x",
                b"data": _encode(imgs),
                b"labels": labels,
                b"filenames": [b"f"] * n,
            },
        )
        truth[name] = (imgs, np.array(labels))
    return tmp_path, truth


def test_cifar10_layout_and_scaling(cifar10_dir):
    root, truth = cifar10_dir
    ds = load_cifar10(root)  # parent dir of cifar-10-batches-py
    x_train = np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)])
    y_train = np.concatenate([truth[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train, x_train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, truth["test_batch"][1])
    assert ds.num_classes == 10 and ds.name == "cifar10"
    raw = load_cifar10(root / "cifar-10-batches-py", dtype=np.uint8)  # the folder itself
    np.testing.assert_array_equal(raw.x_test, truth["test_batch"][0])


def test_cifar_channel_order_by_hand(tmp_path):
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0] = 10  # R of pixel (0, 0)
    row[0, 1024 + 33] = 20  # G of pixel (1, 1)
    row[0, 2048 + 31] = 30  # B of pixel (0, 31)
    for name in ("train", "test"):
        _write(tmp_path / name, {b"data": row, b"fine_labels": [7], b"coarse_labels": [3]})
    ds = load_cifar100(tmp_path, dtype=np.uint8)
    img = ds.x_train[0]
    assert img[0, 0, 0] == 10 and img[1, 1, 1] == 20 and img[0, 31, 2] == 30
    assert img.sum() == 60
    assert ds.y_train.tolist() == [7] and ds.num_classes == 100
    coarse = load_cifar100(tmp_path, label_mode="coarse")
    assert coarse.y_test.tolist() == [3] and coarse.num_classes == 20


def test_missing_files_are_named(cifar10_dir, tmp_path):
    root, _ = cifar10_dir
    os.remove(root / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(root)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_cifar10(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="'train'|train"):
        load_cifar100(empty)


@pytest.mark.parametrize(
    "payload,match",
    [
        (b"not a pickle", "could not unpickle"),
        ({b"labels": [1]}, "'data'"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, r"\(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 entries"),
        (
            {b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]},
            r"test_batch.*whole numbers in \[0, 10\); label 0 is 12",
        ),
        # issue 12: these were silently accepted (99, -3), truncated (2.7 -> 2) or wrapped (NaN)
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 99]},
            r"test_batch.*label 1 is 99",
        ),
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [-3, 1]},
            r"test_batch.*label 0 is -3",
        ),
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2.7]},
            r"test_batch.*label 1 is 2.7 \(not an integer\)",
        ),
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [float("nan"), 1]},
            r"test_batch.*label 0 is nan \(not finite\)",
        ),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["cat"]}, r"test_batch.*dtype"),
        (
            {b"data": np.zeros((1, 3072), np.float32), b"labels": [1]},
            r"uint8 of shape",
        ),  # wrong dtype
    ],
)
def test_malformed_files_raise_value_error(cifar10_dir, payload, match):
    root, _ = cifar10_dir
    path = root / "cifar-10-batches-py" / "test_batch"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        _write(path, payload)
    with pytest.raises(ValueError, match=match):
        load_cifar10(root)


def test_truncated_pickle_is_named(cifar10_dir):
    root, _ = cifar10_dir
    path = root / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="could not unpickle.*data_batch_2"):
        load_cifar10(root)


def test_whole_float_labels_are_accepted(cifar10_dir):
    root, _ = cifar10_dir
    _write(
        root / "cifar-10-batches-py" / "test_batch",
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([3.0, 9.0])},
    )
    ds = load_cifar10(root)
    assert ds.y_test.tolist() == [3, 9] and ds.y_test.dtype == np.int32


def test_cifar100_label_range_follows_label_mode(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for f in ("train", "test"):
        _write(
            d / f,
            {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [57], b"coarse_labels": [19]},
        )
    assert load_cifar100(tmp_path).y_train.tolist() == [57]
    _write(
        d / "test",
        {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [57], b"coarse_labels": [20]},
    )
    with pytest.raises(ValueError, match=r"test'.*coarse_labels.*\[0, 20\); label 0 is 20"):
        load_cifar100(tmp_path, label_mode="coarse")


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="label_mode"):
        load_cifar100(tmp_path, label_mode="medium")


def test_bad_dtype(cifar10_dir):
    with pytest.raises(ValueError, match="dtype"):
        load_cifar10(cifar10_dir[0], dtype=np.int32)
