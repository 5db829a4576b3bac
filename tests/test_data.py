"""Tests for actfx.data: offline datasets, stratified split, crop+flip augmentation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actfx.data import crop_flip, load_digits, load_mnist5k, random_crop_flip, stratified_split


def test_load_digits_shapes_range_and_labels():
    ds = load_digits(seed=0)
    assert ds.x_train.shape[1:] == (8, 8, 1) and ds.x_train.dtype == np.float32
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert ds.x_train.max() == 1.0  # 16/16 occurs
    assert ds.y_train.dtype == np.int32 and set(np.unique(ds.y_test)) == set(range(10))
    assert ds.num_classes == 10 and ds.image_shape == (8, 8, 1)


def test_load_digits_matches_sklearn_source():
    from sklearn.datasets import load_digits as sk

    d = sk()
    ds = load_digits(seed=3)
    tr, te = stratified_split(d.target, 0.2, 3)
    np.testing.assert_array_equal(ds.x_test[..., 0] * 16, d.images[te])
    np.testing.assert_array_equal(ds.y_train, d.target[tr])


def test_digits_split_is_seeded():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, c.y_test) or not np.array_equal(a.x_test, c.x_test)


def test_stratified_split_properties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=203)
    tr, te = stratified_split(labels, 0.25, seed=5)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(203))
    for c in range(4):
        n_c = np.sum(labels == c)
        assert np.sum(labels[te] == c) == round(0.25 * n_c)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_stratified_split_rejects_bad_fraction(frac):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.zeros(10), frac, 0)


def test_load_mnist5k():
    ds = load_mnist5k(seed=0)
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 100))


def _np_crop_flip(images, dy, dx, flip, pad):
    n, h, w, _ = images.shape
    p = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.stack([p[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return np.stack([o[:, ::-1] if f else o for o, f in zip(out, flip)])


@pytest.mark.parametrize("pad", [0, 1, 4])
def test_crop_flip_matches_numpy(pad):
    rng = np.random.default_rng(pad)
    x = rng.normal(size=(6, 7, 5, 3)).astype(np.float32)
    dy = rng.integers(0, 2 * pad + 1, 6)
    dx = rng.integers(0, 2 * pad + 1, 6)
    fl = rng.random(6) < 0.5
    got = jax.jit(crop_flip, static_argnames="pad")(x, dy, dx, fl, pad=pad)
    np.testing.assert_array_equal(np.asarray(got), _np_crop_flip(x, dy, dx, fl, pad))


def test_crop_flip_identity():
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(crop_flip(x, [2, 2, 2], [2, 2, 2], [False] * 3, pad=2), x)


def test_random_crop_flip_windows_and_determinism():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6, 6, 1)).astype(np.float32)
    key = jax.random.key(7)
    a = np.asarray(random_crop_flip(key, x, pad=2))
    np.testing.assert_array_equal(a, np.asarray(random_crop_flip(key, x, pad=2)))
    # every output is one of the 5*5*2 windows of its padded input, found by brute force
    flips = 0
    for i in range(64):
        hits = [
            (oy, ox, f)
            for oy in range(5)
            for ox in range(5)
            for f in (False, True)
            if np.array_equal(a[i : i + 1], _np_crop_flip(x[i : i + 1], [oy], [ox], [f], 2))
        ]
        assert hits, f"sample {i} is not a crop/flip of its input"
        flips += hits[0][2]
    assert 16 <= flips <= 48  # p = 1/2, 64 draws: far outside 6 sigma is a bug
    np.testing.assert_array_equal(np.asarray(random_crop_flip(key, x, pad=0, flip=False)), x)


def test_augment_errors():
    with pytest.raises(ValueError, match="rank 4"):
        random_crop_flip(jax.random.key(0), jnp.ones((4, 4, 1)))
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(jax.random.key(0), jnp.ones((1, 4, 4, 1)), pad=-1)


# ------------------------------------------------ optional packages: lazy, with an install hint


@pytest.mark.parametrize(
    "module, call",
    [
        ("sklearn", lambda: __import__("actfx._src.data.digits", fromlist=["x"]).load_digits()),
        (
            "skimage",
            lambda: __import__("actfx._src.data.denoising", fromlist=["x"]).load_offline_images(
                ["camera"]
            ),
        ),
        ("PIL", lambda: __import__("actfx._src.data._imageio", fromlist=["x"]).read_image("x.png")),
    ],
)
def test_missing_optional_package_names_the_extra(monkeypatch, module, call):
    """issue 11: a base install failed with a bare "No module named sklearn"."""
    import sys

    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "actfx\[data\]"'):
        call()


def test_data_package_imports_no_optional_package():
    """Importing actfx.data must not import scikit-learn/scikit-image/mlxtend."""
    import subprocess
    import sys

    code = (
        "import sys, actfx.data; "
        "print(sorted(m for m in ('sklearn', 'skimage', 'mlxtend') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_split_arrays_checks_labels():
    from actfx._src.data.dataset import split_arrays

    with pytest.raises(ValueError, match=r"toy: labels must be whole numbers in \[0, 3\)"):
        split_arrays(
            np.zeros((4, 1, 1, 1)),
            np.array([0, 1, 2, 3]),
            test_fraction=0.5,
            seed=0,
            num_classes=3,
            name="toy",
        )


def test_load_png_images_reads_sixteen_bit_gray(tmp_path):
    """issue 12: load_png_images returned ~all-white (0.995) for a 16-bit gray PNG."""
    from PIL import Image

    from actfx.data import load_png_images

    g = np.random.default_rng(5).integers(0, 65536, size=(6, 7), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")  # Pillow writes mode I;16
    x = load_png_images([str(tmp_path / "g16.png")])
    assert x.shape == (1, 6, 7, 3)
    for c in range(3):
        np.testing.assert_allclose(x[0, ..., c], g / 65535.0, atol=1e-6)
    (tmp_path / "cut.png").write_bytes((tmp_path / "g16.png").read_bytes()[:30])
    with pytest.raises(ValueError, match="cut.png"):
        load_png_images([str(tmp_path / "cut.png")])
