"""Activation-function parameters as NumPyro sample sites, and applying them."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

from actfx._src.mmelu import mmelu

ACTIVATIONS = ("mmelu", "prelu", "relu", "ditac")

# DiTAC theta prior: zero-boundary tessellation of [a, b] = [-0.5, 2] into DITAC_CELLS cells,
# theta ~ MultivariateNormal(0, Sigma_theta) with the CPA prior of actfx.cpab (DiTAC's
# covariance kernel, length scale 5, output variance 2) plus a small jitter for positive
# definiteness. ("kernel" in actfx.bayes means an MCMC kernel; the covariance kernel is
# ``cov_kernel``.)
DITAC_CELLS = 8
DITAC_PRIOR = {"cov_kernel": "ditac", "length_scale": 5.0, "output_variance": 2.0}


@functools.lru_cache(maxsize=8)
def _ditac_prior_scale_tril(nc: int) -> np.ndarray:
    """Cholesky factor of :func:`ditac_prior_covariance`, computed once per ``nc`` (float64,
    read-only), so the model passes ``scale_tril`` and no potential evaluation factorises
    the constant covariance again."""
    L = np.linalg.cholesky(ditac_prior_covariance(nc))
    L.setflags(write=False)
    return L


def ditac_prior_covariance(nc: int = DITAC_CELLS) -> np.ndarray:
    """The CPA prior covariance of DiTAC's theta used by ``activation="ditac"``,
    ``(nc-1, nc-1)``."""
    import inspect

    from actfx.cpab import Tessellation, prior_covariance

    kw = dict(DITAC_PRIOR)
    if "cov_kernel" not in inspect.signature(prior_covariance).parameters:  # older actfx.cpab name
        kw["kernel"] = kw.pop("cov_kernel")
    S = prior_covariance(Tessellation(nc), **kw)
    return S + 1e-6 * np.trace(S) / len(S) * np.eye(len(S))


def check_activation(activation: str) -> None:
    """Raise ``ValueError`` unless ``activation`` is one of :data:`ACTIVATIONS`."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def activation_prior(
    name: str, activation: str, width: int, *, per_unit: bool = False
) -> dict[str, Array]:
    r"""Sample the parameters of one layer's activation under their priors.

    * ``"mmelu"`` (:func:`actfx.mmelu`): ``c ~ Uniform(0, 1)``, ``lam ~ Exponential(1)``,
      ``gamma ~ Normal(0, 1)``; sites ``{name}/c``, ``{name}/lam``, ``{name}/gamma``.
    * ``"prelu"``: :math:`f(x) = \max(x, 0) + a \min(x, 0)` with ``a ~ Uniform(-1, 1)``;
      site ``{name}/slope``. Bounding :math:`|a| < 1` removes the sign-flip symmetry
      :math:`(w_{in}, a, w_{out}) \to (-w_{in}, 1/a, -a\,w_{out})` that otherwise makes the
      slope bimodal.
    * ``"relu"``: no parameters.
    * ``"ditac"`` (:func:`actfx.ditac`): CPA parameters ``theta ~ MultivariateNormal(0,
      Sigma_theta)`` with the CPA prior covariance :func:`ditac_prior_covariance` (a
      zero-boundary tessellation with ``DITAC_CELLS`` cells, so ``theta`` has
      ``DITAC_CELLS - 1`` entries); site ``{name}/theta``, shape ``(d,)`` or ``(width, d)``.

    Args:
      name: site-name prefix, e.g. ``"layer0/act"``.
      activation: one of :data:`ACTIVATIONS`.
      width: number of units of the layer.
      per_unit: one parameter per unit (shape ``(width,)``) instead of one per layer (``()``).

    Returns:
      Dict from the short parameter name (``"c"``, ``"lam"``, ...) to its value.

    References:
      M. Fakhfakh, L. Chaari, arXiv:2304.04455 (MMeLU and its priors);
      K. He et al., *Delving deep into rectifiers*, ICCV 2015 (PReLU).

    Example:
      >>> from numpyro import handlers
      >>> tr = handlers.trace(handlers.seed(
      ...     lambda: activation_prior("layer0/act", "mmelu", 4), 0)).get_trace()
      >>> list(tr)
      ['layer0/act/c', 'layer0/act/lam', 'layer0/act/gamma']
    """
    check_activation(activation)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    shape = (width,) if per_unit else ()

    def site(short: str, d: dist.Distribution) -> Array:
        d = d.expand(shape).to_event(len(shape)) if shape else d
        return jnp.asarray(numpyro.sample(f"{name}/{short}", d))

    if activation == "mmelu":
        return {
            "c": site("c", dist.Uniform(0.0, 1.0)),
            "lam": site("lam", dist.Exponential(1.0)),
            "gamma": site("gamma", dist.Normal(0.0, 1.0)),
        }
    if activation == "prelu":
        return {"slope": site("slope", dist.Uniform(-1.0, 1.0))}
    if activation == "ditac":
        L = jnp.asarray(_ditac_prior_scale_tril(DITAC_CELLS), jnp.float32)
        return {"theta": site("theta", dist.MultivariateNormal(jnp.zeros(len(L)), scale_tril=L))}
    return {}


def apply_activation(activation: str, h: ArrayLike, params: Mapping[str, ArrayLike]) -> Array:
    """Apply ``activation`` with parameters ``params`` (from :func:`activation_prior`) to ``h``.

    Parameters broadcast against the last (unit) axis of ``h``.

    Example:
      >>> import jax.numpy as jnp
      >>> apply_activation("prelu", jnp.array([-2.0, 3.0]), {"slope": 0.5})
      Array([-1.,  3.], dtype=float32)
    """
    check_activation(activation)
    if activation == "mmelu":
        return mmelu(h, params["c"], params["lam"], params["gamma"])
    if activation == "ditac":
        from actfx._src.ditac import ditac

        return ditac(h, params["theta"])
    if activation == "prelu":
        h = jnp.asarray(h)
        return jax.nn.relu(h) + jnp.asarray(params["slope"], h.dtype) * jnp.minimum(h, 0)
    return jax.nn.relu(h)
