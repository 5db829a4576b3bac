"""CIFAR-style ResNets (ResNet-20/32/44/56) with a pluggable activation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike

import actfx
from actfx._src.nn.models.activation_factory import (
    ActFactory,
    default_act,
    resolve_activation,
)
from actfx._src.nn.models.conv import batch_norm, check_nhwc, conv3x3, global_avg_pool
from actfx._src.topk import check_fraction

Shortcut = Literal["A", "B"]


def _pad_shortcut(x: Array, stride: int, out_channels: int) -> Array:
    """Option-A shortcut: subsample by ``stride`` and zero-pad channels (split evenly)."""
    x = x[:, ::stride, ::stride, :]
    extra = out_channels - x.shape[-1]
    lo = extra // 2
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (lo, extra - lo)))


class BasicBlock(nnx.Module):
    """``act(BN(conv(act(BN(conv(x))))) + shortcut(x))``: the two-conv residual block.

    BatchNorm precedes each activation; the activation factory is called twice (one per
    site), each time with ``out_channels`` features (see
    :func:`actfx.nn.models.resolve_activation` for how ``act`` is called). When the block
    changes shape, the shortcut is option ``"A"`` (parameter-free: stride-``s`` subsampling
    and zero channel padding, as in He et al.'s CIFAR ResNets and the LayerAct reference
    code) or ``"B"`` (1x1 conv + BN).

    Args:
      in_channels, out_channels: channel counts.
      stride: stride of the first conv (1 or 2).
      act: activation factory or function (resolved by
        :func:`~actfx.nn.models.resolve_activation`).
      shortcut: ``"A"`` or ``"B"``.
      dtype: computation dtype.
      rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        act: ActFactory = default_act,
        shortcut: Shortcut = "A",
        dtype=None,
        rngs: nnx.Rngs,
    ):
        make = resolve_activation(act)
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(out_channels, dtype=dtype, rngs=rngs)
        self.act1 = make(out_channels, rngs)
        self.conv2 = conv3x3(out_channels, out_channels, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm(out_channels, dtype=dtype, rngs=rngs)
        self.act2 = make(out_channels, rngs)
        self.stride = stride
        self.out_channels = out_channels
        self.project = stride != 1 or in_channels != out_channels
        self.shortcut = shortcut
        if self.project and shortcut == "B":
            self.proj_conv = nnx.Conv(
                in_channels,
                out_channels,
                kernel_size=(1, 1),
                strides=(stride, stride),
                use_bias=False,
                kernel_init=jax.nn.initializers.he_normal(),
                dtype=dtype,
                rngs=rngs,
            )
            self.proj_bn = batch_norm(out_channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if not self.project:
            s = x
        elif self.shortcut == "A":
            s = _pad_shortcut(x, self.stride, self.out_channels)
        else:
            s = self.proj_bn(self.proj_conv(x))
        return self.act2(y + s)


class ResNet(nnx.Module):
    """CIFAR ResNet of depth ``6n + 2``: stem, 3 stages of ``n`` basic blocks, linear head.

    stem ``conv3x3(16) -> BN -> act``; stage ``i`` has ``n`` :class:`BasicBlock` with
    ``widths[i]`` channels (16/32/64), the first block of stages 2 and 3 with stride 2;
    then global average pooling and a linear layer. ResNet-20/32/44/56 have
    ``n = 3/5/7/9`` (0.27M/0.46M/0.66M/0.85M parameters at 10 classes).

    ``act`` is resolved once (:func:`actfx.nn.models.resolve_activation`) and called once per
    activation site (``1 + 2 * 3n`` sites) as ``act(num_features, rngs=rngs)`` with the
    site's channel count (``widths[0]`` for the stem, the stage width in each block), so
    per-channel trainable activations plug in directly -- ``act=actfx.nn.DiTAC``,
    ``act=actfx.nn.MMeLU``, ``act=lambda n, rngs: ...`` -- as do zero-argument factories
    (``lambda: actfx.nn.LayerAct("silu")``) and plain functions (``act=jax.nn.relu``).
    LayerAct replaces ReLU only; BN stays before it.

    Top-K activation sparsity (:func:`actfx.topk` over H, W per sample and channel) can
    be inserted after the stages listed in ``topk_stages`` (0, 1, 2), as in the shape-bias
    experiments of Li et al.

    Args:
      depth: 20, 32, 44, 56, ... (any ``6n + 2`` with ``n >= 1``).
      num_classes: output size.
      act: activation: ``jax.nn.relu`` (default), a module class (``actfx.nn.MMeLU``), a
        factory ``lambda n, rngs: ...`` or a zero-argument factory (see above).
      in_channels: channels of the input images (3 for CIFAR, 1 for digits).
      widths: channels of the three stages.
      shortcut: ``"A"`` (zero-padding identity, the CIFAR default) or ``"B"`` (1x1 conv).
      topk: fraction kept by Top-K in (0, 1], or ``None``.
      topk_stages: stages followed by Top-K (default ``(2,)``, the last).
      dtype: computation dtype (e.g. ``jnp.bfloat16`` on TPU; parameters stay float32).
      rngs: ``nnx.Rngs``.

    Input ``(N, H, W, in_channels)``, output logits ``(N, num_classes)``.

    References:
      K. He, X. Zhang, S. Ren, J. Sun, *Deep Residual Learning for Image Recognition*,
      CVPR 2016 (Sec. 4.2, CIFAR-10 architecture).

    Usage: ``model = ResNet(20, act=lambda: actfx.nn.LayerAct("silu"), rngs=nnx.Rngs(0))``,
    then ``logits = model(images)``; ``model.train()`` / ``model.eval()`` switch BatchNorm.

    Example (shapes only, via ``nnx.eval_shape``: no parameters are drawn):
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> m = nnx.eval_shape(lambda: ResNet(20, act=jax.nn.relu, rngs=nnx.Rngs(0)))
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
      269722
      >>> nnx.eval_shape(lambda mod, x: mod(x), m, jnp.ones((2, 32, 32, 3))).shape
      (2, 10)
      >>> import actfx
      >>> m = nnx.eval_shape(lambda: ResNet(20, act=actfx.nn.MMeLU, rngs=nnx.Rngs(0)))
      >>> [a.c_raw.shape for a in (m.stem_act, m.stages[1][0].act1, m.stages[2][2].act2)]
      [(16,), (32,), (64,)]
    """

    def __init__(
        self,
        depth: int = 20,
        *,
        num_classes: int = 10,
        act: ActFactory = default_act,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64),
        shortcut: Shortcut = "A",
        topk: float | None = None,
        topk_stages: Sequence[int] = (2,),
        dtype=None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, ...), got {depth!r}"
            )
        widths = tuple(widths)
        if len(widths) != 3 or any((not isinstance(w, int)) or w < 1 for w in widths):
            raise ValueError(f"widths must be three positive ints, got {widths!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if shortcut == "A" and any(b < a for a, b in zip((widths[0], *widths), widths)):
            raise ValueError(f"shortcut 'A' needs non-decreasing widths, got {widths!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        topk = check_fraction("topk", topk, allow_none=True)  # a Python float (static)
        make = resolve_activation(act)
        topk_stages = tuple(topk_stages)
        if any(s not in (0, 1, 2) for s in topk_stages):
            raise ValueError(f"topk_stages must be stage indices in (0, 1, 2), got {topk_stages!r}")
        n = (depth - 2) // 6
        self.depth = depth
        self.topk = topk
        self.topk_stages = topk_stages if topk is not None else ()
        self.stem_conv = conv3x3(in_channels, widths[0], dtype=dtype, rngs=rngs)
        self.stem_bn = batch_norm(widths[0], dtype=dtype, rngs=rngs)
        self.stem_act = make(widths[0], rngs)
        stages = []
        c_in = widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    BasicBlock(
                        c_in,
                        w,
                        stride=stride,
                        act=make,
                        shortcut=shortcut,
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                c_in = w
            stages.append(nnx.List(blocks))
        self.stages = nnx.List(stages)
        self.head = nnx.Linear(
            widths[-1],
            num_classes,
            kernel_init=jax.nn.initializers.he_normal(),
            dtype=dtype,
            rngs=rngs,
        )

    def __call__(self, x: ArrayLike) -> Array:
        x = check_nhwc(x, self.stem_conv.in_features)
        h = self.stem_act(self.stem_bn(self.stem_conv(x)))
        for i, stage in enumerate(self.stages):
            for block in stage:
                h = block(h)
            # topk_stages is () when topk is None
            if self.topk is not None and i in self.topk_stages:
                h = actfx.topk(h, self.topk)
        return self.head(global_avg_pool(h))


def _resnet_factory(depth: int):
    def make(**kwargs) -> ResNet:
        return ResNet(depth, **kwargs)

    make.__name__ = f"resnet{depth}"
    make.__qualname__ = make.__name__
    make.__doc__ = f"""ResNet-{depth} (n = {(depth - 2) // 6}); keyword arguments as
    :class:`ResNet`.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> nnx.eval_shape(lambda: resnet{depth}(num_classes=10, rngs=nnx.Rngs(0))).depth
      {depth}
    """
    return make


resnet20 = _resnet_factory(20)
resnet32 = _resnet_factory(32)
resnet44 = _resnet_factory(44)
resnet56 = _resnet_factory(56)
