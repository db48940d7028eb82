"""Worked example: function smoothing (https://kexue.fm/archives/6620) in JAX.

A JAX port of the main smoothing ops, checked against the float64 oracle through the JAX
adapter (64-bit mode inside the adapter only; gradients from ``jax.vjp`` with the oracle's
cotangent), including a ``jax.jit``-compiled candidate with static parameters. The built-in
``jax.nn.logsumexp`` and ``jax.nn.softmax`` are checked too: on an all ``-inf`` row they give
a NaN gradient / NaN values (jax-ml/jax#6811, #23842).
"""
import functools

import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from kexue_ref import registry  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import check_case, conformance_test  # noqa: E402

def _softmax(z, axis):
    """softmax with the D4 policy: an all -inf slice gives 0 (and gradient 0)."""
    # m = max z, held constant; 0 where the slice is all -inf
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    # e^{z - m} / Σ e^{z - m}, dividing by 1 where the sum is 0
    e = jnp.exp(z - m)
    s = jnp.sum(e, axis=axis, keepdims=True)
    return e / jnp.where(s == 0, 1.0, s)


def smooth_max(x, scale=1.0, axis=-1):
    # max(x) ≈ (1/K) LSE(K x), -inf with gradient 0 for an all -inf slice
    z = scale * x
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    s = jnp.sum(jnp.exp(z - m), axis=axis, keepdims=True)
    lse = jnp.where(s == 0, -jnp.inf, m + jnp.log(jnp.where(s == 0, 1.0, s)))
    return jnp.squeeze(lse, axis) / scale


def soft_onehot(x, scale=1.0, axis=-1):
    # onehot(argmax x) ≈ softmax(K x)
    return _softmax(scale * x, axis)


def soft_argmax(x, scale=1.0, axis=-1, base=0):
    # argmax(x) ≈ Σ_i (i + base) softmax(K x)_i
    p = jnp.moveaxis(_softmax(scale * x, axis), axis, -1)
    return jnp.sum(p * (jnp.arange(p.shape[-1], dtype=p.dtype) + base), axis=-1)


def smooth_accuracy(p, y):
    # (1/B) Σ_b p_{b, y_b}
    return jnp.mean(jnp.take_along_axis(p, y[:, None], axis=1))


def smooth_f1(p, t, eps=1e-7, average="micro"):
    # F1 ≈ 2 Σ t p / (Σ t + Σ p + ε), micro over every entry or per column (macro)
    axis = 0 if average == "macro" else None
    f1 = 2 * jnp.sum(t * p, axis=axis) / (jnp.sum(t, axis=axis) + jnp.sum(p, axis=axis) + eps)
    return jnp.mean(f1) if average == "macro" else f1


def soft_kmax(x, k, axis=-1):
    # x ← x − min x;  p ← p + softmax((1 − p) ⊙ x), k times
    x = x - jnp.min(x, axis=axis, keepdims=True)
    p = jnp.zeros_like(x)
    for _ in range(k):
        p = p + jax.nn.softmax((1 - p) * x, axis=axis)
    return p


@functools.partial(jax.jit, static_argnames=("scale", "axis"))
def jit_smooth_max(x, scale=1.0, axis=-1):
    return smooth_max(x, scale, axis)


# JAX compiles every case (the forward, and the forward with its VJP, ~0.1 s each on a CPU):
# these modules check fewer cases than the torch ones, which run every non-error tier.
test_smooth_max = conformance_test(smooth_max, "smoothing.smooth_max", ("quick", "edge"), adapter="jax",
                                   grads=True)
test_soft_onehot = conformance_test(soft_onehot, "smoothing.soft_onehot", "quick", adapter="jax", grads=True)
test_soft_argmax = conformance_test(soft_argmax, "smoothing.soft_argmax", "quick", adapter="jax", grads=True)
test_smooth_accuracy = conformance_test(smooth_accuracy, "smoothing.smooth_accuracy", "quick",
                                        adapter="jax", grads=True)
test_smooth_f1 = conformance_test(smooth_f1, "smoothing.smooth_f1", "quick", adapter="jax", grads=True)
test_soft_kmax = conformance_test(soft_kmax, "smoothing.soft_kmax", "quick", adapter="jax", grads=True)


def _case(op, name):
    (case,) = [c for c in registry.cases(op, "all") if c.name == name]
    return case


def builtin_smooth_max(x, scale=1.0, axis=-1):
    return jax.nn.logsumexp(scale * x, axis=axis) / scale


def builtin_soft_onehot(x, scale=1.0, axis=-1):
    return jax.nn.softmax(scale * x, axis=axis)


def test_jit_compiled_candidate():
    check_case(jit_smooth_max, _case("smoothing.smooth_max", "post-x-K10"), adapter="jax", grads=True)


@pytest.mark.parametrize("fn", [builtin_smooth_max, builtin_soft_onehot])
def test_builtins_are_nan_on_an_all_neginf_row(fn):
    # jax.nn.logsumexp: NaN gradient (jax#6811); jax.nn.softmax: NaN values; D4 gives 0
    op = "smoothing.smooth_max" if fn is builtin_smooth_max else "smoothing.soft_onehot"
    with pytest.raises(AssertionError, match="(?i)nan"):
        check_case(fn, _case(op, "neginf-entries"), adapter="jax", grads=True, diagnose=False)
    check_case(fn, _case(op, "extreme-1e4"), adapter="jax", grads=True)


def test_float64_really_runs_in_float64_and_leaves_x64_off():
    seen = []

    def spy(x, scale=1.0, axis=-1):
        seen.append(x.dtype)
        return smooth_max(x, scale, axis)
    check_case(spy, _case("smoothing.smooth_max", "post-x-K1"), adapter="jax", grads=True)
    assert seen and {str(d) for d in seen} == {"float64"}
    # the adapter's 64-bit mode is scoped: the process default is untouched
    assert jnp.asarray(1.0).dtype == jnp.float32


def test_float32_table_rule():
    report = check(soft_onehot, "smoothing.soft_onehot", "quick", adapter="jax", grads=True, dtype="float32")
    assert report.passed, report


def test_bfloat16_quick_values_and_grads():
    report = check(soft_onehot, "smoothing.soft_onehot", "quick", adapter="jax", grads=True,
                   dtype="bfloat16")
    assert report.passed, report


def test_diagnosis_with_jax_candidate():
    def one_based(x, scale=1.0, axis=-1, base=0):
        return soft_argmax(x, scale, axis, base=1)
    d = diagnose(one_based, "smoothing.soft_argmax", "quick", adapter="jax", grads=True)
    assert [m.convention.label for m in d.matches] == ["base=1"]
