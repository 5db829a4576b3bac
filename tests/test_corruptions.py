"""CIFAR-C corruptions: parameters per severity against independent NumPy/SciPy/Pillow
computations and statistical properties; values per dtype against a float64 reference of each
formula at a fixed seed; determinism, jit and errors."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from actfx._src.data.corruptions import (
    box_resize_matrix,
    gaussian_blur,
    gaussian_noise,
    pixelate_matrix,
)
from actfx.data import CORRUPTION_PARAMS, CORRUPTIONS, corrupt

SEVERITIES = (1, 2, 3, 4, 5)
# Shot and speckle noise compile dear jax.random draws (shot: a Poisson sampler, seconds per
# shape and dtype) and cast to and from the compute dtype exactly as Gaussian noise does:
# their float64, bfloat16 and jit checks run under -m slow (their float32 values, parameters
# and determinism by default, like every corruption's).
HEAVY = ("shot_noise", "speckle_noise")


def names(slow=HEAVY):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in CORRUPTIONS]


@pytest.fixture(scope="module")
def photos():
    """Sixteen 32x32 RGB crops of scikit-learn's bundled sample photos, float32 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    crops = []
    for img in load_sample_images().images:
        for i, j in [
            (100, 100),
            (200, 300),
            (300, 500),
            (50, 400),
            (150, 220),
            (250, 40),
            (320, 150),
            (10, 600),
        ]:
            crops.append(img[i : i + 32, j : j + 32])
    return np.stack(crops).astype(np.float32) / 255.0


def grey(shape=(16, 32, 32, 3), value=0.5):  # the photos' shape: compiles are shared
    return np.full(shape, value, np.float32)


# ------------------------------------------------------------------ noise parameters


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_std_matches_parameter(severity):
    std = CORRUPTION_PARAMS["gaussian_noise"][severity - 1]
    y = np.asarray(corrupt(grey(), "gaussian_noise", severity, seed=severity))
    r = y - 0.5  # 0.5 +- 5 sigma stays inside [0, 1]: clipping is negligible
    # std of the sample std over 98304 draws is ~0.23 %; allow 2 %
    np.testing.assert_allclose(r.std(), std, rtol=0.02)
    assert abs(r.mean()) < 4 * std / np.sqrt(r.size)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_is_poisson_with_rate(severity):
    c = CORRUPTION_PARAMS["shot_noise"][severity - 1]
    y = np.asarray(corrupt(grey(value=0.4), "shot_noise", severity, seed=7), np.float64)
    counts = y * c
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3 * c)  # integer photon counts
    np.testing.assert_allclose(y.mean(), 0.4, rtol=0.01)
    np.testing.assert_allclose(y.var(), 0.4 / c, rtol=0.05)  # Poisson: var = mean


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_fraction_and_values(severity):
    a = CORRUPTION_PARAMS["impulse_noise"][severity - 1]
    y = np.asarray(corrupt(grey(), "impulse_noise", severity, seed=3))
    n = y.size
    salt, pepper = np.mean(y == 1.0), np.mean(y == 0.0)
    assert np.mean((y == 0.5) | (y == 0.0) | (y == 1.0)) == 1.0  # only flips, nothing else
    tol = 5 * np.sqrt(a / 2 / n)
    assert abs(salt - a / 2) < tol and abs(pepper - a / 2) < tol, (salt, pepper, a)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_std_proportional_to_intensity(severity):
    s = CORRUPTION_PARAMS["speckle_noise"][severity - 1]
    half = (8, 32, 32, 3)  # together the photos' shape
    x = np.concatenate([grey(half, value=0.25), grey(half, value=0.5)])
    y = np.asarray(corrupt(x, "speckle_noise", severity, seed=11))
    for i, v in ((slice(0, 8), 0.25), (slice(8, 16), 0.5)):
        np.testing.assert_allclose((y[i] - v).std(), v * s, rtol=0.02)


def test_noise_is_independent_per_channel():
    y = np.asarray(corrupt(grey(), "gaussian_noise", 5, seed=0)) - 0.5
    c = np.corrcoef(y[..., 0].ravel(), y[..., 1].ravel())[0, 1]
    assert abs(c) < 0.03


# ------------------------------------------------------------------ deterministic ops


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_matches_scipy(photos, severity):
    sigma = CORRUPTION_PARAMS["gaussian_blur"][severity - 1]
    y = np.asarray(corrupt(photos, "gaussian_blur", severity, seed=0))
    ref = scipy.ndimage.gaussian_filter(
        photos.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0
    )
    np.testing.assert_allclose(y, ref, atol=2e-6)
    assert y.var() < photos.var()  # low-pass
    np.testing.assert_allclose(y.mean(), photos.mean(), atol=2e-3)  # edges replicate: ~mean


