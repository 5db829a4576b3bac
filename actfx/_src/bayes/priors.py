"""Hierarchical sparsity priors on the weights of one layer, as NumPyro sample sites."""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array

PRIORS = ("laplace", "soft_laplace", "horseshoe", "normal")


def check_prior(prior: str) -> None:
    """Raise ``ValueError`` unless ``prior`` is one of :data:`PRIORS`."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")


def _unit_base(prior: str) -> dist.Distribution:
    """The unit-scale base distribution of the weights for ``prior``."""
    if prior == "laplace":
        return dist.Laplace(0.0, 1.0)
    if prior == "soft_laplace":
        return dist.SoftLaplace(0.0, 1.0)
    return dist.Normal(0.0, 1.0)  # "normal" and the horseshoe's z


def weight_prior(
    name: str,
    shape: tuple[int, ...],
    prior: str = "soft_laplace",
    *,
    centered: bool = False,
    scale_concentration: float = 2.0,
    scale_rate: float = 0.2,
    horseshoe_global_scale: float = 0.1,
) -> Array:
    r"""Sample the weights ``{name}/w`` of shape ``shape`` under a hierarchical sparsity prior.

    For ``prior`` in ``"laplace" | "soft_laplace" | "normal"`` one scale per layer,

    .. math::
        s \sim \mathrm{InverseGamma}(a, b), \qquad w = s\,z, \quad z_{ij} \sim p_0(0, 1),

    with :math:`p_0` the unit Laplace, SoftLaplace (smooth, for plain NUTS) or Normal. The
    ``"horseshoe"`` prior (Carvalho et al. 2010) is :math:`\tau \sim C^+(0, \tau_0)`,
    :math:`\lambda_{ij} \sim C^+(0, 1)`, :math:`w_{ij} = \tau \lambda_{ij} z_{ij}`,
    :math:`z_{ij} \sim N(0, 1)`.

    Non-centred (default): the unit draw is the site ``{name}/w_z`` and ``{name}/w`` is a
    deterministic site; this removes the scale/weight funnel that makes centred NUTS fail.
    Centred (``centered=True``, not for the horseshoe): ``{name}/w ~ p_0(0, s)`` directly.

    Sites: ``{name}/scale`` (or ``{name}/tau`` and ``{name}/w_lambda``), ``{name}/w_z``,
    ``{name}/w``.

    Args:
      name: site-name prefix, e.g. ``"layer0"``.
      shape: weight shape, e.g. ``(fan_in, fan_out)``.
      prior: one of :data:`PRIORS`.
      centered: use the centred parameterisation.
      scale_concentration: ``a`` of the InverseGamma hyper-prior.
      scale_rate: ``b`` of the InverseGamma hyper-prior.
      horseshoe_global_scale: ``tau_0`` of the horseshoe.

    Returns:
      The weights, an array of shape ``shape``.

    References:
      M. Fakhfakh, L. Chaari, *Bayesian optimization for sparse neural networks with
      trainable activation functions*, arXiv:2304.04455 (hierarchical l1 prior);
      C. Carvalho, N. Polson, J. Scott, *The horseshoe estimator for sparse signals*,
      Biometrika 2010.

    Example:
      >>> import jax, numpyro
      >>> from numpyro import handlers
      >>> tr = handlers.trace(handlers.seed(
      ...     lambda: weight_prior("layer0", (3, 2), "laplace"), 0)).get_trace()
      >>> [k for k in tr], tr["layer0/w"]["value"].shape
      (['layer0/scale', 'layer0/w_z', 'layer0/w'], (3, 2))
    """
    check_prior(prior)
    if prior == "horseshoe":
        if centered:
            raise ValueError("centered=True is not supported for prior='horseshoe'")
        tau = numpyro.sample(f"{name}/tau", dist.HalfCauchy(horseshoe_global_scale))
        lam = numpyro.sample(
            f"{name}/w_lambda", dist.HalfCauchy(jnp.ones(shape)).to_event(len(shape))
        )
        z = numpyro.sample(f"{name}/w_z", dist.Normal(jnp.zeros(shape), 1.0).to_event(len(shape)))
        return jnp.asarray(numpyro.deterministic(f"{name}/w", tau * lam * z))
    s = numpyro.sample(f"{name}/scale", dist.InverseGamma(scale_concentration, scale_rate))
    base = _unit_base(prior)
    if centered:
        d = type(base)(0.0, s) if prior != "normal" else dist.Normal(0.0, s)
        return jnp.asarray(numpyro.sample(f"{name}/w", d.expand(shape).to_event(len(shape))))
    z = numpyro.sample(f"{name}/w_z", base.expand(shape).to_event(len(shape)))
    return jnp.asarray(numpyro.deterministic(f"{name}/w", s * z))
