"""CPA smoothness prior: difw fixture, kernels, precision, sampling."""

from pathlib import Path

import jax
import numpy as np
import pytest

from actfx.cpab import (
    KERNELS,
    Tessellation,
    affine_covariance,
    precision_matrix,
    prior_covariance,
    sample_theta,
    transform,
)

REF = np.load(Path(__file__).parent / "data" / "cpab_reference.npz")


@pytest.mark.parametrize("i", range(int(REF["configs"])))
def test_difw_kernel_matches_fixture(i):
    tess = Tessellation(
        int(REF[f"c{i}_nc"]), zero_boundary=bool(REF[f"c{i}_zero_boundary"]), basis=REF[f"c{i}_B"]
    )
    S = prior_covariance(tess, length_scale=0.1, output_variance=1.0, kernel="difw")
    np.testing.assert_allclose(S, REF[f"c{i}_covariance_theta_l0.1_v1"], atol=1e-14)


def test_kernel_formulas():
    tess = Tessellation(3)
    c = tess.cell_centers
    K = affine_covariance(tess, length_scale=0.4, output_variance=1.5, kernel="se")
    assert np.isclose(K[0, 2], 1.5**2 * np.exp(-((c[0] - c[1]) ** 2) / (2 * 0.16)))
    assert np.isclose(K[1, 5], 1.5**2 * np.exp(-((c[0] - c[2]) ** 2) / (2 * 0.16)))
    assert K[0, 1] == 0 and K[2, 5] == 0
    K = affine_covariance(tess, length_scale=5.0, output_variance=2.0, kernel="ditac")
    g = np.linspace(-1, 1, 6)
    assert np.isclose(K[1, 4], np.exp(-2 * abs(g[1] - g[4]) / 5.0) * (2.0 * 6) ** 2)


@pytest.mark.parametrize("kernel", KERNELS)
def test_covariance_psd_and_precision_inverse(kernel):
    tess = Tessellation(10)
    S = prior_covariance(tess, length_scale=0.3, output_variance=1.0, kernel=kernel)
    assert np.allclose(S, S.T) and np.linalg.eigvalsh(S).min() > -1e-10
    P = precision_matrix(tess, length_scale=0.3, output_variance=1.0, kernel=kernel, eps=1e-6)
    np.testing.assert_allclose(P @ (S + 1e-6 * np.eye(9)), np.eye(9), atol=1e-6)


def test_sample_theta_covariance():
    tess = Tessellation(6, basis="sparse")
    S = prior_covariance(tess, length_scale=0.2, output_variance=1.0)
    with jax.enable_x64(True):
        th = np.asarray(sample_theta(jax.random.key(0), tess, 40_000, length_scale=0.2))
    assert th.shape == (40_000, 5)
    np.testing.assert_allclose(np.cov(th.T), S, atol=0.03 * np.abs(S).max())
    assert sample_theta(jax.random.key(1), tess).shape == (5,)


def test_prior_samples_give_valid_transforms():
    tess = Tessellation(10)
    th = sample_theta(jax.random.key(2), tess, 8, length_scale=0.1, output_variance=3.0)
    T = np.asarray(transform(np.linspace(0, 1, 101, dtype=np.float32), th, tess))
    assert np.all(np.diff(T, axis=1) >= 0) and np.all(np.abs(T[:, [0, -1]] - [0, 1]) < 1e-6)


def test_errors():
    tess = Tessellation(4)
    with pytest.raises(ValueError, match="kernel must be one of"):
        prior_covariance(tess, kernel="matern")
    with pytest.raises(ValueError, match="length_scale must be"):
        prior_covariance(tess, length_scale=0.0)
    with pytest.raises(ValueError, match="output_variance must be"):
        prior_covariance(tess, output_variance=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        sample_theta(jax.random.key(0), tess, 0)
    with pytest.raises(ValueError, match="tess must be"):
        prior_covariance(None)


@pytest.mark.parametrize("kernel", KERNELS)
def test_extreme_length_scales_give_the_kernel_limits(kernel):
    """length_scale=1e300 raised a bare OverflowError (l**2) and 1e-300 gave a NaN matrix
    (0/0 on the diagonal): both now give the kernel's limits, an all-ones correlation and
    the identity (times the variance)."""
    tess = Tessellation(4)
    s2 = {"ditac": (2 * tess.nc) ** 2}.get(kernel, 1.0)
    K_big = affine_covariance(tess, length_scale=1e300, output_variance=1.0, kernel=kernel)
    K_small = affine_covariance(tess, length_scale=1e-300, output_variance=1.0, kernel=kernel)
    assert np.all(np.isfinite(K_big)) and np.all(np.isfinite(K_small))
    np.testing.assert_allclose(np.diag(K_small), s2)
    np.testing.assert_allclose(K_small - np.diag(np.diag(K_small)), 0.0, atol=0)
    # huge l: every correlation within a block is 1 (the difw a-b cross term too)
    if kernel == "ditac":
        np.testing.assert_allclose(K_big, s2)
    else:
        np.testing.assert_allclose(K_big[0::2, 0::2], 1.0)
    for ls in (1e300, 1e-300):
        S = prior_covariance(tess, length_scale=ls, kernel=kernel)
        assert np.all(np.isfinite(S))
    # the stable form agrees with the textbook one where both are finite
    l, D = 0.37, np.abs(tess.cell_centers[:, None] - tess.cell_centers[None, :])
    K = affine_covariance(tess, length_scale=l, output_variance=1.0, kernel="se")
    np.testing.assert_allclose(K[0::2, 0::2], np.exp(-(D**2) / (2 * l**2)), rtol=1e-14)


def test_overflowing_output_variance_is_refused():
    with pytest.raises(ValueError, match="output_variance"):
        prior_covariance(Tessellation(4), output_variance=1e300)
    with pytest.raises(ValueError, match="length_scale must be"):
        prior_covariance(Tessellation(4), length_scale=True)
