"""Tests for actfx.nn.NeLU, BiasedReLU and the pivotal auto-encoders."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import actfx
from actfx.nn import BiasedReLU, ConvPivotalAE, NeLU, PivotalAE


def test_nelu_module_matches_functional_rms_scaled():
    x = jax.random.normal(jax.random.key(0), (4, 36))
    act = NeLU(lam_init=1.7, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(float(act.lam), 1.7, rtol=1e-6)
    np.testing.assert_allclose(act(x), actfx.nelu(x, 1.7 / 6.0), atol=1e-6)
    raw = NeLU(lam_init=0.2, rms_scaled=False, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(raw(x), actfx.nelu(x, 0.2), atol=1e-6)


def test_nelu_module_per_channel_and_conv_pool():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 3))
    act = NeLU(3, lam_init=1.5, axis=(-3, -2, -1), two_sided=True, rngs=nnx.Rngs(0))
    assert act.lam.shape == (3,)
    lam = jnp.broadcast_to(act.lam / math.sqrt(90), x.shape)
    np.testing.assert_allclose(
        act(x), actfx.nelu(x, lam, axis=(1, 2, 3), two_sided=True), atol=1e-6
    )
    with pytest.raises(ValueError, match="channels|num_features"):
        act(jnp.ones((2, 5, 6, 4)))
    with pytest.raises(ValueError, match="lam_init"):
        NeLU(lam_init=0.0)
    with pytest.raises(ValueError, match="channels|num_features"):
        NeLU(0)


def test_rms_scaled_nelu_is_invariant_to_code_size():
    """Tiling a code doubles n and ||residual||^2: the RMS-scaled threshold is unchanged."""
    x = jax.random.normal(jax.random.key(2), (3, 20))
    act = NeLU(lam_init=2.0, two_sided=True, rngs=nnx.Rngs(0))
    z2 = act(jnp.concatenate([x, x], axis=-1))
    np.testing.assert_allclose(z2[:, :20], act(x), atol=1e-6)
    np.testing.assert_allclose(z2[:, 20:], act(x), atol=1e-6)


def test_nelu_module_lam_gradient_is_finite_and_nonzero():
    x = jax.random.normal(jax.random.key(3), (8, 30))
    act = NeLU(lam_init=1.0, rngs=nnx.Rngs(0))
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(act)
    g = grads["lam_raw"][...]
    assert jnp.isfinite(g) and g < 0  # larger lam -> more shrinkage -> smaller output


def test_biased_relu_is_the_lasso_prox():
    x = jnp.array([[1.0, -1.0, 0.2, -0.3]])
    np.testing.assert_allclose(BiasedReLU(4, bias_init=0.25)(x), [[0.75, 0, 0, 0]])
    two = BiasedReLU(4, bias_init=0.25, two_sided=True)
    np.testing.assert_allclose(two(x), [[0.75, -0.75, 0, -0.05]], atol=1e-7)


@pytest.mark.parametrize("two_sided", [False, True])
def test_nelu_autoencoder_is_positively_homogeneous(two_sided):
    """No biases + NeLU: AE(c y) = c AE(y), the pivotal property; a ReLU+bias AE is not."""
    y = jax.random.normal(jax.random.key(4), (6, 16))
    ae = PivotalAE(16, 32, two_sided=two_sided, lam_init=1.5, rngs=nnx.Rngs(0))
    relu = PivotalAE(
        16, 32, activation="relu", two_sided=two_sided, bias_init=0.5, rngs=nnx.Rngs(0)
    )
    for c in (0.1, 5.0):
        np.testing.assert_allclose(ae(c * y), c * ae(y), rtol=1e-4, atol=1e-5 * c)
        assert not np.allclose(relu(c * y), c * relu(y), rtol=1e-3, atol=1e-4)


def test_dense_ae_remove_mean_and_shapes():
    y = jax.random.normal(jax.random.key(5), (4, 64))
    ae = PivotalAE(64, 96, remove_mean=True, rngs=nnx.Rngs(1))
    assert ae.encode(y).shape == (4, 96) and ae(y).shape == (4, 64)
    np.testing.assert_allclose(ae(y + 3.0), ae(y) + 3.0, atol=1e-4)
    with pytest.raises(ValueError, match="activation"):
        PivotalAE(4, 4, activation="gelu", rngs=nnx.Rngs(0))


def test_conv_ae_shapes_homogeneity_and_any_image_size():
    ae = ConvPivotalAE(1, 6, kernel_size=5, lam_init=1.5, rngs=nnx.Rngs(0))
    y = jax.random.uniform(jax.random.key(6), (2, 12, 12, 1))
    out = ae(y)
    assert out.shape == y.shape and ae.encode(y).shape == (2, 12, 12, 6)
    np.testing.assert_allclose(ae(3.0 * y), 3.0 * out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ae(y + 0.5), out + 0.5, atol=1e-5)
    assert ae(jnp.ones((1, 20, 9, 1))).shape == (1, 20, 9, 1)
    with pytest.raises(ValueError, match="kernel_size"):
        ConvPivotalAE(1, 4, kernel_size=4, rngs=nnx.Rngs(0))


def test_conv_ae_decoder_starts_as_scaled_adjoint():
    """<E y, c> = features * <y, D c> at initialisation (D = E^T / features)."""
    ae = ConvPivotalAE(1, 5, kernel_size=3, remove_mean=False, rngs=nnx.Rngs(2))
    y = jax.random.normal(jax.random.key(7), (1, 9, 9, 1))
    c = jax.random.normal(jax.random.key(8), (1, 9, 9, 5))
    lhs = jnp.vdot(ae.encoder(y), c)
    rhs = 5 * jnp.vdot(y, ae.decoder(c))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


@pytest.mark.slow
def test_dense_ae_learns_to_denoise_sparse_signals():
    """A few hundred Adam steps: the NeLU AE beats the best linear denoiser on held-out data.
    End to end (a scanned train loop, ~10 s of CPU): under -m slow; by default the pieces
    are tested (NeLU's gradients by check_grads in test_nelu.py, the AE's gradient w.r.t.
    lam here, its homogeneity and decoders)."""
    basis = jnp.linalg.qr(jax.random.normal(jax.random.key(9), (16, 16)))[0]

    def sample(key, n=128, sigma=0.1):
        k1, k2, k3 = jax.random.split(key, 3)
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(k1, (n, 16)), -1), -1)
        s = jnp.where(ranks < 2, 1.5, 0.0)  # 2-sparse, |s_i| = 1.5
        s = s * jax.random.rademacher(k2, (n, 16), dtype=jnp.float32)
        y = s @ basis.T
        return y, y + sigma * jax.random.normal(k3, y.shape)

    ae = PivotalAE(16, 16, two_sided=True, lam_init=2.0, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(ae, optax.adam(1e-2), wrt=nnx.Param)

    graphdef, state = nnx.split((ae, opt))

    @jax.jit
    def train(state, keys):
        def step(state, key):
            ae, opt = nnx.merge(graphdef, state)
            clean, noisy = sample(key)
            loss, g = nnx.value_and_grad(lambda m: jnp.mean((m(noisy) - clean) ** 2))(ae)
            opt.update(ae, g)
            return nnx.state((ae, opt)), loss

        return jax.lax.scan(step, state, keys)

    state, _ = train(state, jax.random.split(jax.random.key(100), 300))
    nnx.update((ae, opt), state)
    clean, noisy = sample(jax.random.key(1), n=512)
    mse = float(jnp.mean((ae(noisy) - clean) ** 2))
    # The best linear denoiser (least squares on 4096 fresh pairs) cannot use sparsity.
    c_fit, n_fit = sample(jax.random.key(2), n=4096)
    lin = np.linalg.lstsq(np.asarray(n_fit), np.asarray(c_fit), rcond=None)[0]
    mse_linear = float(np.mean((np.asarray(noisy) @ lin - np.asarray(clean)) ** 2))
    assert mse_linear > 0.8 * float(jnp.mean((noisy - clean) ** 2))  # little to gain linearly
    assert mse < 0.7 * mse_linear


def test_per_atom_and_scalar_threshold_shapes():
    for act, attr in (("nelu", "lam"), ("relu", "bias")):
        ae = PivotalAE(6, 10, activation=act, rngs=nnx.Rngs(0))
        assert jnp.shape(getattr(ae.act, attr)) == (10,)  # per-atom is the default
        scalar = PivotalAE(6, 10, activation=act, per_atom=False, rngs=nnx.Rngs(0))
        assert jnp.shape(getattr(scalar.act, attr)) == ()
        conv = ConvPivotalAE(1, 5, kernel_size=3, activation=act, rngs=nnx.Rngs(0))
        assert jnp.shape(getattr(conv.act, attr)) == (5,)


def test_per_atom_bias_acts_per_atom():
    """Each atom is thresholded by its own bias: atom j with b_j = large is always zero."""
    ae = PivotalAE(4, 4, activation="relu", two_sided=True, rngs=nnx.Rngs(0))
    ae.act.bias[...] = jnp.array([0.0, 0.0, 100.0, 0.0])
    z = ae.encode(jax.random.normal(jax.random.key(0), (16, 4)))
    assert jnp.all(z[:, 2] == 0) and jnp.all(jnp.abs(z[:, [0, 1, 3]]) > 0)
    x = ae.encoder(jax.random.normal(jax.random.key(0), (16, 4)))
    np.testing.assert_allclose(z, x.at[:, 2].set(0.0), atol=1e-6)


def test_pinv_decoder_is_the_pseudo_inverse_of_the_encoder():
    ae = PivotalAE(6, 10, decoder="pinv", two_sided=True, rngs=nnx.Rngs(1))
    # perturb the encoder: the decoder follows it (it is recomputed, not a copy)
    k = ae.encoder.kernel[...] + 0.3 * jax.random.normal(jax.random.key(2), (6, 10))
    ae.encoder.kernel[...] = k
    m = np.asarray(ae.decoder_matrix(), np.float64)
    np.testing.assert_allclose(m, np.linalg.pinv(np.asarray(k, np.float64)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(k) @ m, np.eye(6), atol=1e-4)  # left inverse
    assert not hasattr(ae, "decoder")  # no free decoder parameters
    z = jax.random.normal(jax.random.key(3), (3, 10))
    np.testing.assert_allclose(ae.decode(z), np.asarray(z) @ m, atol=1e-4)
    # with no shrinkage (ReLU, b = 0, two-sided) the AE is exactly the identity
    relu = PivotalAE(
        6, 10, activation="relu", decoder="pinv", two_sided=True, bias_init=0.0, rngs=nnx.Rngs(1)
    )
    y = jax.random.normal(jax.random.key(4), (5, 6))
    np.testing.assert_allclose(relu(y), y, atol=1e-5)
    # rescaling the encoder cannot change a NeLU AE's output (no gain to learn)
    out = ae(y)
    ae.encoder.kernel[...] = 3.0 * k
    np.testing.assert_allclose(ae(y), out, rtol=1e-4, atol=1e-5)
    # gradients reach the encoder through the pseudo-inverse
    g = nnx.grad(lambda mdl: jnp.sum((mdl(y) - y) ** 2))(ae)
    assert np.isfinite(np.asarray(g["encoder"]["kernel"][...])).all()


def test_transpose_decoder_is_scaled_encoder_transpose():
    ae = PivotalAE(6, 12, decoder="transpose", rngs=nnx.Rngs(0))
    np.testing.assert_allclose(float(ae.decoder_scale[...]), 0.5)
    ae.decoder_scale[...] = jnp.asarray(1.7)
    np.testing.assert_allclose(ae.decoder_matrix(), 1.7 * ae.encoder.kernel[...].T, atol=1e-7)
    z = jax.random.normal(jax.random.key(5), (2, 12))
    np.testing.assert_allclose(ae.decode(z), 1.7 * z @ ae.encoder.kernel[...].T, atol=1e-5)
    conv = ConvPivotalAE(
        1, 4, kernel_size=3, decoder="transpose", remove_mean=False, rngs=nnx.Rngs(0)
    )
    y = jax.random.normal(jax.random.key(6), (1, 8, 8, 1))
    c = jax.random.normal(jax.random.key(7), (1, 8, 8, 4))
    # <E y, c> = <y, E^T c> and decode = scale * E^T
    np.testing.assert_allclose(
        jnp.vdot(conv.encoder(y), c), 4 * jnp.vdot(y, conv.decode(c)), rtol=1e-4
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(in_features=4, num_atoms=0), "num_atoms"),
        (dict(in_features=0, num_atoms=4), "in_features"),
        (dict(in_features=4.0, num_atoms=4), "in_features"),
        (dict(in_features=4, num_atoms=True), "num_atoms"),
        (dict(in_features=4, num_atoms=4, decoder="tied"), "decoder"),
        (dict(in_features=4, num_atoms=4, activation="gelu"), "activation"),
    ],
)
def test_dense_ae_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PivotalAE(**kwargs, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(in_features=1, num_features=0), "num_features"),
        (dict(in_features=0, num_features=3), "in_features"),
        (dict(in_features=1, num_features=3, kernel_size=0), "kernel_size"),
        (dict(in_features=1, num_features=3, decoder="pinv"), "decoder"),
    ],
)
def test_conv_ae_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConvPivotalAE(**kwargs, rngs=nnx.Rngs(0))


def test_biased_relu_arguments_and_dtypes():
    with pytest.raises(ValueError, match="num_features"):
        BiasedReLU(0)
    with pytest.raises(ValueError, match="bias_init"):
        BiasedReLU(3, bias_init=float("nan"))
    with pytest.raises(ValueError, match="num_features"):
        BiasedReLU(3)(jnp.ones((2, 4)))
    act = BiasedReLU(3, bias_init=0.5, dtype=jnp.bfloat16, param_dtype=jnp.float16)
    assert act.bias[...].dtype == jnp.float16
    assert act(jnp.ones((2, 3))).dtype == jnp.bfloat16
    # per-feature on another axis (NCHW-style)
    chw = BiasedReLU(2, bias_init=0.0, channel_axis=1)
    chw.bias[...] = jnp.array([0.0, 10.0])
    out = chw(jnp.ones((1, 2, 3, 3)))
    assert float(out[:, 0].min()) == 1.0 and float(out[:, 1].max()) == 0.0
