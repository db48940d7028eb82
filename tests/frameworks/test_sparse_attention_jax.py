"""Worked example: sparse attention (https://kexue.fm/archives/6853) in JAX.

``jax.nn.dot_product_attention`` (layout (B, T, H, D), boolean ``mask``: True = may attend)
is checked with the post's patterns (built here from their definitions, not from the library's
mask code), values and ``jax.vjp`` gradients. Two findings: it
computes the softmax in float32 whatever the input dtype (float64 inputs give errors of
~1e-7, so it is checked as a float32 candidate), and it masks with a large negative constant,
so a fully masked row comes out as the uniform average of the values (D4 says 0): the
diagnosis names that ``fill=-1e9`` behaviour, and that case is a strict xfail raising the
check's ``AssertionError``. A dense D4 port in a few lines passes every case in float64; the
pattern candidate refuses ``compat="keras"`` with ``NotImplementedError``, and the test asserts
that refusal.
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from kexue_ref import registry  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import check_case, conformance_test  # noqa: E402

from ._support import conformance, names_with  # noqa: E402

FULLY_MASKED = "jax.nn.dot_product_attention: a fully masked row is the uniform average (D4: 0)"


def _allowed(q, k, allowed, key_mask, causal):
    """A = allowed ∧ key_mask ∧ [j ≤ i]_causal, shaped (B or 1, H or 1, Tq, Tk)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    A = jnp.ones((1, 1, Tq, Tk), bool) if allowed is None else jnp.broadcast_to(
        allowed, (1,) * (4 - allowed.ndim) + allowed.shape)
    if key_mask is not None:
        A = A & jnp.asarray(np.asarray(key_mask, bool))[:, None, None, :]
    if causal:
        A = A & jnp.tril(jnp.ones((Tq, Tk), bool))
    return A


def _zero_rows(out, query_mask):
    if query_mask is None:
        return out
    return jnp.where(jnp.asarray(np.asarray(query_mask, bool))[:, None, :, None], out, 0.0)


def dense_attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    """P_ij = [A_ij] e^{S_ij − m_i} / Σ_{j': A_ij'} e^{S_ij' − m_i}; o_i = Σ_j P_ij v_j."""
    A = _allowed(q, k, allowed, key_mask, causal)
    # S_ij = q_i · k_j / √D
    S = jnp.einsum("bhid,bhjd->bhij", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    A = jnp.broadcast_to(A, S.shape)
    if fill is not None:
        P = jax.nn.softmax(jnp.where(A, S, fill), axis=-1)
    else:
        m = jax.lax.stop_gradient(jnp.max(jnp.where(A, S, -jnp.inf), axis=-1, keepdims=True))
        m = jnp.where(jnp.isfinite(m), m, 0.0)
        e = jnp.where(A, jnp.exp(jnp.where(A, S - m, 0.0)), 0.0)
        s = jnp.sum(e, axis=-1, keepdims=True)
        P = e / jnp.where(s == 0, 1.0, s)
    return _zero_rows(jnp.einsum("bhij,bhjd->bhid", P, v), query_mask)


def jax_attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    """jax.nn.dot_product_attention on (B, T, H, D) views of the (B, H, T, D) inputs."""
    A = _allowed(q, k, allowed, key_mask, causal)
    D, Dv = q.shape[-1], v.shape[-1]
    # it wants Dv = D: zero-pad the narrower side (the scale stays 1/√D) and slice the output
    pad = lambda x, n: jnp.pad(x, [(0, 0)] * 3 + [(0, n - x.shape[-1])])   # noqa: E731
    width = max(D, Dv)
    out = jax.nn.dot_product_attention(jnp.swapaxes(pad(q, width), 1, 2), jnp.swapaxes(pad(k, width), 1, 2),
                                       jnp.swapaxes(pad(v, width), 1, 2), mask=A, scale=1.0 / D ** 0.5)
    return _zero_rows(jnp.swapaxes(out, 1, 2)[..., :Dv], query_mask)


def atrous_pattern(T, R, causal=False):
    r"""(T, T) bool atrous pattern of the post from its definition: d = i − j, allowed when
    :math:`d \bmod R = 0` (and :math:`d \ge 0` when causal)."""
    d = jnp.arange(T)[:, None] - jnp.arange(T)[None, :]
    A = d % R == 0
    return A & (d >= 0) if causal else A


def jax_atrous(q, k, v, *, causal=False, mask=None, compat=None, rate):
    """Atrous attention: the dense D4 port with the post's pattern and the padding mask."""
    if compat is not None:
        raise NotImplementedError(f"compat={compat!r}: only the post's semantics are ported here")
    A = atrous_pattern(q.shape[-2], rate, causal)[None, None]
    if mask is not None:
        A = A & jnp.asarray(np.asarray(mask, bool))[:, None, None, :]     # padded keys removed
    return dense_attention(q, k, v, A, query_mask=mask)


ATROUS = "sparse_attention.atrous_attention"
KERAS = (NotImplementedError, "compat='keras': only the post's semantics are ported here")

# JAX compiles every case: the quick tier here, every tier in the torch module
test_dense_attention = conformance_test(dense_attention, "sparse_attention.attention", "quick", adapter="jax",
                                        grads=True)
test_jax_nn_attention = conformance(
    jax_attention, "sparse_attention.attention", "quick", adapter="jax", grads=True, dtype="float32",
    xfail={"B2-key-mask-fully-masked": FULLY_MASKED})
test_atrous = conformance(jax_atrous, ATROUS, "quick", adapter="jax", grads=True,
                          refuses={n: KERAS for n in names_with(ATROUS, "quick", compat=("keras",))})


def test_atrous_pattern_by_hand():
    """The candidate's pattern, judged: T = 7, R = 3, row 4 → {1, 4}; causal row 1 → {1}."""
    assert np.flatnonzero(np.asarray(atrous_pattern(7, 3)[4])).tolist() == [1, 4]
    assert np.flatnonzero(np.asarray(atrous_pattern(7, 3, causal=True)[1])).tolist() == [1]
    assert np.flatnonzero(np.asarray(atrous_pattern(7, 3)[1])).tolist() == [1, 4]


def test_fill_cases_pass_it_is_that_masking():
    # replacement by a large negative constant: the oracle's fill=-1e9 cases agree
    for case in registry.cases("sparse_attention.attention", "edge"):
        if case.params.get("fill") is not None:
            check_case(jax_attention, case, adapter="jax", dtype="float32")


def test_jax_nn_attention_fully_masked_rows_are_diagnosed_as_fill():
    report = check(jax_attention, "sparse_attention.attention", "quick", adapter="jax", dtype="float32")
    assert [r.case_id for r in report.failures] == ["sparse_attention.attention[B2-key-mask-fully-masked]"]
    d = diagnose(jax_attention, "sparse_attention.attention", "quick", adapter="jax", dtype="float32",
                 report=report)
    assert [m.convention.label for m in d.matches] == ["fill=-1e9"]


def test_jax_nn_attention_computes_its_softmax_in_float32_even_for_float64():
    # float64 inputs, float64 output, but a float32-sized error: the logits are cast to float32
    report = check(jax_attention, "sparse_attention.attention", "quick", adapter="jax")
    first = report.results[0]
    assert first.case_id == "sparse_attention.attention[B2-H2-Tq5-Tk7]" and not first.passed
    values = first.comparisons[0]
    assert 1e-9 < values.max_abs < 1e-5 and values.max_rel < 1e-5
