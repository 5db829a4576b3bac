"""A synthetic cue-conflict benchmark: procedural silhouettes filled with textures.

Class ``c`` is the pair ``(SHAPES[c], TEXTURES[c])``: its images show shape ``c`` filled
with texture ``c`` on a flat background, so both cues identify the class. A *cue-conflict*
image shows the shape of class ``i`` filled with the texture of class ``j != i``; a
classifier's answer on it is a shape decision (``i``), a texture decision (``j``) or
neither — :func:`actfx.metrics.shape_bias` turns those answers into the shape bias.

Nothing is downloaded: shapes are drawn procedurally (plus the ``skimage.data.horse``
silhouette), textures are ``skimage.data`` photographs (brick, grass, gravel) and
procedural patterns (stripes, checker, dots, noise at two frequencies). Images are NHWC
float32 in ``[0, 1]`` with one (grayscale) channel and depend only on the seed.

References:
  R. Geirhos, P. Rubisch, C. Michaelis, M. Bethge, F. A. Wichmann, W. Brendel,
  *ImageNet-trained CNNs are biased towards texture; increasing shape bias improves
  accuracy and robustness*, ICLR 2019 (the cue-conflict protocol).
  T. Li, Z. Wen, Y. Li, T. S. Lee, *Emergence of Shape Bias in Convolutional Neural
  Networks through Activation Sparsity*, NeurIPS 2023.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from actfx._src._checks import (
    check_bool_scalar,
    check_int_scalar,
    check_positive_real,
    check_real_scalar,
)
from actfx._src.data.dataset import ImageDataset

SHAPES: tuple[str, ...] = (
    "disc",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "crescent",
    "horse",
)
TEXTURES: tuple[str, ...] = (
    "brick",
    "grass",
    "gravel",
    "stripes",
    "checker",
    "dots",
    "noise_low",
    "noise_high",
)

# A texture sheet is SHEET_FACTOR times the image side; crops of it fill the shapes.
SHEET_FACTOR = 4
_TEXTURE_MEAN, _TEXTURE_STD = 0.5, 0.2
# Augmentation ranges (fractions of the image side / degrees).
_SCALE_RANGE = (0.30, 0.40)  # shape "radius" / image side
_SHIFT = 0.10  # centre jitter / image side
_ANGLE = 20.0  # rotation jitter, degrees
_BACKGROUND_RANGE = (0.35, 0.65)


# --------------------------------------------------------------------------- shapes


@functools.lru_cache(maxsize=1)
def _horse_mask() -> np.ndarray:
    """The skimage horse silhouette (True = horse), cropped to a centred square."""
    from skimage.data import horse

    m = ~np.asarray(horse(), dtype=bool)
    ys, xs = np.nonzero(m)
    m = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = m.shape
    side = max(h, w)
    out = np.zeros((side, side), bool)
    out[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = m
    return out


def _regular_polygon(u: np.ndarray, v: np.ndarray, n: int, apothem: float) -> np.ndarray:
    """Inside a regular ``n``-gon with a vertex pointing up (v < 0) and the given apothem."""
    inside = np.ones(u.shape, bool)
    for k in range(n):
        phi = np.pi / 2 + np.pi / n + 2 * np.pi * k / n  # outward edge normals
        inside &= u * np.cos(phi) + v * np.sin(phi) <= apothem
    return inside


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean membership of the canonical shape (radius ~1, centred at 0) at ``(u, v)``."""
    r = np.hypot(u, v)
    if shape == "disc":
        return r <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":
        return _regular_polygon(u, v + 0.15, 3, 0.55)
    if shape == "star":
        theta = np.arctan2(u, -v)  # 0 at the top vertex
        t = np.mod(theta, 2 * np.pi / 5) / (2 * np.pi / 5)
        return r <= 0.42 + 0.58 * np.abs(2 * t - 1)
    if shape == "cross":
        arm, length = 0.32, 0.95
        return ((np.abs(u) <= arm) & (np.abs(v) <= length)) | (
            (np.abs(v) <= arm) & (np.abs(u) <= length)
        )
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "crescent":
        return (r <= 1.0) & (np.hypot(u - 0.5, v + 0.1) > 0.78)
    if shape == "horse":
        m = _horse_mask()
        side = m.shape[0]
        iy = np.floor((v + 1.0) / 2.0 * side).astype(np.int64)
        ix = np.floor((u + 1.0) / 2.0 * side).astype(np.int64)
        ok = (iy >= 0) & (iy < side) & (ix >= 0) & (ix < side)
        out = np.zeros(u.shape, bool)
        out[ok] = m[iy[ok], ix[ok]]
        return out
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def shape_mask(
    shape: str,
    size: int,
    *,
    scale: float = 0.35,
    center: tuple[float, float] = (0.5, 0.5),
    angle: float = 0.0,
    flip: bool = False,
    supersample: int = 2,
) -> np.ndarray:
    """An anti-aliased silhouette mask ``(size, size)`` float32 in ``[0, 1]``.

    The canonical shape (radius about 1) is flipped left-right if ``flip``, rotated by
    ``angle`` degrees, scaled to ``scale * size`` pixels and centred at ``center * size``
    (``(row, col)`` fractions). Each pixel is the fraction of its ``supersample**2``
    sub-pixel centres inside the shape.

    Args:
      shape: one of :data:`SHAPES`.
      size: image side in pixels.
      scale: radius as a fraction of ``size``.
      center: ``(row, col)`` of the centre, fractions of ``size``.
      angle: rotation in degrees (counter-clockwise on screen).
      flip: mirror left-right before rotating.
      supersample: sub-pixels per side used for anti-aliasing.

    Returns:
      ``(size, size)`` float32 mask.

    Raises:
      ValueError: unknown ``shape``, ``size < 4``, ``scale`` not a finite number > 0,
        ``supersample < 1``, a non-finite ``center``/``angle``, a non-bool ``flip``.

    Example:
      >>> m = shape_mask("square", 20, scale=0.25)
      >>> m.shape, float(m.max()), float(m[0, 0]), round(float(m.sum()))
      ((20, 20), 1.0, 0.0, 64)
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    scale = check_positive_real("scale", scale)
    s = check_int_scalar("supersample", supersample, low=1)
    if not (isinstance(center, (tuple, list)) and len(center) == 2):
        raise ValueError(f"center must be a (row, col) pair of fractions, got {center!r}")
    center = (check_real_scalar("center", center[0]), check_real_scalar("center", center[1]))
    angle = check_real_scalar("angle", angle)
    if not (np.isfinite(center[0]) and np.isfinite(center[1]) and np.isfinite(angle)):
        raise ValueError(f"center and angle must be finite, got center={center}, angle={angle}")
    check_bool_scalar("flip", flip)
    # sub-pixel centres in pixel units
    g = (np.arange(size * s) + 0.5) / s
    yy, xx = np.meshgrid(g, g, indexing="ij")
    y = (yy - center[0] * size) / (scale * size)
    x = (xx - center[1] * size) / (scale * size)
    a = np.deg2rad(angle)
    # inverse rotation: canonical coords of each image point
    u = np.cos(a) * x - np.sin(a) * y
    v = np.sin(a) * x + np.cos(a) * y
    if flip:
        u = -u
    inside = _shape_inside(shape, u, v).astype(np.float32)
    return inside.reshape(size, s, size, s).mean(axis=(1, 3))


# --------------------------------------------------------------------------- textures


def _standardize(t: np.ndarray) -> np.ndarray:
    t = t.astype(np.float64)
    t = (t - t.mean()) / max(t.std(), 1e-8)
    return np.clip(_TEXTURE_MEAN + _TEXTURE_STD * t, 0.0, 1.0).astype(np.float32)


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur via FFT (keeps the sheet seamless)."""
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    return np.real(np.fft.ifft2(np.fft.fft2(a) * kernel))


