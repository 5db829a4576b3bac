"""Synthetic cue-conflict benchmark: layout, determinism, and that a conflict image really
carries the shape of one class and the texture of another."""

import itertools

import numpy as np
import pytest
from skimage.draw import disk

from actfx._src.data.cue_conflict import SHEET_FACTOR
from actfx.data import (
    SHAPES,
    TEXTURES,
    render_images,
    render_layers,
    shape_mask,
    synthetic_cue_conflict,
    texture_sheet,
)


@pytest.fixture(scope="module")
def small_set():
    return synthetic_cue_conflict(
        num_classes=4, size=16, num_train=12, num_test=8, conflicts_per_pair=2, seed=3
    )


def test_layout_dtype_range_labels(small_set):
    d = small_set
    assert d.train.x_train.shape == (12, 16, 16, 1)
    assert d.train.x_test.shape == (8, 16, 16, 1)
    assert d.x_conflict.shape == (4 * 3 * 2, 16, 16, 1)
    for x in (d.train.x_train, d.train.x_test, d.x_conflict):
        assert x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert d.train.num_classes == 4
    assert d.classes == ("disc/brick", "square/grass", "triangle/gravel", "star/stripes")
    # balanced labels
    np.testing.assert_array_equal(np.bincount(d.train.y_train, minlength=4), [3, 3, 3, 3])
    np.testing.assert_array_equal(np.bincount(d.train.y_test, minlength=4), [2, 2, 2, 2])
    # every ordered pair (i, j), i != j, exactly conflicts_per_pair times; never i == j
    pairs = list(zip(d.shape_labels.tolist(), d.texture_labels.tolist()))
    expected = [p for p in itertools.permutations(range(4), 2) for _ in range(2)]
    assert sorted(pairs) == sorted(expected)
    assert d.shape_labels.dtype == np.int32 and d.texture_labels.dtype == np.int32


def test_deterministic_by_seed_and_independent_of_count():
    a = synthetic_cue_conflict(
        num_classes=3, size=12, num_train=9, num_test=3, conflicts_per_pair=1, seed=7
    )
    b = synthetic_cue_conflict(
        num_classes=3, size=12, num_train=9, num_test=3, conflicts_per_pair=1, seed=7
    )
    c = synthetic_cue_conflict(
        num_classes=3, size=12, num_train=9, num_test=3, conflicts_per_pair=1, seed=8
    )
    for xa, xb, xc in zip(
        (a.train.x_train, a.train.x_test, a.x_conflict),
        (b.train.x_train, b.train.x_test, b.x_conflict),
        (c.train.x_train, c.train.x_test, c.x_conflict),
    ):
        np.testing.assert_array_equal(xa, xb)
        assert not np.array_equal(xa, xc)
    # image n depends only on (seed, stream, n): a longer set starts with the shorter one
    longer = synthetic_cue_conflict(
        num_classes=3, size=12, num_train=15, num_test=3, conflicts_per_pair=1, seed=7
    )
    np.testing.assert_array_equal(longer.train.x_train[:9], a.train.x_train)
    # train, test and conflict streams differ
    assert not np.array_equal(a.train.x_train[:3], a.train.x_test[:3])


def test_conflict_image_carries_shape_i_and_texture_j():
    size, seed = 24, 5
    n = len(SHAPES)
    s = np.array([i for i in range(n) for j in range(n) if i != j])
    t = np.array([j for i in range(n) for j in range(n) if i != j])
    conflict = render_layers(s, t, size=size, seed=seed, stream=2)
    same_shape = render_layers(s, s, size=size, seed=seed, stream=2)  # class i images
    same_texture = render_layers(t, t, size=size, seed=seed, stream=2)  # class j images
    # the conflict image's mask is the mask of shape i, its texture crop that of texture j
    np.testing.assert_array_equal(conflict.masks, same_shape.masks)
    np.testing.assert_array_equal(conflict.textures, same_texture.textures)
    assert not np.array_equal(conflict.masks, same_texture.masks)
    # composition: inside the mask the texture, outside the flat background
    m = conflict.masks
    expected = m * conflict.textures + (1 - m) * conflict.backgrounds[:, None, None]
    np.testing.assert_allclose(conflict.images[..., 0], expected, atol=1e-6)
    for k in range(len(s)):
        img = conflict.images[k, ..., 0]
        inside, outside = m[k] == 1.0, m[k] == 0.0
        assert inside.sum() > 0.05 * size * size and outside.sum() > 0.3 * size * size
        np.testing.assert_allclose(img[outside], conflict.backgrounds[k], atol=1e-6)
        oy, ox = conflict.offsets[k]
        sheet = texture_sheet(TEXTURES[t[k]], size)
        np.testing.assert_allclose(
            img[inside], sheet[oy : oy + size, ox : ox + size][inside], atol=1e-6
        )
    # and the mask is shape_mask of shape i at the drawn placement (recomputed by hand)
    k = 0
    rng = np.random.default_rng((seed, 2, k))
    scale = rng.uniform(0.30, 0.40)
    center = tuple(0.5 + rng.uniform(-0.10, 0.10, size=2))
    angle = rng.uniform(-20.0, 20.0)
    flip = bool(rng.integers(2))
    np.testing.assert_array_equal(
        m[k], shape_mask(SHAPES[s[k]], size, scale=scale, center=center, angle=angle, flip=flip)
    )