def test_gaussian_blur_preserves_mass_away_from_borders():
    x = np.zeros((1, 21, 21, 1), np.float32)
    x[0, 10, 10, 0] = 1.0
    y = np.asarray(gaussian_blur(x, 5))
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-6)
    # second moment of the 2-D kernel = 2 sigma^2 (up to truncation at 4 sigma)
    ii, jj = np.mgrid[:21, :21] - 10
    np.testing.assert_allclose((y[0, ..., 0] * (ii**2 + jj**2)).sum(), 2 * 1.0**2, rtol=1e-3)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_formula_exact(photos, severity):
    c = CORRUPTION_PARAMS["contrast"][severity - 1]
    m = photos.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    ref = np.clip((photos - m) * c + m, 0, 1)
    y = np.asarray(corrupt(photos, "contrast", severity, seed=0))
    np.testing.assert_allclose(y, ref, atol=1e-6)
    # float32 outputs near 0.5 are rounded to ~3e-8: a near-flat crop's std is exact to ~1e-7
    np.testing.assert_allclose(
        y.std(axis=(1, 2)), c * photos.std(axis=(1, 2)), rtol=1e-4, atol=3e-7
    )


@pytest.mark.parametrize("size", [8, 28, 32, 33])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_matches_pillow_box(severity, size):
    f = CORRUPTION_PARAMS["pixelate"][severity - 1]
    rng = np.random.default_rng(size)
    u8 = rng.integers(0, 256, size=(2, size, size + 3, 3), dtype=np.uint8)
    ref = []
    for im in u8:
        pil = Image.fromarray(im)
        h, w = im.shape[:2]
        small = pil.resize((int(w * f), int(h * f)), Image.BOX)
        ref.append(np.asarray(small.resize((w, h), Image.BOX)))
    ref = np.stack(ref).astype(np.float32) / 255
    y = np.asarray(corrupt(u8.astype(np.float32) / 255, "pixelate", severity, seed=0))
    # Pillow rounds to uint8 after each of its 4 passes
    np.testing.assert_allclose(y, ref, atol=2.5 / 255)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_size_round_trip(severity):
    f = CORRUPTION_PARAMS["pixelate"][severity - 1]
    for size in (28, 32):
        small = int(size * f)
        m = pixelate_matrix(size, f)
        assert m.shape == (size, size)
        np.testing.assert_allclose(m.sum(axis=1), 1.0)
        assert np.linalg.matrix_rank(m) == small  # information of an int(size f) image
    np.testing.assert_array_equal(box_resize_matrix(6, 3) * 2, np.kron(np.eye(3), np.ones((1, 2))))


def _jpeg_reference(x, quality):
    out = []
    for im in np.round(x * 255).astype(np.uint8):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    return np.stack(out).astype(np.float32) / 255


def test_jpeg_quality_error_monotone_and_matches_pillow(photos):
    errors = []
    for s in SEVERITIES:
        y = np.asarray(corrupt(photos, "jpeg_compression", s, seed=0))
        q = CORRUPTION_PARAMS["jpeg_compression"][s - 1]
        np.testing.assert_array_equal(y, _jpeg_reference(photos, q))
        errors.append(np.mean((y - photos) ** 2))
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-5


def test_jpeg_grayscale_matches_pillow_l_mode():
    x = np.random.default_rng(0).random((3, 16, 16, 1)).astype(np.float32)
    y = np.asarray(corrupt(x, "jpeg_compression", 5, seed=0))
    q = CORRUPTION_PARAMS["jpeg_compression"][4]
    ref = _jpeg_reference(x[..., 0], q)[..., None]  # 2-D uint8 arrays: Pillow's "L" mode
    np.testing.assert_array_equal(y, ref)
    assert np.mean(np.abs(y - x)) > 0.01  # quality 40 on noise: visibly lossy


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_severity_monotone_degradation(photos, name):
    err = [
        float(np.mean((np.asarray(corrupt(photos, name, s, seed=0)) - photos) ** 2))
        for s in SEVERITIES
    ]
    assert err[0] > 0
    assert all(a < b for a, b in zip(err, err[1:])), (name, err)


# ------------------------------------------------------------------ generic behaviour


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_shape_dtype_range_and_determinism(photos, name):
    x = photos  # same shape as the other tests: the compiled corruption is reused
    a = corrupt(x, name, 3, seed=5)
    b = corrupt(x, name, 3, seed=5)
    assert a.shape == x.shape and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert float(jnp.min(a)) >= 0.0 and float(jnp.max(a)) <= 1.0
    np.testing.assert_array_equal(a, corrupt(x, name, 3, seed=jax.random.key(5)))
    c = corrupt(x, name, 3, seed=6)
    random = name.endswith("_noise")
    assert (not np.array_equal(a, c)) == random  # only the noises depend on the seed


