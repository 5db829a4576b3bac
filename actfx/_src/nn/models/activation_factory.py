"""Activation factories: how reference models take a pluggable activation.

A model's ``act`` argument is resolved **once**, when the model is built, by inspecting its
signature (:func:`resolve_activation`), and then called once per activation site with
the number of channels at that site and the model's ``rngs``. The rule, in order:

1. ``act`` accepts a parameter named ``num_features`` (every per-channel actfx module
   class: ``actfx.nn.MMeLU``, ``actfx.nn.DiTAC``, ``actfx.nn.NeLU``,
   ``actfx.nn.BiasedReLU``; ``functools.partial(actfx.nn.MMeLU, c_init=0.3)``;
   ``lambda num_features, rngs: ...``) -> ``act(num_features=n, rngs=rngs)`` (``rngs``
   only if ``act`` accepts it). The activation gets one parameter set per channel.
2. ``act`` has two required positional parameters (``lambda n, rngs: ...``) ->
   ``act(n, rngs)``.
3. ``act`` has one required positional parameter named ``rngs`` (``lambda rngs: ...``), or
   is a function with one other required positional parameter besides a ``rngs`` keyword
   (``lambda n, *, rngs: ...``) -> ``act(rngs=rngs)`` / ``act(n, rngs=rngs)``. (A class
   whose one required argument is not ``num_features``, e.g. ``actfx.nn.TopK``, is an
   error: wrap it, ``lambda: actfx.nn.TopK(0.1)``.)
4. ``act`` has no required parameter (a zero-argument factory, ``lambda: jax.nn.relu``,
   ``lambda: actfx.nn.LayerAct("hardsilu")``, or a class with defaults such as
   ``actfx.nn.LayerAct``) -> ``act()`` (``act(rngs=rngs)`` if it accepts ``rngs``).
5. ``act`` is a plain function of one argument (``jax.nn.relu``, ``jnp.tanh``,
   ``jax.nn.gelu``, or anything whose signature cannot be read) -> it *is* the activation,
   shared by every site.

So a one-argument lambda is an activation (``lambda x: x * jax.nn.sigmoid(x)``); a factory
that needs the channel count names its argument ``num_features`` or also takes ``rngs``.
A module *instance* (``act=MMeLU(16)``) is rejected: it would share one parameter set
between sites of different widths.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast

from flax import nnx
from jaxtyping import Array

Activation = Callable[[Array], Array]
#: ``act(num_features, rngs=...)``, a zero-argument factory, or an activation function.
ActFactory = Callable[..., Any]
#: What :func:`resolve_activation` returns: ``make(num_features, rngs) -> activation``.
SiteFactory = Callable[[int, nnx.Rngs], Activation]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _parameters(act) -> list[inspect.Parameter]:
    """The call parameters of ``act``; classes (incl. ``nnx.Module`` s, whose metaclass hides
    ``__init__``) via ``__init__``; ``functools.partial`` minus what it binds."""
    if isinstance(act, functools.partial):
        params = _parameters(act.func)
        bound = len(act.args)
        rest = []
        for p in params:
            if bound and p.kind in _POSITIONAL:
                bound -= 1
                continue
            if p.name in act.keywords:
                p = p.replace(default=act.keywords[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            rest.append(p)
        return rest
    if isinstance(act, type):
        return list(inspect.signature(act.__init__).parameters.values())[1:]
    return list(inspect.signature(act).parameters.values())


def _checked(fn, name: str, what: str) -> Activation:
    if not callable(fn):
        raise ValueError(f"{name}{what} must return a callable activation, got {fn!r}")
    # a user's callable: its signature cannot be checked statically
    return cast(Activation, fn)


def resolve_activation(act: ActFactory, *, name: str = "act") -> SiteFactory:
    """Turn a model's ``act`` argument into ``make(num_features, rngs) -> activation``.

    The signature is inspected once; see the module docstring for the rule.

    Args:
      act: an activation factory or an activation function (see above).
      name: argument name used in error messages.

    Returns:
      A function ``make(num_features, rngs)`` that models call once per activation site.

    Raises:
      TypeError: ``act`` is an ``nnx.Module`` instance.
      ValueError: ``act`` is not callable, is a class that needs arguments it cannot be
        given (e.g. ``actfx.nn.TopK``: use ``lambda: actfx.nn.TopK(0.1)``), has more than
        two required parameters, or (at a site) returns a non-callable.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import actfx
      >>> make = resolve_activation(actfx.nn.MMeLU)
      >>> make(16, nnx.Rngs(0)).c.shape        # per-channel parameters
      (16,)
      >>> resolve_activation(jax.nn.relu)(16, nnx.Rngs(0)) is jax.nn.relu
      True
      >>> make = resolve_activation(lambda n, rngs: actfx.nn.DiTAC(n, rngs=rngs))
      >>> make(8, nnx.Rngs(0)).theta.shape
      (8, 9)
      >>> resolve_activation(lambda: jax.nn.silu)(8, nnx.Rngs(0))(jnp.zeros(2))
      Array([0., 0.], dtype=float32)
    """
    if isinstance(act, nnx.Module):
        raise TypeError(
            f"{name} must be a factory (e.g. the class actfx.nn.MMeLU or `lambda n, rngs: ...`), "
            f"not a module instance ({type(act).__name__}): every activation site needs its "
            "own parameters"
        )
    if not callable(act):
        raise ValueError(
            f"{name} must be an activation function or a factory such as `lambda: jax.nn.relu` "
            f"or `lambda num_features, rngs: ...`; got {act!r}"
        )
    try:
        params = _parameters(act)
    except (TypeError, ValueError):  # builtins / ufunc-like objects: an activation
        return lambda n, rngs: act
    names = {p.name for p in params}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    takes_rngs = "rngs" in names or var_kw
    required = [
        p.name for p in params if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty
    ]
    is_class = isinstance(act, type)
    label = getattr(act, "__name__", repr(act))

    def rk(rngs):
        return {"rngs": rngs} if takes_rngs else {}

    if "num_features" in names:
        others = [r for r in required if r not in ("num_features", "rngs")]
        if others:
            raise ValueError(f"{name}={label} needs arguments {others} that a model cannot give")
        return lambda n, rngs: _checked(act(num_features=n, **rk(rngs)), name, "(num_features)")
    positional = [r for r in required if r != "rngs"]
    if len(required) == 2:
        return lambda n, rngs: _checked(act(n, rngs), name, "(n, rngs)")
    if len(required) > 2:
        raise ValueError(
            f"{name} must take at most two required arguments (num_features, rngs); "
            f"{label} takes {required}"
        )
    if not positional:  # zero-argument factory (or only rngs)
        return lambda n, rngs: _checked(act(**rk(rngs)), name, "()")
    # exactly one required positional argument besides rngs
    if is_class:  # a class's first argument is the channel count only if named num_features
        raise ValueError(
            f"{name}={label} needs the argument {positional[0]!r}; pass a factory such as "
            f"`lambda: {label}(...)`"
        )
    if "rngs" in names:
        return lambda n, rngs: _checked(act(n, rngs=rngs), name, "(n, rngs=rngs)")
    return lambda n, rngs: act


def build_activation(
    act: ActFactory, num_features: int, *, rngs: nnx.Rngs, name: str = "act"
) -> Activation:
    """One activation for a site with ``num_features`` channels (resolves ``act`` each call;
    models resolve once with :func:`resolve_activation` instead).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> build_activation(lambda: jax.nn.relu, 4, rngs=nnx.Rngs(0))(jnp.array([-1.0, 2.0]))
      Array([0., 2.], dtype=float32)
    """
    return resolve_activation(act, name=name)(num_features, rngs)


def default_act() -> Activation:
    """The default factory: ``jax.nn.relu``."""
    import jax

    return jax.nn.relu
