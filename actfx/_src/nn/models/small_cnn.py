"""A small CNN for quick experiments on small images (digits, MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx
from jaxtyping import Array, ArrayLike

import actfx
from actfx._src.nn.models.activation_factory import ActFactory, default_act, resolve_activation
from actfx._src.nn.models.conv import batch_norm, check_nhwc, conv3x3, global_avg_pool
from actfx._src.topk import check_fraction


class SmallCNN(nnx.Module):
    """``[conv3x3 -> BN -> act]`` per entry of ``widths``, global average pool, linear head.

    The first conv block has stride 1, the following ones stride 2. BatchNorm sits before
    the activation (as in the LayerAct ResNets); ``model.train()`` / ``model.eval()``
    switch BatchNorm between batch and running statistics. With ``topk`` set, Top-K
    activation sparsity (:func:`actfx.topk`, one pool per sample and channel over H, W)
    follows the activation of every block listed in ``topk_blocks``.

    Args:
      act: activation, resolved once and called once per block as
        ``act(num_features, rngs=rngs)`` with the block's width (see
        :func:`actfx.nn.models.resolve_activation`): ``jax.nn.relu`` (default), a module
        class (``actfx.nn.DiTAC``, ``actfx.nn.MMeLU``: per-channel parameters),
        ``lambda n, rngs: ...``, or a zero-argument factory ``lambda: actfx.nn.LayerAct()``.
      num_classes: output size.
      in_channels: channels of the input images.
      widths: output channels of the conv blocks (as :class:`ResNet`'s ``widths``).
      topk: fraction kept by Top-K in (0, 1], or ``None`` for no Top-K.
      topk_blocks: indices of the blocks followed by Top-K (default: every block).
      dtype: computation dtype (``None``: inferred).
      rngs: ``nnx.Rngs`` for initialisation.

    Input ``(N, H, W, in_channels)``, output logits ``(N, num_classes)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> m = SmallCNN(act=jax.nn.relu, num_classes=10, rngs=nnx.Rngs(0))
      >>> m(jnp.ones((4, 8, 8, 1))).shape
      (4, 10)
      >>> import actfx
      >>> m = SmallCNN(act=actfx.nn.MMeLU, widths=(8, 16), rngs=nnx.Rngs(0))
      >>> [a.c.shape for a in m.acts]
      [(8,), (16,)]
    """

    def __init__(
        self,
        *,
        act: ActFactory = default_act,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64),
        topk: float | None = None,
        topk_blocks: Sequence[int] | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ):
        widths = tuple(widths)
        if not widths or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in widths
        ):
            raise ValueError(
                f"widths must be a non-empty sequence of positive ints, got {widths!r}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        make = resolve_activation(act)
        topk = check_fraction("topk", topk, allow_none=True)  # a Python float (static)
        blocks = tuple(range(len(widths))) if topk_blocks is None else tuple(topk_blocks)
        if any(b not in range(len(widths)) for b in blocks):
            raise ValueError(
                f"topk_blocks must be indices in [0, {len(widths)}), got {topk_blocks!r}"
            )
        self.topk = topk
        self.topk_blocks = blocks if topk is not None else ()
        chans = (in_channels, *widths)
        self.convs = nnx.List(
            [
                conv3x3(a, b, stride=1 if i == 0 else 2, dtype=dtype, rngs=rngs)
                for i, (a, b) in enumerate(zip(chans[:-1], chans[1:]))
            ]
        )
        self.norms = nnx.List([batch_norm(c, dtype=dtype, rngs=rngs) for c in widths])
        self.acts = nnx.List([make(c, rngs) for c in widths])
        self.head = nnx.Linear(widths[-1], num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: ArrayLike) -> Array:
        x = check_nhwc(x, self.convs[0].in_features)
        for i, (conv, norm, act) in enumerate(zip(self.convs, self.norms, self.acts)):
            x = act(norm(conv(x)))
            # topk_blocks is () when topk is None
            if self.topk is not None and i in self.topk_blocks:
                x = actfx.topk(x, self.topk)
        return self.head(global_avg_pool(x))
