"""Hierarchical Bayesian sparse networks with trainable activations, sampled by MCMC (NumPyro)."""

from actfx.bayes.proximal_hmc import ProximalHMC, ProximalHMCState, moreau_envelope_abs

__all__ = ["ProximalHMC", "ProximalHMCState", "moreau_envelope_abs"]
