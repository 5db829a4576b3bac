"""Hierarchical Bayesian sparse networks with trainable activations, sampled by MCMC (NumPyro).

Build a model with :class:`SparseMLP`, sample it with :func:`run_mcmc` (NUTS with MAP
initialisation by default; block Gibbs; :class:`ProximalHMC` for exact Laplace priors;
:class:`ParallelTempering` for multimodal posteriors), then
summarise with :func:`posterior_predictive`, :func:`diagnostics_table`, the calibration metrics
and the sparsity utilities;
export the draws to ArviZ with :func:`to_inference_data`.
"""

from actfx._src.bayes.activation_priors import ACTIVATIONS, activation_prior, apply_activation
from actfx._src.bayes.diagnostics import diagnostics_table, format_table
from actfx._src.bayes.export import to_inference_data
from actfx._src.bayes.inference import (
    KERNELS,
    MAPDivergedError,
    MCMCConvergenceWarning,
    MCMCResult,
    annealed_map,
    default_chain_method,
    map_estimate,
    multistart_map,
    run_mcmc,
    site_r_hats,
)
from actfx._src.bayes.likelihoods import LIKELIHOODS, check_data
from actfx._src.bayes.model import SparseMLP
from actfx._src.bayes.posterior import (
    network_params,
    posterior_predictive,
    predictive_draws,
    prob_small,
    prune_masks,
    pruned_accuracy,
)
from actfx._src.bayes.priors import PRIORS, weight_prior
from actfx._src.bayes.proximal_hmc import ProximalHMC, ProximalHMCState, moreau_envelope_abs
from actfx._src.bayes.tempering import ParallelTempering, TemperingState
from actfx._src.metrics.calibration import (  # canonical home: actfx.metrics
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_curve,
)

__all__ = [
    "ACTIVATIONS",
    "KERNELS",
    "LIKELIHOODS",
    "PRIORS",
    "MAPDivergedError",
    "MCMCConvergenceWarning",
    "MCMCResult",
    "ParallelTempering",
    "ProximalHMC",
    "ProximalHMCState",
    "SparseMLP",
    "TemperingState",
    "activation_prior",
    "annealed_map",
    "apply_activation",
    "brier_score",
    "check_data",
    "default_chain_method",
    "diagnostics_table",
    "expected_calibration_error",
    "format_table",
    "map_estimate",
    "moreau_envelope_abs",
    "multistart_map",
    "negative_log_likelihood",
    "network_params",
    "posterior_predictive",
    "predictive_draws",
    "prob_small",
    "prune_masks",
    "pruned_accuracy",
    "reliability_curve",
    "run_mcmc",
    "site_r_hats",
    "to_inference_data",
    "weight_prior",
]
