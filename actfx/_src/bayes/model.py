"""A Bayesian MLP whose weights carry a sparsity prior and whose activations are random too."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

from actfx._src.bayes.activation_priors import activation_prior, apply_activation, check_activation
from actfx._src.bayes.likelihoods import check_data, check_likelihood, observe, output_mean
from actfx._src.bayes.priors import check_prior, weight_prior


@dataclasses.dataclass(frozen=True)
class SparseMLP:
    r"""Hierarchical Bayesian sparse MLP with trainable activations, as a NumPyro model.

    For layers :math:`l = 0..L-1` with sizes ``layer_sizes = (d_0, ..., d_L)``:

    .. math::
        h_0 = x, \quad h_{l+1} = f_{\phi_l}(h_l W_l + b_l) \ (l < L-1), \quad
        \mathrm{out} = h_{L-1} W_{L-1} + b_{L-1},

    with :math:`W_l` under the hierarchical sparsity prior of :func:`weight_prior`,
    :math:`b_l \sim N(0, \sigma_b^2)`, activation parameters :math:`\phi_l` under the priors
    of :func:`activation_prior`, and ``y`` from the likelihood applied to ``out``.

    Site names (``l`` the layer index): ``layer{l}/scale``, ``layer{l}/w_z``, ``layer{l}/w``
    (deterministic when non-centred), ``layer{l}/b``, ``layer{l}/act/c``, ``layer{l}/act/lam``,
    ``layer{l}/act/gamma`` (MMeLU) or ``layer{l}/act/slope`` (PReLU), ``noise/scale``
    (Normal likelihood), ``y``.

    Calling the instance, ``model(x, y=None)``, runs the NumPyro model: it validates the data,
    samples every site, and observes ``y`` (or samples it when ``y`` is None).
    :meth:`forward` evaluates the network for one draw of the parameters.

    Attributes:
      layer_sizes: ``(in_features, hidden..., out_features)``; ``out_features`` must be 1 for
        Bernoulli and >= 2 for Categorical.
      activation: ``"mmelu" | "prelu" | "relu" | "ditac"`` (DiTAC theta under the CPA
        Gaussian prior, see :func:`activation_prior`).
      prior: ``"laplace" | "soft_laplace" | "horseshoe" | "normal"``.
      likelihood: ``"bernoulli" | "categorical" | "normal"``.
      per_unit: one activation parameter per hidden unit instead of per layer.
      centered: centred hierarchy (default non-centred; see :func:`weight_prior`).
      scale_concentration, scale_rate: InverseGamma hyper-prior of the layer scales.
      bias_scale: prior std of the biases.

    References:
      M. Fakhfakh, L. Chaari, *Bayesian optimization for sparse neural networks with
      trainable activation functions*, arXiv:2304.04455.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from numpyro import handlers
      >>> model = SparseMLP((3, 4, 1))
      >>> tr = handlers.trace(handlers.seed(model, 0)).get_trace(jnp.ones((5, 3)), jnp.ones(5))
      >>> [k for k in tr if tr[k]["type"] == "sample"]
      ['layer0/scale', 'layer0/w_z', 'layer0/b', 'layer0/act/c', 'layer0/act/lam',
       'layer0/act/gamma', 'layer1/scale', 'layer1/w_z', 'layer1/b', 'y']
    """

    layer_sizes: tuple[int, ...]
    activation: str = "mmelu"
    prior: str = "soft_laplace"
    likelihood: str = "bernoulli"
    per_unit: bool = False
    centered: bool = False
    scale_concentration: float = 2.0
    scale_rate: float = 0.2
    bias_scale: float = 1.0

    def __post_init__(self):
        sizes = tuple(self.layer_sizes)
        if len(sizes) < 2 or not all(isinstance(s, int) and s >= 1 for s in sizes):
            raise ValueError(
                "layer_sizes must be >= 2 positive ints (in, hidden..., out), "
                f"got {self.layer_sizes!r}"
            )
        object.__setattr__(self, "layer_sizes", sizes)
        check_activation(self.activation)
        check_prior(self.prior)
        check_likelihood(self.likelihood)
        if self.likelihood == "bernoulli" and sizes[-1] != 1:
            raise ValueError(f"layer_sizes must end in 1 for likelihood='bernoulli', got {sizes}")
        if self.likelihood == "categorical" and sizes[-1] < 2:
            raise ValueError(
                f"layer_sizes must end in >= 2 classes for likelihood='categorical', got {sizes}"
            )
        if self.centered and self.prior == "horseshoe":
            raise ValueError("centered=True is not supported for prior='horseshoe'")
        for name in ("scale_concentration", "scale_rate", "bias_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (
                isinstance(v, (int, float)) and math.isfinite(v) and v > 0
            ):
                raise ValueError(f"{name} must be a finite float > 0, got {v!r}")

    @property
    def num_layers(self) -> int:
        return len(self.layer_sizes) - 1

    def check_data(self, x: ArrayLike, y: ArrayLike | None = None) -> None:
        """Validate ``x`` (and ``y``) against this model; see :func:`check_data`."""
        check_data(x, y, self.likelihood, self.layer_sizes[0], self.layer_sizes[-1])

    def weight_sites(self) -> list[str]:
        """Names of the weight sites ``layer{l}/w`` (deterministic when non-centred)."""
        return [f"layer{l}/w" for l in range(self.num_layers)]

    def activation_sites(self) -> list[str]:
        """Names of the activation-parameter sample sites."""
        short = {
            "mmelu": ("c", "lam", "gamma"),
            "prelu": ("slope",),
            "relu": (),
            "ditac": ("theta",),
        }[self.activation]
        return [f"layer{l}/act/{s}" for l in range(self.num_layers - 1) for s in short]

    def scale_sites(self) -> list[str]:
        """Names of the per-layer prior-scale sites (``scale`` or horseshoe ``tau``)."""
        short = "tau" if self.prior == "horseshoe" else "scale"
        return [f"layer{l}/{short}" for l in range(self.num_layers)]

    def forward(self, params: Mapping[str, ArrayLike], x: ArrayLike) -> Array:
        """Network outputs ``(N, out_features)`` for one draw ``params`` (site name -> value).

        ``params`` needs ``layer{l}/w``, ``layer{l}/b`` and the activation sites; a dict of
        posterior samples with a leading draw axis works through ``jax.vmap``.
        """
        h = jnp.asarray(x)
        for l in range(self.num_layers):
            h = h @ params[f"layer{l}/w"] + params[f"layer{l}/b"]
            if l < self.num_layers - 1:
                prefix = f"layer{l}/act/"
                act = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
                h = apply_activation(self.activation, h, act)
        return h

    def predict_mean(self, params: Mapping[str, ArrayLike], x: ArrayLike) -> Array:
        """Predictive mean of ``y`` for one draw (P(y=1), class probabilities or the mean)."""
        return output_mean(self.likelihood, self.forward(params, x))

    def __call__(self, x: ArrayLike, y: ArrayLike | None = None) -> None:
        self.check_data(x, y)
        params = {}
        for l in range(self.num_layers):
            fan_in, fan_out = self.layer_sizes[l], self.layer_sizes[l + 1]
            params[f"layer{l}/w"] = weight_prior(
                f"layer{l}",
                (fan_in, fan_out),
                self.prior,
                centered=self.centered,
                scale_concentration=self.scale_concentration,
                scale_rate=self.scale_rate,
            )
            params[f"layer{l}/b"] = numpyro.sample(
                f"layer{l}/b", dist.Normal(jnp.zeros(fan_out), self.bias_scale).to_event(1)
            )
            if l < self.num_layers - 1:
                act = activation_prior(
                    f"layer{l}/act", self.activation, fan_out, per_unit=self.per_unit
                )
                params.update({f"layer{l}/act/{k}": v for k, v in act.items()})
        observe(self.likelihood, self.forward(params, x), y)
