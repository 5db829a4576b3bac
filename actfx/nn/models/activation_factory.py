"""Activation factories: how reference models take a pluggable activation."""

from __future__ import annotations

from collections.abc import Callable

from jaxtyping import Array

Activation = Callable[[Array], Array]
ActFactory = Callable[[], Activation]


def build_activation(act: ActFactory, *, name: str = "act") -> Activation:
    """Call the zero-argument factory ``act`` once and check it returned an activation.

    Models call the factory once per activation site, so an activation module with
    parameters (e.g. ``actfx.nn.MMeLU``) gets its own parameters at every site, while a
    plain function (``jax.nn.relu``) is simply shared. A module class with default
    arguments is itself a factory (``act=actfx.nn.LayerAct``).

    Args:
      act: zero-argument callable returning a callable ``x -> y``, e.g.
        ``lambda: jax.nn.relu`` or ``lambda: actfx.nn.LayerAct("hardsilu")``.
      name: argument name used in error messages.

    Returns:
      The activation returned by ``act()``.

    Raises:
      ValueError: ``act`` is not callable, needs arguments (a common slip is passing
        ``jax.nn.relu`` itself instead of ``lambda: jax.nn.relu``), or returns a
        non-callable.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> build_activation(lambda: jax.nn.relu)(jnp.array([-1.0, 2.0]))
      Array([0., 2.], dtype=float32)
    """
    if not callable(act):
        raise ValueError(
            f"{name} must be a zero-argument factory returning an activation, "
            f"e.g. `lambda: jax.nn.relu`; got {act!r}"
        )
    try:
        fn = act()
    except TypeError as e:
        raise ValueError(
            f"{name} must be a zero-argument factory returning an activation, "
            f"e.g. `lambda: jax.nn.relu` (not `jax.nn.relu`); calling {name}() failed: {e}"
        ) from e
    if not callable(fn):
        raise ValueError(f"{name}() must return a callable activation, got {fn!r}")
    return fn


def default_act() -> Activation:
    """The default factory: ``jax.nn.relu``."""
    import jax

    return jax.nn.relu
