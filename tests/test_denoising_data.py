"""Tests for actfx.data.denoising: offline images, PNG folder / BSD loaders, patches, PSNR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.io
import skimage.metrics

from actfx.data.denoising import (
    OFFLINE_TEST,
    OFFLINE_TRAIN,
    add_gaussian_noise,
    extract_patches,
    fold_patches,
    load_bsd,
    load_offline_images,
    load_png_folder,
    psnr,
    random_patches,
    to_gray_float,
)


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
        np.testing.assert_array_equal(patch, img[r:r + 6, c:c + 6])
    with pytest.raises(ValueError, match="no image"):
        random_patches([small], 6, 1, np.random.default_rng(0))


def test_extract_and_fold_patches_against_numpy():
    img = jax.random.normal(jax.random.key(0), (11, 9))
    for stride in (1, 2, 3):
        p = np.asarray(extract_patches(img, 4, stride))
        ref = [np.asarray(img)[r:r + 4, c:c + 4].ravel()
               for r in range(0, 8, stride) for c in range(0, 6, stride)]
        np.testing.assert_allclose(p, np.stack(ref), atol=1e-6)
        covered = np.zeros((11, 9), bool)
        for r in range(0, 8, stride):
            for c in range(0, 6, stride):
                covered[r:r + 4, c:c + 4] = True
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
    noisy = np.asarray(add_gaussian_noise(jnp.asarray(clean, jnp.float32), 25 / 255,
                                          jax.random.key(0)))
    ref = skimage.metrics.peak_signal_noise_ratio(clean, noisy.astype(np.float64), data_range=1.0)
    assert psnr(clean, noisy) == pytest.approx(ref, rel=1e-9)
    assert np.std(noisy - clean) == pytest.approx(25 / 255, rel=0.05)
    assert psnr(clean, clean) == float("inf")
