"""Shape-bias metric (hand-computed cases, brute-force reference) and the Geirhos
cue-conflict folder loader on generated fixture PNG files."""

import math

import numpy as np
import pytest
from PIL import Image

from actfx._src.data.shape_bias import IMAGENET_INDICES_16
from actfx.data import GEIRHOS_CATEGORIES, load_png_images, scan_geirhos_cue_conflict
from actfx.metrics import (
    geirhos_shape_bias,
    imagenet_to_geirhos16,
    predict_classes,
    shape_bias,
    shape_bias_counts,
)

# --------------------------------------------------------------------------- metric


def test_shape_bias_hand_computed():
    #        shape  shape  texture other  excluded(s==t, pred==s)  excluded(s==t, other)
    pred = [0, 1, 5, 7, 3, 9]
    s = [0, 1, 4, 2, 3, 3]
    t = [5, 6, 5, 8, 3, 3]
    c = shape_bias_counts(pred, s, t)
    assert (c["shape"], c["texture"], c["other"], c["excluded"]) == (2, 1, 1, 2)
    assert c["shape_bias"] == pytest.approx(2 / 3)
    assert c["shape_rate"] == pytest.approx(2 / 4)
    assert c["texture_rate"] == pytest.approx(1 / 4)
    assert c["other_rate"] == pytest.approx(1 / 4)
    assert shape_bias(pred, s, t) == pytest.approx(2 / 3)


def test_shape_bias_extremes_and_undefined():
    s, t = np.array([0, 1, 2]), np.array([1, 2, 0])
    assert shape_bias(s, s, t) == 1.0
    assert shape_bias(t, s, t) == 0.0
    # only "other" decisions, or only excluded images: undefined
    assert math.isnan(shape_bias([2, 0, 1], s, t))
    assert math.isnan(shape_bias([0, 1], [0, 1], [0, 1]))
    # ignored decisions do not change the bias
    assert shape_bias([0, 2, 9, 9], [0, 1, 3, 4], [1, 2, 5, 6]) == 0.5


def test_shape_bias_matches_brute_force_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        pred, s, t = (rng.integers(0, 4, n) for _ in range(3))
        n_s = n_t = 0
        for p, a, b in zip(pred.tolist(), s.tolist(), t.tolist()):
            if a == b:
                continue
            n_s += p == a
            n_t += p == b
        expected = n_s / (n_s + n_t) if n_s + n_t else float("nan")
        got = shape_bias(pred, s, t)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_shape_bias_errors():
    with pytest.raises(ValueError, match="equal length"):
        shape_bias([0, 1], [0, 1, 2], [1, 2, 0])
    with pytest.raises(ValueError, match="1-D"):
        shape_bias(np.zeros((2, 2), int), np.zeros((2, 2), int), np.zeros((2, 2), int))


