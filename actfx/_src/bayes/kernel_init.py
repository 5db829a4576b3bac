"""The start of an actfx MCMC kernel's ``init``, shared by ProximalHMC and ParallelTempering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import random
from numpyro.infer.util import ModelInfo, initialize_model
from numpyro.util import is_prng_key


def split_and_initialize(
    rng_key: Any,
    model: Callable,
    init_strategy: Callable,
    model_args: tuple,
    model_kwargs: dict,
) -> tuple[Any, bool, ModelInfo]:
    """``(rng_key, vectorized, info)``: the kernel's remaining key(s), whether ``rng_key``
    holds one key per chain (``chain_method="vectorized"``), and NumPyro's
    ``initialize_model`` of ``model`` with a key split off, as ``HMC.init`` does it."""
    vectorized = not is_prng_key(rng_key)
    if vectorized:
        rng_key, key_init = jnp.swapaxes(jax.vmap(random.split)(rng_key), 0, 1)
    else:
        rng_key, key_init = random.split(rng_key)
    info = initialize_model(
        key_init,
        model,
        dynamic_args=True,
        init_strategy=init_strategy,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    return rng_key, vectorized, info