def test_no_jitter_is_canonical():
    r = render_layers([3, 3], [4, 4], size=20, jitter=False)
    np.testing.assert_array_equal(r.images[0], r.images[1])
    np.testing.assert_array_equal(r.masks[0], shape_mask("star", 20))
    np.testing.assert_array_equal(r.textures[0], texture_sheet("checker", 20)[:20, :20])
    assert r.backgrounds.tolist() == [0.5, 0.5]


def test_disc_mask_matches_skimage_disk():
    size, scale = 32, 0.3  # radius 9.6 px: no pixel centre lies exactly on the circle
    m = shape_mask("disc", size, scale=scale, supersample=1)
    ref = np.zeros((size, size), np.float32)
    # our pixel (r, c) has its centre at (r + 0.5, c + 0.5); the disc centre is at size / 2
    rr, cc = disk((size / 2 - 0.5, size / 2 - 0.5), scale * size, shape=(size, size))
    ref[rr, cc] = 1.0
    np.testing.assert_array_equal(m, ref)


@pytest.mark.parametrize(
    "shape, area",  # area of the canonical shape in units of radius^2
    [
        ("disc", np.pi),
        ("square", 1.6**2),
        ("ring", np.pi * (1 - 0.55**2)),
        ("cross", 2 * (0.64 * 1.9) - 0.64**2),
    ],
)
def test_mask_area(shape, area):
    size, scale = 64, 0.35
    m = shape_mask(shape, size, scale=scale, supersample=4)
    np.testing.assert_allclose(m.sum(), area * (scale * size) ** 2, rtol=0.02)


def test_mask_placement_rotation_and_flip():
    size = 48
    m = shape_mask("square", size, scale=0.2, center=(0.3, 0.7))
    ys, xs = np.nonzero(m)
    w = m[ys, xs]
    np.testing.assert_allclose(
        [np.average(ys + 0.5, weights=w), np.average(xs + 0.5, weights=w)],
        [0.3 * size, 0.7 * size],
        atol=0.3,
    )
    # a square is invariant under a 90-degree turn; a triangle is not under 180 degrees
    np.testing.assert_allclose(
        shape_mask("square", size, angle=90.0), shape_mask("square", size), atol=1e-6
    )
    tri = shape_mask("triangle", size)
    assert np.abs(shape_mask("triangle", size, angle=180.0) - tri).mean() > 0.05
    # flipping mirrors left-right about the centre
    for name in ("horse", "crescent"):
        a, b = shape_mask(name, size), shape_mask(name, size, flip=True)
        assert np.abs(b - a[:, ::-1]).mean() < 0.01
        assert np.abs(b - a).mean() > 0.02


def test_shapes_and_textures_are_distinct():
    size = 32
    masks = {s: shape_mask(s, size) > 0.5 for s in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.85, (a, b, iou)
    sheets = {t: texture_sheet(t, size) for t in TEXTURES}
    for t, sh in sheets.items():
        assert sh.shape == (SHEET_FACTOR * size,) * 2 and sh.dtype == np.float32
        np.testing.assert_allclose(sh.mean(), 0.5, atol=0.03)
        assert 0.12 < sh.std() < 0.22, t

    # power spectra differ between every pair of textures
    def spectrum(x):
        p = np.abs(np.fft.rfft2(x - x.mean())) ** 2
        return p / p.sum()

    specs = {t: spectrum(sh) for t, sh in sheets.items()}
    for a, b in itertools.combinations(TEXTURES, 2):
        assert 0.5 * np.abs(specs[a] - specs[b]).sum() > 0.2, (a, b)


def test_errors():
    with pytest.raises(ValueError, match="shape must be one of"):
        shape_mask("hexagon", 16)
    with pytest.raises(ValueError, match="size must be an int >= 4"):
        shape_mask("disc", 2)
    with pytest.raises(ValueError, match="texture must be one of"):
        texture_sheet("wood", 16)
    with pytest.raises(ValueError, match="num_classes must be an int in"):
        synthetic_cue_conflict(num_classes=9)
    with pytest.raises(ValueError, match="num_train must be a positive int"):
        synthetic_cue_conflict(num_train=0)
    with pytest.raises(ValueError, match="same length"):
        render_images([0, 1], [0], size=8)
    with pytest.raises(ValueError, match=r"texture_ids must lie in \[0, 8\)"):
        render_images([0], [8], size=8)
    with pytest.raises(ValueError, match="shapes must be names"):
        render_images([0], [0], size=8, shapes=("blob",))
