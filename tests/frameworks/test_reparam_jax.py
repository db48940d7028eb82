"""Worked example: reparameterization and Gumbel-Softmax (https://kexue.fm/archives/6705) in JAX.

A JAX port of the Normal reparameterization, the Gumbel noise transforms and Gumbel-Softmax
(straight-through included), checked with the registry's injected noise, values and
``jax.vjp`` gradients. ``jax.random.gumbel`` is checked as a noise transform: with the
uniforms it consumes made explicit, it is the "tiny" mode (u floored at ``finfo.tiny``).
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from kexue_ref import registry  # noqa: E402
from kexue_ref import reparam as rp  # noqa: E402
from kexue_ref.testing.pytest_plugin import check_case, conformance_test  # noqa: E402

def normal_reparam(mu, sigma, eps):
    # z = μ + σ ε
    return mu + sigma * eps


def gumbel_from_uniform(u, *, mode="exact", eps=None):
    # g = −log(−log u), after each framework's guard on u
    finfo = jnp.finfo(u.dtype)
    if mode == "keras":
        e = 1e-7 if eps is None else eps
        return -jnp.log(-jnp.log(u + e) + e)
    if mode == "clip":
        e = float(finfo.eps) if eps is None else eps
        u = jnp.clip(u, e, 1 - e)
    elif mode == "tiny":
        u = jnp.maximum(u, float(finfo.tiny) if eps is None else eps)
    return -jnp.log(-jnp.log(u))


def gumbel_softmax(logits, g, tau, *, hard=False, axis=-1, given="logits"):
    # ỹ = softmax((o + g)/τ); straight-through: y_hard + ỹ − sg(ỹ)
    if given == "probs":
        # log p with a zero gradient at p = 0 (log is taken of 1 there)
        logits = jnp.where(logits > 0, jnp.log(jnp.where(logits > 0, logits, 1.0)), -jnp.inf)
    z = logits + g
    y = jax.nn.softmax(z / tau, axis=axis)
    if not hard:
        return y
    y_hard = jax.nn.one_hot(jnp.argmax(z, axis=axis), g.shape[axis], axis=axis, dtype=y.dtype)
    return y_hard + (y - jax.lax.stop_gradient(y))


# JAX compiles every case: the quick tier here, every tier in the torch module
test_normal_reparam = conformance_test(normal_reparam, "reparam.normal_reparam", "quick", adapter="jax",
                                       grads=True)
test_gumbel_from_uniform = conformance_test(gumbel_from_uniform, "reparam.gumbel_from_uniform", "quick",
                                            adapter="jax", grads=True)
test_gumbel_softmax = conformance_test(gumbel_softmax, "reparam.gumbel_softmax", "quick", adapter="jax",
                                       grads=True)


def test_zero_probability_category_has_zero_gradient():
    (case,) = [c for c in registry.cases("reparam.gumbel_softmax", "edge") if c.name == "probs-with-zero"]
    check_case(gumbel_softmax, case, adapter="jax", grads=True)


def jax_random_gumbel_from_uniform(u, *, mode="exact", eps=None):
    """jax.random.gumbel's transform of its uniforms: u from [tiny, 1), then −log(−log u)."""
    tiny = jnp.finfo(u.dtype).tiny
    return -jnp.log(-jnp.log(jnp.maximum(u, tiny)))


def test_jax_random_gumbel_is_the_tiny_mode():
    key = jax.random.key(0)
    g = jax.random.gumbel(key, (6,), dtype=jnp.float32)
    u = jax.random.uniform(key, (6,), dtype=jnp.float32, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    # the same key, the same uniforms: jax.random.gumbel is -log(-log u) of them
    np.testing.assert_allclose(np.asarray(g), rp.gumbel_from_uniform(np.asarray(u, np.float64), mode="tiny"),
                               rtol=1e-5)
    # on interior uniforms every mode but Su's additive-ε "keras" one is the same map
    cases = registry.cases("reparam.gumbel_from_uniform", "quick")
    assert any(c.params.get("mode") == "keras" for c in cases)
    for case in cases:
        if case.params.get("mode") == "keras":
            with pytest.raises(AssertionError, match=r"keras-n8"):
                check_case(jax_random_gumbel_from_uniform, case, adapter="jax", diagnose=False)
        else:
            check_case(jax_random_gumbel_from_uniform, case, adapter="jax")


def test_float32_gumbel_softmax():
    (case,) = [c for c in registry.cases("reparam.gumbel_softmax", "quick") if c.name == "p4-S3-tau1-hard"]
    check_case(gumbel_softmax, case, adapter="jax", grads=True, dtype="float32")