@functools.lru_cache(maxsize=64)
def _texture_sheet_cached(texture: str, size: int) -> np.ndarray:
    side = SHEET_FACTOR * size
    g = np.arange(side, dtype=np.float64)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    if texture in ("brick", "grass", "gravel"):
        import skimage.data
        from skimage.transform import resize

        img = getattr(skimage.data, texture)().astype(np.float64) / 255.0
        # resize returns an ndarray (its stubs also allow other array types)
        t = np.asarray(resize(img, (side, side), anti_aliasing=True, order=1))
    elif texture == "stripes":
        period, a = size / 5.0, np.deg2rad(30.0)
        t = (np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period) > 0).astype(float)
    elif texture == "checker":
        p = max(size // 8, 1)
        t = ((xx // p + yy // p) % 2).astype(float)
    elif texture == "dots":
        period = size / 5.0
        radius = 0.28 * period
        # hexagonal lattice of dots
        row = np.floor(yy / period)
        dy = np.mod(yy, period) - period / 2
        dx = np.mod(xx + (row % 2) * period / 2, period) - period / 2
        t = (np.hypot(dx, dy) <= radius).astype(float)
    elif texture in ("noise_low", "noise_high"):
        rng = np.random.default_rng(1234 + (texture == "noise_high"))
        sigma = size / 16.0 if texture == "noise_low" else 0.5
        t = _gaussian_blur(rng.standard_normal((side, side)), sigma)
    else:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    out = _standardize(t)
    out.setflags(write=False)
    return out


def texture_sheet(texture: str, size: int) -> np.ndarray:
    """The texture ``(SHEET_FACTOR * size,) * 2`` float32 that image crops come from.

    Its features scale with ``size`` (e.g. stripe period ``size / 5``), so images of any
    size look alike. Each sheet is standardised to mean 0.5 and standard deviation 0.2
    (then clipped to ``[0, 1]``): textures differ by pattern, not by mean brightness.
    Photographs are resized with anti-aliasing; noise sheets use a fixed seed, so a sheet
    depends only on ``(texture, size)`` (and is cached, read-only).

    Args:
      texture: one of :data:`TEXTURES`.
      size: image side in pixels.

    Raises:
      ValueError: unknown ``texture`` or ``size < 4``.

    Example:
      >>> t = texture_sheet("checker", 16)
      >>> t.shape, t.dtype, round(float(t.mean()), 3)
      ((64, 64), dtype('float32'), 0.5)
    """
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    if not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    return _texture_sheet_cached(texture, int(size))


# --------------------------------------------------------------------------- rendering


class RenderedLayers(NamedTuple):
    """The parts of rendered images: ``image = mask * texture + (1 - mask) * background``.

    Attributes:
      images: ``(N, size, size, 1)`` float32 in ``[0, 1]``.
      masks: ``(N, size, size)`` float32 shape masks.
      textures: ``(N, size, size)`` float32 texture crops.
      backgrounds: ``(N,)`` float32 background grey levels.
      offsets: ``(N, 2)`` int64 ``(row, col)`` of each crop in its texture sheet.
    """

    images: np.ndarray
    masks: np.ndarray
    textures: np.ndarray
    backgrounds: np.ndarray
    offsets: np.ndarray


def _check_ids(name: str, ids, n: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{name} must lie in [0, {n}), got [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def render_layers(
    shape_ids: Sequence[int] | np.ndarray,
    texture_ids: Sequence[int] | np.ndarray,
    *,
    size: int = 32,
    seed: int = 0,
    stream: int = 0,
    jitter: bool = True,
    shapes: Sequence[str] = SHAPES,
    textures: Sequence[str] = TEXTURES,
) -> RenderedLayers:
    """Render images of ``shapes[shape_ids[n]]`` filled with ``textures[texture_ids[n]]``.

    Image ``n`` uses its own generator ``np.random.default_rng((seed, stream, n))`` and
    draws, in this order, the shape's scale, centre, angle and flip, then the texture crop
    offset, then the background level. So image ``n`` does not depend on the other
    images, and two images with the same ``n`` share their mask if their shapes agree and
    their texture crop if their textures agree (that is what the tests check).

    With ``jitter=False`` every image uses the canonical placement (scale 0.35, centred,
    upright), crop offset ``(0, 0)`` and background 0.5.

    Args:
      shape_ids: ``(N,)`` indices into ``shapes``.
      texture_ids: ``(N,)`` indices into ``textures``.
      size: image side in pixels (>= 4).
      seed: seed of the images.
      stream: a second seed component, to draw independent sets (train/test/conflict).
      jitter: random position/scale/rotation/flip, crop offset and background.
      shapes: shape names (a subsequence of :data:`SHAPES`).
      textures: texture names (a subsequence of :data:`TEXTURES`).

    Returns:
      A :class:`RenderedLayers`.

    Example:
      >>> r = render_layers([0, 1], [1, 0], size=16, seed=0)
      >>> r.images.shape, r.images.dtype, bool(r.images.min() >= 0 and r.images.max() <= 1)
      ((2, 16, 16, 1), dtype('float32'), True)
    """
    shape_ids = _check_ids("shape_ids", shape_ids, len(shapes))
    texture_ids = _check_ids("texture_ids", texture_ids, len(textures))
    if shape_ids.shape != texture_ids.shape:
        raise ValueError(
            f"shape_ids and texture_ids must have the same length, got {shape_ids.size} and "
            f"{texture_ids.size}"
        )
    for name in shapes:
        if name not in SHAPES:
            raise ValueError(f"shapes must be names from {SHAPES}, got {name!r}")
    if not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    sheets = [texture_sheet(t, size) for t in textures]
    n = shape_ids.size
    masks = np.empty((n, size, size), np.float32)
    tex = np.empty((n, size, size), np.float32)
    bgs = np.empty(n, np.float32)
    offsets = np.zeros((n, 2), np.int64)
    span = SHEET_FACTOR * size - size + 1
    for i in range(n):
        if jitter:
            rng = np.random.default_rng((seed, stream, i))
            scale = rng.uniform(*_SCALE_RANGE)
            center = tuple(0.5 + rng.uniform(-_SHIFT, _SHIFT, size=2))
            angle = rng.uniform(-_ANGLE, _ANGLE)
            flip = bool(rng.integers(2))
            offsets[i] = rng.integers(0, span, size=2)
            bg = rng.uniform(*_BACKGROUND_RANGE)
        else:
            scale, center, angle, flip, bg = 0.35, (0.5, 0.5), 0.0, False, 0.5
        masks[i] = shape_mask(
            shapes[int(shape_ids[i])], size, scale=scale, center=center, angle=angle, flip=flip
        )
        oy, ox = offsets[i]
        tex[i] = sheets[texture_ids[i]][oy : oy + size, ox : ox + size]
        bgs[i] = bg
    images = masks * tex + (1.0 - masks) * bgs[:, None, None]
    return RenderedLayers(images[..., None].astype(np.float32), masks, tex, bgs, offsets)


def render_images(
    shape_ids: Sequence[int] | np.ndarray,
    texture_ids: Sequence[int] | np.ndarray,
    **kwargs,
) -> np.ndarray:
    """The ``(N, size, size, 1)`` float32 images of :func:`render_layers` (same arguments).

    Example:
      >>> render_images([2], [3], size=8, seed=1).shape
      (1, 8, 8, 1)
    """
    return render_layers(shape_ids, texture_ids, **kwargs).images


# --------------------------------------------------------------------------- datasets


class CueConflictSet(NamedTuple):
    """Synthetic cue-conflict data.

    Attributes:
      train: an :class:`ImageDataset` of cue-consistent images (shape == texture class);
        ``x_test`` / ``y_test`` are fresh cue-consistent images for clean accuracy.
      x_conflict: ``(M, size, size, 1)`` cue-conflict images.
      shape_labels: ``(M,)`` int32 class of the shape of each conflict image.
      texture_labels: ``(M,)`` int32 class of its texture (always != ``shape_labels``).
      classes: class names ``"<shape>/<texture>"``.
    """

    train: ImageDataset
    x_conflict: np.ndarray
    shape_labels: np.ndarray
    texture_labels: np.ndarray
    classes: tuple[str, ...]


def synthetic_cue_conflict(
    *,
    num_classes: int = 8,
    size: int = 32,
    num_train: int = 4000,
    num_test: int = 800,
    conflicts_per_pair: int = 10,
    seed: int = 0,
) -> CueConflictSet:
    """Training, clean test and cue-conflict images of the synthetic benchmark.

    Class ``c < num_classes`` is shape ``SHAPES[c]`` with texture ``TEXTURES[c]``. Train and
    test images cycle through the classes (balanced) with independent random jitter
    (streams 0 and 1 of :func:`render_layers`); the conflict set holds
    ``conflicts_per_pair`` images for each ordered pair ``(i, j)``, ``i != j`` (stream 2),
    labelled with both classes.

    Args:
      num_classes: number of classes, 2 to 8.
      size: image side in pixels.
      num_train: training images.
      num_test: clean (cue-consistent) test images.
      conflicts_per_pair: cue-conflict images per ordered class pair.
      seed: seed of all images.

    Returns:
      A :class:`CueConflictSet`; all images ``(N, size, size, 1)`` float32 in ``[0, 1]``.

    Raises:
      ValueError: ``num_classes`` outside ``[2, 8]`` or a non-positive count.

    Example:
      >>> d = synthetic_cue_conflict(num_classes=3, size=16, num_train=6, num_test=3,
      ...                            conflicts_per_pair=1)
      >>> d.train.x_train.shape, d.x_conflict.shape
      ((6, 16, 16, 1), (6, 16, 16, 1))
      >>> d.shape_labels.tolist(), d.texture_labels.tolist()
      ([0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1])
    """
    if not isinstance(num_classes, (int, np.integer)) or not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be an int in [2, {len(SHAPES)}], got {num_classes!r}")
    for name, v in (
        ("num_train", num_train),
        ("num_test", num_test),
        ("conflicts_per_pair", conflicts_per_pair),
    ):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    shapes, textures = SHAPES[:num_classes], TEXTURES[:num_classes]
    kw = dict(size=size, seed=seed, shapes=shapes, textures=textures)
    y_train = (np.arange(num_train) % num_classes).astype(np.int32)
    y_test = (np.arange(num_test) % num_classes).astype(np.int32)
    x_train = render_images(y_train, y_train, stream=0, **kw)
    x_test = render_images(y_test, y_test, stream=1, **kw)
    pairs = [(i, j) for i in range(num_classes) for j in range(num_classes) if i != j]
    s = np.repeat(np.array([p[0] for p in pairs], np.int32), conflicts_per_pair)
    t = np.repeat(np.array([p[1] for p in pairs], np.int32), conflicts_per_pair)
    x_conflict = render_images(s, t, stream=2, **kw)
    classes = tuple(f"{a}/{b}" for a, b in zip(shapes, textures))
    train = ImageDataset(x_train, y_train, x_test, y_test, num_classes, "synthetic-cue-conflict")
    return CueConflictSet(train, x_conflict, s, t, classes)