def test_predict_classes_scores_and_decisions():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    scores = lambda b: np.stack([b[:, 0, 0, 0], -b[:, 0, 0, 0]], 1)
    np.testing.assert_array_equal(predict_classes(scores, x, batch_size=3), np.zeros(10))
    decide = lambda b: (b[:, 0, 0, 0] % 3).astype(int)
    np.testing.assert_array_equal(predict_classes(decide, x, batch_size=4), np.arange(10) % 3)
    with pytest.raises(ValueError, match="classify must return"):
        predict_classes(lambda b: np.zeros((1, 2)), x, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        predict_classes(decide, x, batch_size=0)


def test_imagenet_to_geirhos16():
    idx = [i for c in GEIRHOS_CATEGORIES for i in IMAGENET_INDICES_16[c]]
    assert len(idx) == len(set(idx)) == 207  # disjoint; 207 of the 1000 classes used
    assert min(idx) >= 0 and max(idx) < 1000
    probs = np.random.default_rng(1).dirichlet(np.ones(1000), size=5)
    out = imagenet_to_geirhos16(probs)
    assert out.shape == (5, 16)
    for k, c in enumerate(GEIRHOS_CATEGORIES):
        ref = [np.mean([probs[n, i] for i in IMAGENET_INDICES_16[c]]) for n in range(5)]
        np.testing.assert_allclose(out[:, k], ref, rtol=1e-12)
    p = np.zeros((1, 1000))
    p[0, 340] = 0.5  # zebra: none of the 16
    p[0, 386] = 0.3  # African elephant
    p[0, 207] = 0.2  # golden retriever
    assert GEIRHOS_CATEGORIES[int(imagenet_to_geirhos16(p).argmax())] == "elephant"
    with pytest.raises(ValueError, match=r"probs must have shape \(N, 1000\)"):
        imagenet_to_geirhos16(np.zeros((2, 10)))


# --------------------------------------------------------------------------- Geirhos folder


def _png(path, shape_idx, texture_idx, size=8):
    """An RGB PNG whose red channel encodes the shape and green the texture category."""
    a = np.zeros((size, size, 3), np.uint8)
    a[..., 0] = 10 * shape_idx
    a[..., 1] = 10 * texture_idx
    a[..., 2] = np.arange(size, dtype=np.uint8)[None, :] * 20
    Image.fromarray(a).save(path)
    return a


@pytest.fixture
def geirhos_dir(tmp_path):
    """Two files per category: a cue conflict with the next category and (for the first
    four) a same-category file, plus a hidden file to skip."""
    root = tmp_path / "cue-conflict"
    cats = GEIRHOS_CATEGORIES
    truth = {}
    for i, c in enumerate(cats):
        (root / c).mkdir(parents=True)
        j = (i + 1) % len(cats)
        name = f"{c}{i + 1}-{cats[j]}{2}.png"
        truth[str(root / c / name)] = (i, j, _png(root / c / name, i, j))
        if i < 4:
            name = f"{c}{i + 3}-{c}1.png"
            truth[str(root / c / name)] = (i, i, _png(root / c / name, i, i))
    (root / "dog" / ".DS_Store").write_bytes(b"junk")
    return root, truth


def test_scan_parses_labels(geirhos_dir):
    root, truth = geirhos_dir
    idx = scan_geirhos_cue_conflict(root)
    assert idx.classes == GEIRHOS_CATEGORIES
    assert sorted(idx.paths) == sorted(truth)
    for p, s, t in zip(idx.paths, idx.shape_labels, idx.texture_labels):
        assert (int(s), int(t)) == truth[p][:2]
    # "truck16-airplane2.png": shape truck (15), texture airplane (0)
    k = [n for n, p in enumerate(idx.paths) if p.endswith("truck16-airplane2.png")][0]
    assert (idx.shape_labels[k], idx.texture_labels[k]) == (15, 0)


def test_load_png_images(geirhos_dir):
    root, truth = geirhos_dir
    paths = sorted(truth)[:3]
    x = load_png_images(paths)
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.float32
    for k, p in enumerate(paths):
        np.testing.assert_allclose(x[k], truth[p][2] / 255.0, rtol=1e-6)
    y = load_png_images(paths, size=4)
    assert y.shape == (3, 4, 4, 3)
    np.testing.assert_allclose(y[..., 0], x[:, :4, :4, 0], atol=1e-6)  # constant channel


def test_geirhos_shape_bias_with_oracles(geirhos_dir):
    root, _ = geirhos_dir

    def by_shape(x):  # decodes the shape category from the red channel
        return np.rint(x[:, 0, 0, 0] * 255 / 10).astype(int)

    def by_texture(x):
        return np.rint(x[:, 0, 0, 1] * 255 / 10).astype(int)

    r = geirhos_shape_bias(by_shape, root, batch_size=5)
    assert (r["shape"], r["texture"], r["other"], r["excluded"], r["n_images"]) == (16, 0, 0, 4, 20)
    assert r["shape_bias"] == 1.0
    assert geirhos_shape_bias(by_texture, root)["shape_bias"] == 0.0

    def half(x):  # shape decision for even shape categories, an unrelated class otherwise
        s, t = by_shape(x), by_texture(x)
        return np.where(s % 2 == 0, s, np.where(s % 4 == 1, t, (t + 5) % 16))

    r = geirhos_shape_bias(half, root, batch_size=3)
    # shapes 0..15: 8 even -> shape; odd with s % 4 == 1 (1,5,9,13) -> texture; 3,7,11,15 -> other
    assert (r["shape"], r["texture"], r["other"]) == (8, 4, 4)
    assert r["shape_bias"] == pytest.approx(8 / 12)

    def scores(x):  # the same as by_shape, as one-hot scores over 16 classes
        return np.eye(16)[by_shape(x)]

    assert geirhos_shape_bias(scores, root)["shape_bias"] == 1.0


def test_geirhos_errors(tmp_path, geirhos_dir):
    root, truth = geirhos_dir
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        scan_geirhos_cue_conflict(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks the category folder\(s\) \['airplane'"):
        scan_geirhos_cue_conflict(empty)
    for c in GEIRHOS_CATEGORIES:
        (empty / c).mkdir()
    with pytest.raises(FileNotFoundError, match="no <shape><i>-<texture><j>.png files"):
        scan_geirhos_cue_conflict(empty)

    bad = root / "cat" / "cat_photo.png"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cat_photo.png' does not match"):
        scan_geirhos_cue_conflict(root)
    bad.unlink()
    wrong = root / "cat" / "dog1-cat2.png"
    _png(wrong, 10, 7)
    with pytest.raises(ValueError, match="shape 'dog' differs from its folder 'cat'"):
        scan_geirhos_cue_conflict(root)
    wrong.unlink()
    unknown = root / "cat" / "cat1-zebra2.png"
    _png(unknown, 7, 0)
    with pytest.raises(ValueError, match="texture 'zebra' is not one of"):
        scan_geirhos_cue_conflict(root)
    unknown.unlink()

    corrupt = root / "cat" / "cat9-dog1.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not read image file .*cat9-dog1.png"):
        geirhos_shape_bias(lambda x: np.zeros(len(x), int), root, batch_size=64)
    corrupt.unlink()
    big = root / "cat" / "cat9-dog1.png"
    _png(big, 7, 10, size=12)
    with pytest.raises(ValueError, match="pass size="):
        load_png_images(sorted(truth) + [str(big)])
    assert load_png_images(sorted(truth) + [str(big)], size=8).shape == (21, 8, 8, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_png_images([str(root / "cat" / "missing.png")])


def test_geirhos_subset_of_classes(geirhos_dir):
    root, _ = geirhos_dir
    # with only 3 categories, files naming another texture category are rejected ...
    with pytest.raises(ValueError, match="is not one of"):
        scan_geirhos_cue_conflict(root, classes=("airplane", "bear", "bicycle"))
    # ... and labels index the tuple given (here the 16 categories in reverse order)
    idx = scan_geirhos_cue_conflict(root, classes=GEIRHOS_CATEGORIES[::-1])
    k = [n for n, p in enumerate(idx.paths) if p.endswith("airplane1-bear2.png")][0]
    assert (idx.shape_labels[k], idx.texture_labels[k]) == (15, 14)
