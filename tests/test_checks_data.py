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


# ------------------------------------------------------------ other sizes, scales, shapes


def _psnr(**kw):
    from actfx.metrics import psnr

    args = {"clean": np.zeros(4), "estimate": np.full(4, 0.1), "data_range": 1.0} | kw
    return psnr(**args)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"data_range": 0.0}, "data_range"),  # before: bare "math domain error"
        ({"data_range": -1.0}, "data_range"),  # before: 20 dB as for +1
        ({"estimate": np.zeros((4, 1))}, "one shape"),  # before: broadcast to (4, 4)
        ({"clean": np.zeros(0), "estimate": np.zeros(0)}, "non-empty"),  # before: NaN
        ({"estimate": np.array([0.0, np.nan, 0.0, 0.0])}, "estimate has NaN"),  # before: NaN
    ],
)
def test_psnr_checks_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _psnr(**kw)


def test_psnr_matches_float64_reference():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 5)), rng.random((3, 5))
    want = 10 * np.log10(4.0 / np.mean((a - b) ** 2))
    assert np.isclose(_psnr(clean=a, estimate=b, data_range=2.0), want, rtol=1e-12)


def test_patch_helpers_check_sizes():
    from actfx.data import extract_patches, fold_patches, random_patches

    img = jnp.ones((4, 4))
    for size, stride, arg in ((0, 1, "size"), (2, 0, "stride"), (True, 1, "size")):
        # before: an XLA verifier error (0) or size=True taken as 1
        with pytest.raises(ValueError, match=arg):
            extract_patches(img, size, stride)
    with pytest.raises(ValueError, match=r"patches must have shape \(4, 4\)"):
        fold_patches(jnp.ones((9, 4)), (3, 3), 2)  # before: a VJP type error
    rng = np.random.default_rng(0)
    for images, num, r, arg in (
        ([np.zeros((9, 9))], -1, rng, "num"),  # before: numpy "negative dimensions"
        ([np.zeros((9, 9))], 1, 0, "rng"),  # before: AttributeError
        ([np.zeros((9, 9, 3))], 1, rng, r"images\[0\]"),  # before: unpacking error
    ):
        with pytest.raises(ValueError, match=arg):
            random_patches(images, 2, num, r)


@pytest.mark.parametrize(
    "call,arg",
    [
        (lambda C: C.gaussian_kernel_1d(0.0), "sigma"),  # before: [nan]
        (lambda C: C.gaussian_kernel_1d(-1.0), "sigma"),  # before: an empty kernel
        (lambda C: C.gaussian_kernel_1d(1.0, 0.0), "truncate"),
        (lambda C: C.pixelate_matrix(8, 0.0), "factor"),  # before: an 8x8 mean
        (lambda C: C.pixelate_matrix(8, 2.0), "factor"),  # before: the identity
        (lambda C: C.box_resize_matrix(3, 0), "out_size"),
    ],
)
def test_corruption_helpers_check_scales(call, arg):
    from actfx._src.data import corruptions as C

    with pytest.raises(ValueError, match=arg):
        call(C)


def test_noise_sigma_must_broadcast_to_x():
    import jax

    from actfx.data import add_gaussian_noise

    with pytest.raises(ValueError, match="sigma of shape"):  # before: a JAX TypeError
        add_gaussian_noise(jnp.zeros(2), jnp.ones(3), jax.random.key(0))


def test_scores_and_decisions_must_be_class_indices():
    from actfx.metrics import imagenet_to_geirhos16, negative_log_likelihood, shape_bias_counts

    # before: NaN / 0.5 decisions were counted as "other"
    with pytest.raises(ValueError, match="pred must hold class indices"):
        shape_bias_counts(np.array([np.nan, 1.0]), [0, 1], [1, 0])
    with pytest.raises(ValueError, match="probs must be finite"):  # before: NaN scores
        imagenet_to_geirhos16(np.full((1, 1000), np.nan))
    # a NumPy float eps is a float (before: refused)
    assert negative_log_likelihood([0.5], [0], np.float32(1e-6)) == pytest.approx(np.log(2))


@pytest.mark.parametrize(
    "kw,arg",
    [
        ({"supersample": 0}, "supersample"),  # before: an all-NaN mask
        ({"center": (np.nan, 0.5)}, "center"),  # before: a mask of zeros
        ({"angle": np.inf}, "angle"),
        ({"scale": np.inf}, "scale"),
        ({"flip": "no"}, "flip"),  # before: flipped
    ],
)
def test_shape_mask_checks_geometry(kw, arg):
    from actfx.data import shape_mask

    with pytest.raises(ValueError, match=arg):
        shape_mask("disc", 8, **kw)
