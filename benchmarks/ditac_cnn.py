"""Train-step time of a small CNN with one DiTAC per channel, against ReLU and GELU.

The CNN of the Flax NNX MNIST tutorial (conv 3x3 -> 32, avg-pool, conv 3x3 -> 64, avg-pool,
dense 256, dense 10; 32 + 64 + 256 = 352 channels with an activation), batch 32 of 28x28x1,
one Adam step (``nnx.Optimizer``, ``nnx.jit``) on cross-entropy. The activations compared:
ReLU, GELU (erf), and ``actfx.nn.DiTAC(num_features=C)`` (one theta per channel) with each
``method`` and table size (the module's per-channel default and 2048, the per-layer one).
Interleaved rounds in one process, medians, ratios to ReLU, in wall time and in process
CPU time (all threads; less sensitive to other jobs when the machine is shared); the load
average is printed.

    python -m benchmarks.ditac_cnn [--rounds 5] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from actfx.nn import DiTAC
from benchmarks.timing import interleaved_medians, load_average


class CNN(nnx.Module):
    """The NNX MNIST tutorial's CNN with ``act(C)`` building the activation of C channels."""

    def __init__(self, act, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 32, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
        self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
        self.linear2 = nnx.Linear(256, 10, rngs=rngs)
        self.act1, self.act2, self.act3 = act(32, rngs), act(64, rngs), act(256, rngs)

    def __call__(self, x):
        pool = lambda v: nnx.avg_pool(v, (2, 2), (2, 2))
        x = pool(self.act1(self.conv1(x)))
        x = pool(self.act2(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)
        return self.linear2(self.act3(self.linear1(x)))


class Fixed(nnx.Module):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


ACTS = {
    "ReLU": lambda c, r: Fixed(jax.nn.relu),
    "GELU": lambda c, r: Fixed(lambda v: jax.nn.gelu(v, approximate=False)),
    "DiTAC/ch table 64": lambda c, r: DiTAC(c, method="table", table_size=64, rngs=r),
    "DiTAC/ch table 2048": lambda c, r: DiTAC(c, method="table", table_size=2048, rngs=r),
    "DiTAC/ch exact": lambda c, r: DiTAC(c, method="exact", rngs=r),
}


def make_step(act, batch: int):
    model = CNN(act, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        def loss_fn(m):
            logits = m(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    return lambda x, y: step(model, opt, x, y)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--only", nargs="*", default=None, help="subset of " + ", ".join(ACTS))
    args = p.parse_args(argv)
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (args.batch, 28, 28, 1), jnp.float32)
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    names = args.only or list(ACTS)
    fns = {n: make_step(ACTS[n], args.batch) for n in names}
    print(load_average())
    wall = interleaved_medians(fns, x, y, rounds=args.rounds, repeats=3)
    cpu = interleaved_medians(fns, x, y, rounds=args.rounds, repeats=3, clock=time.process_time)
    print(
        f"{'activation':<22} {'wall ms/step':>12} {'x ReLU':>7} {'CPU ms/step':>12} {'x ReLU':>7}"
    )
    for n in names:
        rw = f"{wall[n] / wall['ReLU']:7.2f}" if "ReLU" in wall else ""
        rc = f"{cpu[n] / cpu['ReLU']:7.2f}" if "ReLU" in cpu else ""
        print(f"{n:<22} {wall[n] * 1e3:12.1f} {rw} {cpu[n] * 1e3:12.1f} {rc}")
    print(load_average())
    return {"wall": wall, "cpu": cpu}


if __name__ == "__main__":
    main()
