"""Pivotal auto-encoders: one-layer transform-learning denoisers with NeLU or ReLU + bias."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, ArrayLike

from actfx._src.nn._common import (
    as_input,
    check_bool,
    check_dtype,
    check_int,
    check_num_features,
    check_real,
    fit_param,
)
from actfx._src.nn.nelu import NeLU, NeLUMethod

_ACTIVATIONS = ("nelu", "relu")
_DENSE_DECODERS = ("free", "pinv", "transpose")
_CONV_DECODERS = ("free", "transpose")


def _check_size(name: str, value) -> int:
    """A positive Python/NumPy int (not bool), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _left_pinv(k: Array, iters: int = 30) -> Array:
    """Moore-Penrose pseudo-inverse ``K^+`` of a full-rank ``(d, m)`` matrix, matmuls only.

    ``K^+ = K^T (K K^T)^{-1}`` for ``m >= d`` (``(K^T K)^{-1} K^T`` otherwise), with the
    Gram inverse from ``iters`` Newton-Schulz steps ``X <- X (2 I - G X)`` started at
    ``X_0 = I / ||G||_F`` (eigenvalues of ``X_0 G`` in ``(0, 1]``, quadratic convergence
    after ``~log2 cond(G)`` steps: 30 steps reach float32 round-off for ``cond(G)`` up to
    ``~1e7``). This runs at every training step, and on CPU XLA's LAPACK-based
    ``inv``/``solve``/``pinv`` made a NeLU auto-encoder's step ~40x slower.
    """
    d, m = k.shape
    g = k @ k.T if m >= d else k.T @ k
    eye = jnp.eye(g.shape[0], dtype=g.dtype)
    x0 = eye / jnp.linalg.norm(g)
    inv = jax.lax.fori_loop(0, iters, lambda _, x: x @ (2 * eye - g @ x), x0)
    return k.T @ inv if m >= d else inv @ k.T


def validate_biased_relu_args(
    num_features, bias_init, two_sided, channel_axis, dtype, param_dtype
) -> tuple[int | None, float]:
    """Shared NNX/Linen checks of :class:`BiasedReLU`; returns ``(num_features, bias_init)``."""
    num_features = check_num_features(num_features)
    bias = check_real("bias_init", bias_init)
    check_bool("two_sided", two_sided)
    check_int("channel_axis", channel_axis)
    check_dtype("dtype", dtype)
    check_dtype("param_dtype", param_dtype, allow_none=False)
    return num_features, fit_param("bias_init", bias, bias, param_dtype)


class BiasedReLU(nnx.Module):
    r"""Baseline thresholding ``relu(x - b)`` (or ``sign(x) relu(|x| - b)`` if two-sided).

    The lasso proximal map: ``argmin_z 1/2 ||x - z||^2 + b ||z||_1`` (``z >= 0`` unless
    ``two_sided``), with a learned bias ``b``: one per feature (``num_features`` entries on
    ``channel_axis``) or, with ``num_features=None``, one scalar.

    Args:
      num_features: number of features on ``channel_axis`` (one bias each), or ``None``
        for a single shared bias.
      bias_init: initial bias (any finite float; the threshold is ``b``, so ``b < 0`` lets
        small negative inputs through).
      two_sided: soft-thresholding ``sign(x) relu(|x| - b)`` instead of ``relu(x - b)``.
      channel_axis: the feature axis of the input.
      dtype: computation dtype (``None``: the input's dtype), as in ``flax.nnx``.
      param_dtype: storage dtype of ``b``.
      rngs: accepted for a uniform module signature; unused (the init is deterministic).

    Raises:
      ValueError: ``num_features`` not a positive int / ``None``, a non-finite
        ``bias_init`` or one that overflows ``param_dtype``, ``two_sided`` not a bool,
        ``dtype``/``param_dtype`` not floating dtypes (``param_dtype`` not ``None``), or
        (at call time) an input whose ``channel_axis`` size differs from ``num_features``.

    Example:
      >>> import jax.numpy as jnp
      >>> from actfx.nn import BiasedReLU
      >>> BiasedReLU(2, bias_init=0.5)(jnp.array([[1.0, -1.0]]))
      Array([[0.5, 0. ]], dtype=float32)
    """

    def __init__(
        self,
        num_features: int | None,
        *,
        bias_init: float = 0.1,
        two_sided: bool = False,
        channel_axis: int = -1,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        num_features, bias_init = validate_biased_relu_args(
            num_features, bias_init, two_sided, channel_axis, dtype, param_dtype
        )
        shape = () if num_features is None else (num_features,)
        self.bias = nnx.Param(jnp.full(shape, bias_init, param_dtype))
        self.num_features = num_features
        self.two_sided = bool(two_sided)
        self.channel_axis = int(channel_axis)
        self.dtype = dtype

    def __call__(self, x: ArrayLike) -> Array:
        x = as_input(x, self.dtype)
        b = self.bias[...].astype(x.dtype)
        if self.num_features is not None:
            ax = self.channel_axis % x.ndim if x.ndim else 0
            if x.ndim == 0 or x.shape[ax] != self.num_features:
                raise ValueError(
                    f"x must have num_features={self.num_features} entries on "
                    f"channel_axis={self.channel_axis}, got shape {x.shape}"
                )
            b = b.reshape([self.num_features if i == ax else 1 for i in range(x.ndim)])
        if self.two_sided:
            return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - b)
        return jax.nn.relu(x - b)


