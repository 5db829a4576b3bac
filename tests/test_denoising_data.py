"""Tests for actfx._src.data.denoising: offline images, PNG folder / BSD loaders, patches, PSNR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.io
import skimage.metrics

from actfx.data import (
    OFFLINE_TEST,
    OFFLINE_TRAIN,
    add_gaussian_noise,
    extract_patches,
    fold_patches,
    load_bsd,
    load_offline_images,
    load_png_folder,
    random_patches,
    to_gray_float,
)
from actfx.metrics import psnr


def _write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        skimage.io.imsave(folder / f"img_{i:02d}.png", img, check_contrast=False)


def _fixture_images(rng, n=3):
    gray = [rng.integers(0, 256, size=(20 + i, 24), dtype=np.uint8) for i in range(n)]
    rgb = rng.integers(0, 256, size=(18, 22, 3), dtype=np.uint8)
    return gray, rgb


def test_to_gray_float():
    g = np.array([[0, 255], [51, 102]], np.uint8)
    np.testing.assert_allclose(to_gray_float(g), g / 255.0, rtol=1e-6)
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0, 0] = rgb[0, 1, 1] = rgb[0, 2, 2] = 255
    np.testing.assert_allclose(to_gray_float(rgb)[0], [0.2125, 0.7154, 0.0721], rtol=1e-5)
    assert to_gray_float(np.ones((2, 2), bool)).dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        to_gray_float(np.zeros((2, 2, 2, 2)))


def test_offline_images_load_without_network():
    imgs = load_offline_images(OFFLINE_TEST + OFFLINE_TRAIN)
    assert len(imgs) == len(OFFLINE_TEST) + len(OFFLINE_TRAIN)
    for im in imgs:
        assert im.ndim == 2 and im.dtype == np.float32 and min(im.shape) >= 256
        assert 0.0 <= im.min() and im.max() <= 1.0 and im.std() > 0.02
    assert not set(OFFLINE_TEST) & set(OFFLINE_TRAIN)
    with pytest.raises(ValueError, match="names"):
        load_offline_images(["not_an_image"])


def test_png_folder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    gray, rgb = _fixture_images(rng)
    _write_pngs(tmp_path / "set", gray + [rgb])
    imgs = load_png_folder(tmp_path / "set")
    assert len(imgs) == 4
    for got, want in zip(imgs, gray):
        np.testing.assert_allclose(got, want / 255.0, atol=1e-6)
    np.testing.assert_allclose(imgs[3], to_gray_float(rgb), atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio's plugin probing
def test_png_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_png_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"\*\.png"):
        load_png_folder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_png_folder(tmp_path / "bad")


def test_load_bsd(tmp_path):
    rng = np.random.default_rng(1)
    gray, _ = _fixture_images(rng)
    with pytest.raises(FileNotFoundError, match="BSD400"):
        load_bsd(tmp_path / "nowhere")
    _write_pngs(tmp_path / "BSD400", gray[:2])
    with pytest.raises(FileNotFoundError, match="BSD68"):
        load_bsd(tmp_path)
    _write_pngs(tmp_path / "BSD68", gray[2:])
    train, test = load_bsd(tmp_path)
    assert len(train) == 2 and len(test) == 1
    np.testing.assert_allclose(test[0], gray[2] / 255.0, atol=1e-6)


def test_random_patches_are_windows_of_the_images():
    img = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)  # unique values locate a patch
    small = np.zeros((4, 4), np.float32)  # too small: never drawn
    p = random_patches([img, small], 6, 50, np.random.default_rng(2))
    assert p.shape == (50, 6, 6)
    for patch in p:
        r, c = divmod(int(patch[0, 0]), 40)
        np.testing.assert_array_equal(patch, img[r : r + 6, c : c + 6])
    with pytest.raises(ValueError, match="no image"):
        random_patches([small], 6, 1, np.random.default_rng(0))


def test_extract_and_fold_patches_against_numpy():
    img = jax.random.normal(jax.random.key(0), (11, 9))
    for stride in (1, 2, 3):
        p = np.asarray(extract_patches(img, 4, stride))
        ref = [
            np.asarray(img)[r : r + 4, c : c + 4].ravel()
            for r in range(0, 8, stride)
            for c in range(0, 6, stride)
        ]
        np.testing.assert_allclose(p, np.stack(ref), atol=1e-6)
        covered = np.zeros((11, 9), bool)
        for r in range(0, 8, stride):
            for c in range(0, 6, stride):
                covered[r : r + 4, c : c + 4] = True
        folded = np.asarray(fold_patches(p, (11, 9), 4, stride))
        np.testing.assert_allclose(folded[covered], np.asarray(img)[covered], atol=1e-5)
        assert np.all(folded[~covered] == 0)
    # Folding is linear in the patches.
    p = np.asarray(extract_patches(img, 2, 1))
    np.testing.assert_allclose(fold_patches(2.0 * p, (11, 9), 2), 2.0 * img, atol=1e-5)
    with pytest.raises(ValueError, match="image"):
        extract_patches(jnp.ones((3, 3)), 4)


def test_psnr_matches_skimage_and_noise_level():
    rng = np.random.default_rng(3)
    clean = rng.uniform(size=(64, 64))
    noisy = np.asarray(
        add_gaussian_noise(jnp.asarray(clean, jnp.float32), 25 / 255, jax.random.key(0))
    )
    ref = skimage.metrics.peak_signal_noise_ratio(clean, noisy.astype(np.float64), data_range=1.0)
    assert psnr(clean, noisy) == pytest.approx(ref, rel=1e-9)
    assert np.std(noisy - clean) == pytest.approx(25 / 255, rel=0.05)
    assert psnr(clean, clean) == float("inf")


# ----------------------------------------------------------------- bit depth and file faults


def _write_png16(path, arr):
    """A real 16-bit PNG (gray or RGB) written byte by byte (Pillow cannot write RGB16)."""
    import struct
    import zlib

    arr = np.asarray(arr, np.uint16)
    h, w = arr.shape[:2]
    ctype = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_sixteen_bit_pngs_keep_their_scale(tmp_path):
    """issue 12: a 16-bit PNG loaded as all-white (values > 255 clipped after / 255)."""
    from PIL import Image

    rng = np.random.default_rng(4)
    gray = rng.integers(0, 65536, size=(12, 10), dtype=np.uint16)
    rgb = rng.integers(0, 65536, size=(9, 11, 3), dtype=np.uint16)
    (tmp_path / "set").mkdir()
    _write_png16(tmp_path / "set" / "a_gray16.png", gray)
    _write_png16(tmp_path / "set" / "b_rgb16.png", rgb)
    assert Image.open(tmp_path / "set" / "a_gray16.png").mode.startswith("I")
    g, c = load_png_folder(tmp_path / "set")
    np.testing.assert_allclose(g, gray / 65535.0, atol=1e-6)  # exact 16-bit precision
    assert 0.4 < g.mean() < 0.6  # not white
    # Pillow reads 16-bit colour PNGs at 8-bit precision: error <= 1/255 before the luma
    want = (rgb / 65535.0) @ np.array([0.2125, 0.7154, 0.0721])
    np.testing.assert_allclose(c, want, atol=1.0 / 255 + 1e-6)
    assert 0.3 < c.mean() < 0.7


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.int32])
def test_to_gray_float_scales_any_integer_dtype_by_its_max(dtype):
    top = np.iinfo(dtype).max
    g = np.array([[0, top // 2], [top, top // 4]], dtype)
    np.testing.assert_allclose(to_gray_float(g), g / float(top), rtol=1e-6)
    rgb = np.stack([g] * 3, axis=-1)  # colour uint16 used to come out all white
    np.testing.assert_allclose(to_gray_float(rgb), g / float(top), rtol=1e-5)
    if np.issubdtype(dtype, np.signedinteger):
        assert to_gray_float(np.array([[-5, 1]], dtype))[0, 0] == 0.0  # negatives clip


def test_to_gray_float_rejects_bad_dtypes_and_values():
    with pytest.raises(TypeError, match="dtype"):
        to_gray_float(np.zeros((2, 2), complex))
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_gray_float(np.array([[0.5, np.nan]]))


def test_truncated_and_mislabelled_pngs_are_named(tmp_path):
    src = tmp_path / "ok.png"
    skimage.io.imsave(src, np.full((16, 16), 7, np.uint8), check_contrast=False)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "cut.png").write_bytes(src.read_bytes()[:40])  # header, no data
    with pytest.raises(ValueError, match="cut.png"):
        load_png_folder(tmp_path / "t")
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "text.png").write_text("hello")  # not an image at all
    with pytest.raises(ValueError, match="text.png"):
        load_png_folder(tmp_path / "j")


def test_add_gaussian_noise_checks_sigma():
    x = jnp.zeros((4000,))
    n = np.asarray(add_gaussian_noise(x, 0.3, jax.random.key(1)))
    assert np.std(n) == pytest.approx(0.3, rel=0.05)
    per = np.asarray(
        add_gaussian_noise(jnp.zeros((2, 4000)), jnp.array([[0.1], [1.0]]), jax.random.key(2))
    )
    assert np.std(per[0]) == pytest.approx(0.1, rel=0.08)
    assert np.std(per[1]) == pytest.approx(1.0, rel=0.08)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            add_gaussian_noise(x, bad, jax.random.key(0))
