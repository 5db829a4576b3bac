"""Issue 22: data loaders and shape-bias scoring refuse degenerate inputs with an error
naming the argument or file (empty files/splits, clamped crop offsets, mis-shaped or NaN
scores, decompression bombs, NaN/inf pixels). NumPy and tiny arrays only (no jit)."""

import pickle

import jax.numpy as jnp
import numpy as np
import pytest

PIL_Image = pytest.importorskip("PIL.Image")

from actfx.data import crop_flip, load_cifar10, stratified_split
from actfx.metrics import geirhos_shape_bias, predict_classes

# ------------------------------------------------------------ CIFAR file with 0 rows


def _cifar_dir(tmp_path, empty: str):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = 0 if name == empty else 2
        payload = {b"data": np.zeros((n, 3072), np.uint8), b"labels": [1] * n}
        with open(d / name, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    return tmp_path


@pytest.mark.parametrize("empty", ["data_batch_3", "test_batch"])
def test_cifar_file_with_no_rows_is_refused(tmp_path, empty):
    # before: loaded, an empty test set when test_batch had 0 rows
    root = _cifar_dir(tmp_path, empty)
    with pytest.raises(ValueError, match=rf"{empty}.*no images"):
        load_cifar10(root)


# ------------------------------------------------------------ stratified split


@pytest.mark.parametrize(
    "labels,frac,side",
    [
        ([0, 1, 2], 0.4, "test"),  # round(0.4 * 1) = 0 in every class
        ([0, 0, 1, 1], 0.9, "train"),  # round(0.9 * 2) = 2 in every class
        ([0] * 5 + [1] * 7, 0.9999, "train"),
    ],
)
def test_stratified_split_never_returns_an_empty_side(labels, frac, side):
    # before: returned an empty train or test index array
    with pytest.raises(ValueError, match=rf"test_fraction=.*{side} set empty"):
        stratified_split(np.array(labels), frac, seed=0)


@pytest.mark.parametrize(
    "kw,arg",
    [({"test_fraction": "0.5"}, "test_fraction"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed")],
)
def test_stratified_split_checks_arguments(kw, arg):
    args = {"labels": np.array([0, 0, 1, 1]), "test_fraction": 0.5, "seed": 0} | kw
    with pytest.raises(ValueError, match=arg):
        stratified_split(**args)


def test_load_digits_tiny_train_set_names_test_fraction():
    pytest.importorskip("sklearn")
    from actfx.data import load_digits

    # before: a dataset with 0 training images
    with pytest.raises(ValueError, match="test_fraction=0.9999"):
        load_digits(test_fraction=0.9999)


# ------------------------------------------------------------ crop offsets


@pytest.mark.parametrize("dy,dx", [([-1], [0]), ([0], [3]), ([5], [1])])
def test_crop_flip_offsets_outside_range_are_refused(dy, dx):
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    # before: dynamic_slice clamped the offset into [0, 2*pad] silently
    with pytest.raises(ValueError, match=r"d[yx] must lie in \[0, 2\*pad\] = \[0, 2\]"):
        crop_flip(x, jnp.array(dy), jnp.array(dx), jnp.array([False]), pad=1)


def test_crop_flip_checks_offset_shapes():
    x = jnp.zeros((2, 2, 2, 1))
    with pytest.raises(ValueError, match=r"dy must have shape \(2,\)"):
        crop_flip(x, jnp.array([0]), jnp.array([0, 0]), jnp.array([False, False]), pad=1)


def test_crop_flip_in_range_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    dy, dx, fl = np.array([0, 2, 4]), np.array([4, 0, 3]), np.array([True, False, True])
    p = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    want = np.stack([p[i, dy[i] : dy[i] + 4, dx[i] : dx[i] + 5] for i in range(3)])
    want[fl] = want[fl][:, :, ::-1]
    np.testing.assert_array_equal(np.asarray(crop_flip(x, dy, dx, fl, pad=2)), want)


# ------------------------------------------------------------ Geirhos scoring

IMAGES = np.zeros((3, 2, 2, 3), np.float32)


@pytest.mark.parametrize(
    "scores,match",
    [
        (np.zeros((3, 3)), r"shape \(3, 3\) for 16 classes"),  # before: argmax over 3 columns
        (np.full((3, 16), np.nan), "NaN or infinite scores"),  # before: argmax of NaN -> 0
        (np.array([0, 16, 2]), r"decision 16 .*\[0, 16\)"),
        (np.array([0.0, 1.5, 2.0]), "not whole numbers"),
    ],
)
def test_predict_classes_checks_scores(scores, match):
    with pytest.raises(ValueError, match=match):
        predict_classes(lambda x: scores[: len(x)], IMAGES, num_classes=16)


@pytest.fixture
def tiny_cue_conflict(tmp_path):
    for s, t in (("cat", "dog"), ("dog", "cat")):
        (tmp_path / s).mkdir()
        PIL_Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / s / f"{s}1-{t}1.png")
    return tmp_path


@pytest.mark.parametrize(
    "classify,match",
    [
        (lambda x: np.zeros((len(x), 3)), r"for 2 classes"),
        (lambda x: np.full((len(x), 2), np.nan), "NaN"),
    ],
)
def test_geirhos_shape_bias_checks_scores(tiny_cue_conflict, classify, match):
    with pytest.raises(ValueError, match=match):
        geirhos_shape_bias(classify, tiny_cue_conflict, classes=("cat", "dog"))


def test_geirhos_shape_bias_two_classes(tiny_cue_conflict):
    # decision = shape class for cat1-dog1, texture class for dog1-cat1: bias 1/2
    out = geirhos_shape_bias(lambda x: np.array([0, 0]), tiny_cue_conflict, classes=("cat", "dog"))
    assert (out["shape"], out["texture"], out["shape_bias"]) == (1, 1, 0.5)


# ------------------------------------------------------------ image files


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    from actfx._src.data._imageio import read_image

    path = tmp_path / "bomb.png"
    PIL_Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    monkeypatch.setattr(PIL_Image, "MAX_IMAGE_PIXELS", 100)  # 256 px > 2 * 100: a "bomb"
    # before: PIL's DecompressionBombError without the file name
    with pytest.raises(ValueError, match=r"bomb\.png.*decompression"):
        read_image(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_image_with_non_finite_pixels_names_the_file(tmp_path, bad):
    from actfx._src.data._imageio import read_image

    a = np.full((3, 3), 0.5, np.float32)
    a[1, 2] = bad
    path = tmp_path / "float.tif"
    PIL_Image.fromarray(a, "F").save(path)
    # before: NaN (or 1.0 / 0.0 for +-inf) pixels
    with pytest.raises(ValueError, match=r"float\.tif.*NaN or infinite"):
        read_image(path, mode="gray")