def _threshold(
    activation: str,
    num_features: int,
    axis,
    two_sided: bool,
    lam_init: float,
    bias_init: float,
    per_atom: bool,
    method: NeLUMethod,
    iters: int,
    rngs: nnx.Rngs,
) -> nnx.Module:
    _check_choice("activation", activation, _ACTIVATIONS)
    feats = num_features if per_atom else None
    if activation == "nelu":
        # positional first argument: NeLU's feature count (None = one scalar lam)
        return NeLU(
            feats,
            lam_init=lam_init,
            axis=axis,
            two_sided=two_sided,
            method=method,
            iters=iters,
            rngs=rngs,
        )
    return BiasedReLU(feats, bias_init=bias_init, two_sided=two_sided, rngs=rngs)


class PivotalAE(nnx.Module):
    r"""Dense pivotal auto-encoder on vectors / flattened patches: ``y_hat = D act(W y)``.

    ``W`` (``in_features -> num_atoms``, stored as the ``(in_features, num_atoms)`` kernel
    ``K`` of an ``nnx.Linear``, so the code is ``x = y K``) is the learned transform,
    ``act`` is NeLU (threshold ``lam * rms(residual)``, which follows the noise level, so
    ``lam`` can be pivotal) or the baseline ``relu(. - b)`` with a learned bias, and ``D``
    decodes. No biases in ``W`` or ``D``. With ``remove_mean=True`` the mean of each input
    vector (a patch's DC) is removed before encoding and added back after decoding.

    Decoders (``decoder=``):

    * ``"free"``: ``D`` is its own learned matrix, initialised at ``K^T in_features /
      num_atoms``. It can learn an output *gain* that undoes shrinkage sized for the
      training noise level (the "gain loophole" of issue 14).
    * ``"pinv"``: ``y_hat = act(y K) K^+`` with ``K^+ = pinv(K)`` recomputed from the
      encoder at every call (no decoder parameters; computed as ``K^T (K K^T)^{-1}`` by
      Newton-Schulz iterations, which assumes a full-rank, not too ill-conditioned ``K``).
      For ``num_atoms >= in_features`` and full-rank ``K``, ``K K^+ = I``: without
      thresholding the AE is the identity, and rescaling ``K`` cannot change the output
      scale (NeLU is positively homogeneous), so no gain can be learned apart from what
      the threshold does.
    * ``"transpose"``: ``y_hat = s act(y K) K^T`` with one learned scalar ``s`` (init
      ``in_features / num_atoms``). Cheaper than ``pinv``, but ``s`` (and the scale of
      ``K``) is still a global gain.

    Args:
      in_features: input size ``d`` (e.g. ``8 * 8`` for 8x8 patches), positive int.
      num_atoms: code size ``m``, positive int.
      activation: ``"nelu"`` or ``"relu"``.
      two_sided: soft-thresholding variants of both activations.
      lam_init: initial NeLU ``lam`` (RMS units, see :class:`actfx.nn.NeLU`).
      bias_init: initial ReLU bias.
      per_atom: one NeLU ``lam`` / ReLU bias per atom (shape ``(num_atoms,)``, the
        default); ``False``: one scalar shared by all atoms.
      decoder: ``"free"``, ``"pinv"`` or ``"transpose"`` (above).
      remove_mean: subtract / restore each input's mean.
      method, iters: NeLU solver (see :func:`actfx.nelu`).
      dtype: computation dtype of the linear maps (``None``: inferred), as in ``flax.nnx``.
      param_dtype: storage dtype of the linear maps.
      rngs: ``nnx.Rngs`` for the weights.

    Raises:
      ValueError: ``in_features`` / ``num_atoms`` not positive ints, unknown
        ``activation`` or ``decoder`` (each message names the argument); at call time,
        an input whose last axis is not ``in_features`` (a code: not ``num_atoms``).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import PivotalAE
      >>> ae = PivotalAE(64, 128, rngs=nnx.Rngs(0))
      >>> ae(jnp.ones((5, 64))).shape, ae.act.lam.shape
      ((5, 64), (128,))
      >>> tied = PivotalAE(4, 8, decoder="pinv", two_sided=True, lam_init=1e-3,
      ...                  rngs=nnx.Rngs(0))
      >>> y = jnp.array([[1.0, -2.0, 0.5, 3.0]])
      >>> bool(jnp.allclose(tied(y), y, atol=2e-2))   # tiny threshold: ~ identity
      True
    """

    def __init__(
        self,
        in_features: int,
        num_atoms: int,
        *,
        activation: Literal["nelu", "relu"] = "nelu",
        two_sided: bool = False,
        lam_init: float = 2.0,
        bias_init: float = 0.1,
        per_atom: bool = True,
        decoder: Literal["free", "pinv", "transpose"] = "free",
        remove_mean: bool = False,
        method: NeLUMethod = "exact",
        iters: int = 100,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        in_features = _check_size("in_features", in_features)
        num_atoms = _check_size("num_atoms", num_atoms)
        self.decoder_kind = _check_choice("decoder", decoder, _DENSE_DECODERS)
        self.encoder = nnx.Linear(
            in_features,
            num_atoms,
            use_bias=False,
            kernel_init=jax.nn.initializers.orthogonal(),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        scale = in_features / num_atoms
        if decoder == "free":
            self.decoder = nnx.Linear(
                num_atoms,
                in_features,
                use_bias=False,
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )
            self.decoder.kernel[...] = self.encoder.kernel[...].T * scale
        elif decoder == "transpose":
            self.decoder_scale = nnx.Param(jnp.asarray(scale, param_dtype))
        self.act = _threshold(
            activation, num_atoms, -1, two_sided, lam_init, bias_init, per_atom, method, iters, rngs
        )
        self.activation = activation
        self.in_features, self.num_atoms = in_features, num_atoms
        self.remove_mean = bool(remove_mean)

    def decoder_matrix(self) -> Array:
        """The ``(num_atoms, in_features)`` matrix ``M`` with ``y_hat = act(y K) M``."""
        k = self.encoder.kernel[...]
        if self.decoder_kind == "free":
            return self.decoder.kernel[...]
        if self.decoder_kind == "pinv":
            return _left_pinv(k)
        return self.decoder_scale[...] * k.T

    def encode(self, y: ArrayLike) -> Array:
        """The sparse code ``act(W (y - mean))``, shape ``(..., num_atoms)``."""
        y = jnp.asarray(y)
        if y.ndim == 0 or y.shape[-1] != self.in_features:
            raise ValueError(
                f"y must have in_features={self.in_features} entries on its last axis, got "
                f"shape {y.shape}"
            )
        if self.remove_mean:
            y = y - jnp.mean(y, axis=-1, keepdims=True)
        return self.act(self.encoder(y))

    def decode(self, z: ArrayLike) -> Array:
        """``z M`` (no mean restored), shape ``(..., in_features)``."""
        z = jnp.asarray(z)
        if z.ndim == 0 or z.shape[-1] != self.num_atoms:
            raise ValueError(
                f"z must have num_atoms={self.num_atoms} entries on its last axis, got "
                f"shape {z.shape}"
            )
        if self.decoder_kind == "free":
            return self.decoder(z)
        return z @ self.decoder_matrix().astype(z.dtype)

    def __call__(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        out = self.decode(self.encode(y))
        if self.remove_mean:
            out = out + jnp.mean(y, axis=-1, keepdims=True)
        return out


class ConvPivotalAE(nnx.Module):
    r"""Convolutional pivotal auto-encoder on ``(N, H, W, C)`` images.

    ``y_hat = D * act(W * y)`` with ``W`` a ``kernel_size`` convolution to ``num_features``
    channels and ``D`` one back to ``C`` (``"SAME"`` padding, no biases). For NeLU the pool
    is the whole ``(H, W, num_features)`` code of each image and ``lam`` is in RMS units,
    so one model applies to images of any size. ``remove_mean`` subtracts/restores each
    image's mean.

    Decoders: ``"free"`` (a learned convolution, initialised as the adjoint of the
    encoder scaled by ``1 / num_features``) or ``"transpose"`` (the adjoint of the encoder
    times one learned scalar, init ``1 / num_features``). A convolutional pseudo-inverse
    has no cheap closed form, so ``"pinv"`` is dense-only (:class:`PivotalAE`).

    Args:
      in_features: image channels ``C`` (1 for grayscale), positive int.
      num_features: code channels, positive int.
      kernel_size: filter size (positive odd int).
      activation, two_sided, lam_init, bias_init, per_atom, remove_mean, method, iters,
        dtype, param_dtype: as in :class:`PivotalAE` (an atom is a code channel here).
      decoder: ``"free"`` or ``"transpose"``.
      rngs: ``nnx.Rngs`` for the weights.

    Raises:
      ValueError: sizes not positive ints, an even ``kernel_size``, unknown
        ``activation`` / ``decoder`` (each message names the argument); at call time, an
        input that is not ``(N, H, W, in_features)`` (a code: ``(N, H, W, num_features)``).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from actfx.nn import ConvPivotalAE
      >>> ae = ConvPivotalAE(1, 8, kernel_size=5, rngs=nnx.Rngs(0))
      >>> ae(jnp.ones((2, 16, 16, 1))).shape
      (2, 16, 16, 1)
    """

    def __init__(
        self,
        in_features: int,
        num_features: int,
        *,
        kernel_size: int = 7,
        activation: Literal["nelu", "relu"] = "nelu",
        two_sided: bool = False,
        lam_init: float = 2.0,
        bias_init: float = 0.1,
        per_atom: bool = True,
        decoder: Literal["free", "transpose"] = "free",
        remove_mean: bool = True,
        method: NeLUMethod = "exact",
        iters: int = 100,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        in_features = _check_size("in_features", in_features)
        num_features = _check_size("num_features", num_features)
        kernel_size = _check_size("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.decoder_kind = _check_choice("decoder", decoder, _CONV_DECODERS)
        k = (kernel_size, kernel_size)
        init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        self.encoder = nnx.Conv(
            in_features,
            num_features,
            k,
            padding="SAME",
            use_bias=False,
            kernel_init=init,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        if decoder == "free":
            self.decoder = nnx.Conv(
                num_features,
                in_features,
                k,
                padding="SAME",
                use_bias=False,
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )
            self.decoder.kernel[...] = self._adjoint() / num_features
        else:
            self.decoder_scale = nnx.Param(jnp.asarray(1.0 / num_features, param_dtype))
        self.act = _threshold(
            activation,
            num_features,
            (-3, -2, -1),
            two_sided,
            lam_init,
            bias_init,
            per_atom,
            method,
            iters,
            rngs,
        )
        self.activation = activation
        self.in_features, self.num_features = in_features, num_features
        self.remove_mean = bool(remove_mean)

    def _adjoint(self) -> Array:
        """The kernel of the adjoint ("SAME", odd size) of the encoder convolution."""
        return jnp.flip(self.encoder.kernel[...], (0, 1)).transpose(0, 1, 3, 2)

    def encode(self, y: ArrayLike) -> Array:
        """The sparse code ``act(W * (y - mean))``, shape ``(N, H, W, num_features)``."""
        y = jnp.asarray(y)
        if y.ndim != 4 or y.shape[-1] != self.in_features:
            raise ValueError(
                f"y must be (N, H, W, in_features={self.in_features}) images, got shape {y.shape}"
            )
        if self.remove_mean:
            y = y - jnp.mean(y, axis=(-3, -2, -1), keepdims=True)
        return self.act(self.encoder(y))

    def decode(self, z: ArrayLike) -> Array:
        """``D * z`` (no mean restored), shape ``(N, H, W, in_features)``."""
        z = jnp.asarray(z)
        if z.ndim != 4 or z.shape[-1] != self.num_features:
            raise ValueError(
                f"z must be (N, H, W, num_features={self.num_features}) codes, got shape {z.shape}"
            )
        if self.decoder_kind == "free":
            return self.decoder(z)
        kern = (self.decoder_scale[...] * self._adjoint()).astype(z.dtype)
        return jax.lax.conv_general_dilated(
            z, kern, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def __call__(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        out = self.decode(self.encode(y))
        if self.remove_mean:
            out = out + jnp.mean(y, axis=(-3, -2, -1), keepdims=True)
        return out