def np_corrupt(x, name, severity, key):
    """Float64 NumPy reference of each corruption's formula, at ``x``'s compute precision.

    The noises use the same JAX draws as the library (``key``, ``x``'s shape, float64 under
    x64, else float32; a NumPy generator cannot reproduce them), so the check is of the
    formula around the draws: parameter of the severity, additive vs multiplicative,
    clipping. Blur: SciPy; pixelate: the BOX matrices (Pillow-checked above); JPEG: Pillow.
    """
    p = CORRUPTION_PARAMS[name][severity - 1]
    x = np.asarray(x, np.float64)
    ct = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    if name == "gaussian_noise":
        return np.clip(x + p * np.asarray(jax.random.normal(key, x.shape, ct), np.float64), 0, 1)
    if name == "speckle_noise":
        eps = np.asarray(jax.random.normal(key, x.shape, ct), np.float64)
        return np.clip(x + x * p * eps, 0, 1)
    if name == "shot_noise":
        counts = jax.random.poisson(key, jnp.asarray(x * p, ct), x.shape)
        return np.clip(np.asarray(counts, np.float64) / p, 0, 1)
    if name == "impulse_noise":
        k_flip, k_salt = jax.random.split(key)
        flip = np.asarray(jax.random.uniform(k_flip, x.shape)) < p
        salt = np.asarray(jax.random.uniform(k_salt, x.shape)) < 0.5
        return np.where(flip, salt.astype(np.float64), x)
    if name == "gaussian_blur":
        ref = scipy.ndimage.gaussian_filter(x, sigma=(0, p, p, 0), mode="nearest", truncate=4.0)
        return np.clip(ref, 0, 1)
    if name == "contrast":
        m = x.mean(axis=(1, 2), keepdims=True)
        return np.clip((x - m) * p + m, 0, 1)
    if name == "pixelate":
        mh, mw = pixelate_matrix(x.shape[1], p), pixelate_matrix(x.shape[2], p)
        return np.clip(np.einsum("ih,nhwc,jw->nijc", mh, x, mw), 0, 1)
    assert name == "jpeg_compression"
    return _jpeg_reference(x, p).astype(np.float64)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_float32_values_match_reference_formula_at_fixed_seed(photos, name):
    y = corrupt(photos, name, 4, seed=9)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, np_corrupt(photos, name, 4, jax.random.key(9)), atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", names())
def test_float64_computed_in_float64(x64, photos, name):
    """float64 images: same shape and dtype, and values within 1e-12 of the float64
    reference (a float32 computation would be off by ~1e-8)."""
    x = photos[:2].astype(np.float64) * 0.999 + 1e-4  # not float32-representable
    y = corrupt(x, name, 2, seed=3)
    assert y.dtype == jnp.float64 and y.shape == x.shape, name
    np.testing.assert_allclose(
        y, np_corrupt(x, name, 2, jax.random.key(3)), atol=1e-12, rtol=0, err_msg=name
    )


@pytest.mark.parametrize("name", names())
def test_bfloat16_computed_in_float32_and_rounded_once(photos, name):
    """bfloat16 images are corrupted in float32 and rounded to bfloat16 once at the end:
    exactly the float32 corruption of the same values, cast to bfloat16."""
    x = jnp.asarray(photos, jnp.bfloat16)  # photos' shape: the float32 programs are reused
    y = corrupt(x, name, 2, seed=0)
    assert y.dtype == jnp.bfloat16 and y.shape == x.shape
    ref = corrupt(x.astype(jnp.float32), name, 2, seed=0).astype(jnp.bfloat16)
    np.testing.assert_array_equal(y.astype(np.float32), ref.astype(np.float32))


@pytest.mark.parametrize("name", [n for n in names() if n != "jpeg_compression"])
def test_jit_matches_eager(photos, name):
    key = jax.random.key(0)
    fn = CORRUPTIONS[name]
    jitted = jax.jit(lambda x, k: fn(x, 4, key=k))
    np.testing.assert_allclose(jitted(photos, key), fn(photos, 4, key=key), atol=1e-6)


def test_jpeg_refuses_jit(photos):
    with pytest.raises(ValueError, match="outside jax.jit"):
        jax.jit(lambda x: CORRUPTIONS["jpeg_compression"](x, 1))(photos)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, None, "3"])
def test_bad_severity(severity):
    with pytest.raises(ValueError, match="severity must be an int in 1..5"):
        corrupt(grey((1, 4, 4, 1)), "contrast", severity, seed=0)


def test_bad_name():
    with pytest.raises(ValueError, match="name must be one of .*got 'fog'"):
        corrupt(grey((1, 4, 4, 1)), "fog", 1, seed=0)


@pytest.mark.parametrize("value", [1.5, -0.1, np.nan, np.inf])
def test_images_outside_unit_interval(value):
    x = grey((1, 4, 4, 1))
    x[0, 1, 1, 0] = value
    with pytest.raises(ValueError, match=r"images must have finite values in \[0, 1\]"):
        corrupt(x, "gaussian_noise", 1, seed=0)


def test_bad_rank_dtype_channels_seed():
    with pytest.raises(ValueError, match="rank 4"):
        corrupt(np.zeros((4, 4, 3), np.float32), "contrast", 1, seed=0)
    with pytest.raises(ValueError, match="floating dtype"):
        corrupt(np.zeros((1, 4, 4, 3), np.uint8), "contrast", 1, seed=0)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        corrupt(np.zeros((1, 8, 8, 2), np.float32), "jpeg_compression", 1, seed=0)
    with pytest.raises(ValueError, match="seed must be an int or a jax PRNG key"):
        corrupt(grey((1, 4, 4, 1)), "gaussian_noise", 1, seed=1.5)
    with pytest.raises(TypeError):
        gaussian_noise(grey((1, 4, 4, 1)), 1)  # key is required for random corruptions
