"""The numba twins of sparse attention (``kexue_ref.kernels.sparse_attention``) against the oracle.

* every registry case of the four twinned ops (values and the three input gradients), in
  float64 with the published float64 tolerance and in float32 with the published float32 one;
  ``compat="keras"`` cases must raise instead;
* bad input is refused in Python, with the oracle's exception type, before numba runs;
* a larger random case (T = 300, holes in the mask) against the oracle;
* every shape-dependent branch of the kernels (query blocks of 32, group blocks of 64 so
  T > 64·R, T = 32 and 64, wide windows, the key-list dot product with D mod 4 ≠ 0), values
  and gradients against the oracle in float64, and in float32 past T = 37, within the
  published per-dtype tolerance; key lists built from the post's definitions, not from
  ``kexue_ref._masks``;
* properties checked on the twins alone: fully masked rows, causality, degenerate rates,
  results independent of the thread count, memory far below T², the kernels' flag policy
  and their plain-Python mode (``NUMBA_DISABLE_JIT=1``).

Compilation: each kernel compiles once per dtype (float64, float32) per process and is cached
on disk (``_config.CACHE``), so a warm run of this file takes a few seconds.
"""
import os
import pathlib
import re
import subprocess
import sys
import tracemalloc

import autograd.numpy as anp
import numba
import numpy as np
import pytest
from autograd import grad

from kexue_ref import registry
from kexue_ref import sparse_attention as ref
from kexue_ref.kernels import _config
from kexue_ref.kernels import sparse_attention as fast
from kexue_ref.testing import (autograd_vjp, compare, make_cotangents, reference_grads, reference_outputs,
                               tolerance_for)
from kexue_ref.testing.lowprec import tolerances

ROOT = pathlib.Path(__file__).resolve().parents[1]

TWINS = {
    "sparse_attention.atrous_attention": fast.atrous_attention,
    "sparse_attention.local_attention": fast.local_attention,
    "sparse_attention.sparse_attention": fast.sparse_attention,
    "sparse_attention.indexed_attention": fast.indexed_attention,
}


def _cases(tiers, keras):
    """pytest params for the twinned ops' cases of ``tiers``, with or without compat="keras"."""
    out = []
    for name in TWINS:
        for case in registry.cases(name, tiers):
            if (case.params.get("compat") == "keras") == keras:
                out.append(pytest.param(case, id=case.id))
    return out


def _float32_rule(case):
    """The published float32 table, except where |scores| ~ 1e3: rounding the *inputs* to
    float32 alone moves such scores by ~1e-4, so the FlashAttention rule (≤ 2 × the error of
    the oracle itself run in float32: ``Dao-AILab/flash-attention`` ``tests/test_flash_attn.py``)
    is the meaningful bound there."""
    return "relative" if "extreme" in case.name else "table"


def _assert_twin_matches(case, dtype, rule="table"):
    """Values and VJPs (seeded cotangent) of the twin vs the float64 oracle, one case."""
    spec = case.spec
    twin = TWINS[spec.name]
    cast = {n: (np.asarray(x).astype(dtype) if np.asarray(x).dtype.kind == "f" else x)
            for n, x in case.inputs.items()}
    expected = reference_outputs(case)
    got = spec.as_outputs(spec.call(twin, registry.Case(spec, case.defn, cast, case.seed)))
    problems = []
    for name, g, e, (rtol, atol, why) in zip(spec.outputs, got, expected,
                                            tolerances(rule, 2.0, case, dtype, "values", expected)):
        assert np.asarray(g).dtype == np.dtype(dtype), f"{name}: dtype {np.asarray(g).dtype}, not {dtype}"
        c = compare(g, e, rtol, atol, what=f"value {name}", dtype=dtype)
        if not c.passed:
            problems.append(c.line() + (f" [{why}]" if why else ""))
    cot = make_cotangents(case, expected)
    ref_g = reference_grads(case, cot)
    cot_c = tuple(None if u is None else u.astype(dtype) for u in cot)
    twin_g = autograd_vjp(twin, spec, cast, case.params, cot_c)
    ref_list = [ref_g[n] for n in spec.diff]
    for name, g, e, (rtol, atol, why) in zip(spec.diff, twin_g, ref_list,
                                            tolerances(rule, 2.0, case, dtype, "grads", ref_list, cot)):
        assert np.asarray(g).dtype == np.dtype(dtype), f"d{name}: dtype {np.asarray(g).dtype}"
        c = compare(g, e, rtol, atol, what=f"grad {name}", dtype=dtype)
        if not c.passed:
            problems.append(c.line() + (f" [{why}]" if why else ""))
    assert not problems, f"{case.id} ({dtype}):\n" + "\n".join(problems)


# ---------------------------------------------------------------------------
# Twin == oracle on the registry cases
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", _cases(("quick", "full", "edge"), keras=False))
def test_twin_matches_oracle_float64(case):
    _assert_twin_matches(case, "float64")


@pytest.mark.parametrize("case", _cases(("quick", "full", "edge"), keras=False))
def test_twin_matches_oracle_float32(case):
    _assert_twin_matches(case, "float32", rule=_float32_rule(case))


@pytest.mark.parametrize("case", _cases(("quick", "full", "edge"), keras=True))
def test_twin_refuses_keras_semantics(case):
    with pytest.raises(ValueError, match="twins implement the post's semantics only"):
        case.spec.call(TWINS[case.spec.name], case)


@pytest.mark.parametrize("case", [p for p in _cases(("error",), keras=False)]
                         + [p for p in _cases(("error",), keras=True)])
def test_twin_refuses_bad_input_like_the_oracle(case):
    exc_type, _ = case.defn.raises
    with pytest.raises(exc_type) as info:
        case.spec.call(TWINS[case.spec.name], case)
    assert "numba" not in type(info.value).__module__


# ---------------------------------------------------------------------------
# Bad input: the twins' own messages
# ---------------------------------------------------------------------------

def _qkv(rng, B=1, H=1, T=6, D=3, Dv=2, dtype=np.float64, scale=1.0):
    q = scale * rng.standard_normal((B, H, T, D))
    k = scale * rng.standard_normal((B, H, T, D))
    v = rng.standard_normal((B, H, T, Dv))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@pytest.mark.parametrize("fn, param", [(fast.atrous_attention, "rate"), (fast.local_attention, "neighbors"),
                                       (fast.sparse_attention, "rate")])
def test_bad_arguments_give_clear_errors(rng, fn, param):
    q, k, v = _qkv(rng, B=2)
    with pytest.raises(ValueError, match=f"{param} must be >= 1"):
        fn(q, k, v, 0)
    with pytest.raises(TypeError, match=f"{param} must be an integer"):
        fn(q, k, v, 1.5)
    with pytest.raises(ValueError, match=r"k must have the shape \(B, H, T, D\)"):
        fn(q, k[:, :, :5], v, 2)
    with pytest.raises(ValueError, match=r"v must have shape \(B, H, T, Dv\)"):
        fn(q, k, v[:, :, :4], 2)
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, T, D\)"):
        fn(q[0], k, v, 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(2, 6\)"):
        fn(q, k, v, 2, mask=np.ones((1, 6), bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        fn(q, k, v, 2, mask=np.ones((2, 6)))
    with pytest.raises(ValueError, match="compat must be None"):
        fn(q, k, v, 2, compat="keras")
    with pytest.raises(TypeError, match="causal must be True or False"):
        fn(q, k, v, 2, causal=1)
    with pytest.raises(ValueError, match="q contains NaN"):
        fn(np.full_like(q, np.nan), k, v, 2)
    with pytest.raises(ValueError, match=r"every size of q, k, v must be >= 1"):
        fn(q[:, :, :0], k[:, :, :0], v[:, :, :0], 2)


def test_bad_key_index_gives_clear_errors(rng):
    q, k, v = _qkv(rng, T=3)
    with pytest.raises(ValueError, match="strictly increasing"):
        fast.indexed_attention(q, k, v, np.array([[1, 0], [0, 1], [2, -1]]))
    with pytest.raises(ValueError, match="pad with -1 at the end"):
        fast.indexed_attention(q, k, v, np.array([[-1, 0], [0, 1], [2, -1]]))
    with pytest.raises(ValueError, match=r"entries must lie in \[-1, 3\)"):
        fast.indexed_attention(q, k, v, np.array([[0, 3], [0, 1], [2, -1]]))
    with pytest.raises(TypeError, match="key_index must be an int64 array"):
        fast.indexed_attention(q, k, v, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"key_index must have shape \(T, Kmax\)"):
        fast.indexed_attention(q, k, v, np.zeros((4, 1), np.int64))


# ---------------------------------------------------------------------------
# A larger random case against the oracle
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, param, causal", [("local_attention", 7, False), ("atrous_attention", 16, True),
                                                 ("sparse_attention", 16, False), ("sparse_attention", 5, True)])
def test_twin_matches_oracle_T300(rng, name, param, causal):
    """T = 300 (several query blocks, groups of unequal length, 300 mod 16 ≠ 0), H = 2,
    holes in the mask and one fully padded sequence; values and all three gradients."""
    q, k, v = _qkv(rng, B=2, H=2, T=300, D=16, Dv=8)
    mask = rng.random((2, 300)) < 0.85
    mask[1, 250:] = False
    u = rng.standard_normal((2, 2, 300, 8))
    f_twin, f_ref = getattr(fast, name), getattr(ref, name)

    def loss(f):
        return lambda x: anp.sum(f(x[0], x[1], x[2], param, causal=causal, mask=mask) * u)

    np.testing.assert_allclose(f_twin(q, k, v, param, causal=causal, mask=mask),
                               f_ref(q, k, v, param, causal=causal, mask=mask), rtol=1e-12, atol=1e-13)
    for g_twin, g_ref in zip(grad(loss(f_twin))((q, k, v)), grad(loss(f_ref))((q, k, v))):
        np.testing.assert_allclose(g_twin, g_ref, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------
# Every shape-dependent branch of the kernels, against the oracle
# ---------------------------------------------------------------------------
# The twins' loops depend on the shape through these bounds (kexue_ref/kernels/):
#
# * local pass: query blocks of QB_LOCAL = 32 rows (``_local_block``): one full block (T = 32),
#   two full blocks (T = 64), a last block of one row (T = 65); the key range [i0 − W, i1 + W)
#   clamped at 0 and at T, with W > 32 clamping block 1 too; the backward runs the blocks in
#   ceil((32 + 2W) / 32) colours (2 for W = 3, 4 for W = 40), with uneven colours for 3 blocks;
# * atrous groups (``attend_fwd``/``attend_bwd``, GROUPS): group r holds n = ceil((T − r) / R)
#   positions, cut into blocks of QB_GROUP = 64 rows, so a second block exists only for
#   T > 64·R (n = 75 for R = 2, T = 150; n = 130 for R = 1; exactly 64 for T = 64·R); a causal
#   block reaches keys [0, p1), and its dq rows are a strided view starting at r + p0·R;
# * sparse: the same groups without the keys at distance 0 and R (``_group_ranges`` with
#   gap = 2) merged into the local pass in log-sum-exp form;
# * key lists (``_sparse_attention_lists``): the dot product runs four accumulators and a
#   remainder loop, so D ≥ 4 with D mod 4 ≠ 0 reaches both (every registry case has D = 3);
#   rows with no key and keys listed by no row are the CSR edge cases of the backward.
#
# The registry cases stop at T = 37 (pattern twins) and T = 25 (key lists), so none of the
# multi-block group paths ran before these tests (a wrong bound there left the twin off by
# 0.5–0.8 with every test passing).

SHAPES = [
    # (twin, W or R, T, causal): what it reaches
    pytest.param("local_attention", 3, 32, False, id="local-W3-T32-one-full-block"),
    pytest.param("local_attention", 3, 64, True, id="local-W3-T64-two-full-blocks-causal"),
    pytest.param("local_attention", 3, 65, False, id="local-W3-T65-one-row-block-uneven-colours"),
    pytest.param("local_attention", 40, 100, False, id="local-W40-T100-wide-window-4-colours"),
    pytest.param("local_attention", 40, 100, True, id="local-W40-T100-wide-window-causal"),
    pytest.param("atrous_attention", 2, 32, True, id="atrous-R2-T32-causal"),
    pytest.param("atrous_attention", 1, 64, False, id="atrous-R1-T64-one-full-group-block"),
    pytest.param("atrous_attention", 2, 150, False, id="atrous-R2-T150-second-group-block"),
    pytest.param("atrous_attention", 2, 150, True, id="atrous-R2-T150-second-group-block-causal"),
    pytest.param("atrous_attention", 1, 130, True, id="atrous-R1-T130-three-group-blocks-causal"),
    pytest.param("atrous_attention", 3, 192, False, id="atrous-R3-T192-exactly-64R"),
    pytest.param("atrous_attention", 3, 193, True, id="atrous-R3-T193-one-row-second-block-causal"),
    pytest.param("sparse_attention", 4, 32, False, id="sparse-R4-T32"),
    pytest.param("sparse_attention", 1, 64, True, id="sparse-R1-T64-causal"),
    pytest.param("sparse_attention", 2, 150, False, id="sparse-R2-T150-second-group-block"),
    pytest.param("sparse_attention", 2, 150, True, id="sparse-R2-T150-second-group-block-causal"),
    pytest.param("sparse_attention", 3, 200, True, id="sparse-R3-T200-second-group-block-causal"),
]

#: float32 at T > 37 (the registry's float32 cases stop at T = 37): multi-block local and group paths
SHAPES_F32 = [p for p in SHAPES if p.id in {
    "local-W3-T65-one-row-block-uneven-colours", "local-W40-T100-wide-window-causal",
    "atrous-R2-T150-second-group-block", "atrous-R1-T130-three-group-blocks-causal",
    "sparse-R2-T150-second-group-block-causal", "sparse-R3-T200-second-group-block-causal"}]


def _padding(rng, B, T):
    """A (B, T) sequence mask: ~15 % random holes, and the last fifth of sequence 1 padded."""
    mask = rng.random((B, T)) < 0.85
    mask[1, T - T // 5:] = False
    return mask


def _assert_values_and_grads(twin, oracle, q, k, v, dtype, rng, what):
    """Values and the VJPs of a seeded cotangent u, twin (run in ``dtype``) vs the float64 oracle.

    ``twin(q, k, v)`` and ``oracle(q, k, v)`` close over the remaining arguments. The bound is
    the published tolerance of ``dtype`` (``tolerance_for``): |a − e| ≤ atol + rtol·|e|.
    """
    u = rng.standard_normal(np.shape(oracle(q, k, v)))
    low = tuple(x.astype(dtype) for x in (q, k, v))
    out = twin(*low)
    assert out.dtype == np.dtype(dtype), f"{what}: dtype {out.dtype}, not {dtype}"
    rtol, atol, _ = tolerance_for(dtype, "values")
    np.testing.assert_allclose(out, oracle(q, k, v), rtol=rtol, atol=atol, err_msg=f"{what}: values")
    # gradients of L = Σ o ⊙ u with respect to q, k and v
    u_low = u.astype(dtype)
    g_twin = grad(lambda x: anp.sum(twin(*x) * u_low))(low)
    g_ref = grad(lambda x: anp.sum(oracle(*x) * u))((q, k, v))
    rtol, atol, _ = tolerance_for(dtype, "grads")
    for name, a, e in zip("qkv", g_twin, g_ref):
        assert a.dtype == np.dtype(dtype), f"{what}: d{name} dtype {a.dtype}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what}: d{name}")


def _pattern_case(rng, name, param, T, causal, dtype):
    """One pattern twin against its oracle: B = 2, H = 2, D = 8, Dv = 5, with padding."""
    q, k, v = _qkv(rng, B=2, H=2, T=T, D=8, Dv=5)
    mask = _padding(rng, 2, T)
    f_twin, f_ref = getattr(fast, name), getattr(ref, name)
    _assert_values_and_grads(lambda a, b, c: f_twin(a, b, c, param, causal=causal, mask=mask),
                             lambda a, b, c: f_ref(a, b, c, param, causal=causal, mask=mask),
                             q, k, v, dtype, rng, f"{name}({param}, T={T}, causal={causal}, {dtype})")


@pytest.mark.parametrize("name, param, T, causal", SHAPES)
def test_twin_matches_oracle_at_block_and_group_bounds(rng, name, param, T, causal):
    """float64: every block and group bound of the kernels (see the table above)."""
    _pattern_case(rng, name, param, T, causal, "float64")


@pytest.mark.parametrize("name, param, T, causal", SHAPES_F32)
def test_twin_matches_oracle_at_block_and_group_bounds_float32(rng, name, param, T, causal):
    """float32 (computed in float32) past T = 37, within the published float32 tolerance."""
    _pattern_case(rng, name, param, T, causal, "float32")


def _post_pattern(kind, T, p, causal):
    r"""(T, T) bool pattern of the post (https://kexue.fm/archives/6853) from its definition,
    independent of :mod:`kexue_ref._masks`: with d = i − j,

    .. math:: 	ext{local}(W): |d| \le W, \quad 	ext{atrous}(R): d mod R = 0, \quad
              	ext{sparse}(R): |d| \le R \;\lor\; d mod R = 0, \quad 	ext{causal}: d \ge 0
    """
    d = np.arange(T)[:, None] - np.arange(T)[None, :]
    A = {"local": np.abs(d) <= p, "atrous": d % p == 0,
         "sparse": (np.abs(d) <= p) | (d % p == 0)}[kind]
    return A & (d >= 0) if causal else A


def _key_lists(A):
    """key_index (T, Kmax) of a (T, T) pattern: each row's keys ascending, padded with −1."""
    K = max(1, int(A.sum(axis=1).max()))
    idx = np.full((A.shape[0], K), -1, np.int64)
    for i, row in enumerate(A):
        keys = np.flatnonzero(row)
        idx[i, :keys.size] = keys
    return idx


def _random_key_lists(rng, T, K):
    """Random lists of 0 … K keys per row; row 5 is empty and key T − 3 is listed by no row."""
    A = np.zeros((T, T), bool)
    for i in range(T):
        n = rng.integers(0, K + 1)
        A[i, rng.choice(T, size=n, replace=False)] = True
    A[5] = False
    A[:, T - 3] = False
    return A


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pattern", ["random", "sparse-R5-causal"])
def test_indexed_twin_matches_oracle_past_T25(rng, pattern, dtype):
    """The key-list twin at T = 70 (registry cases stop at T = 25) with D = 6, Dv = 5 (both
    loops of the four-accumulator dot product), B = 2, H = 2, holes in the mask, an empty row
    and an unlisted key: values and gradients against the oracle."""
    T = 70
    A = _random_key_lists(rng, T, 12) if pattern == "random" else _post_pattern("sparse", T, 5, True)
    idx = _key_lists(A)
    q, k, v = _qkv(rng, B=2, H=2, T=T, D=6, Dv=5)
    mask = _padding(rng, 2, T)
    _assert_values_and_grads(lambda a, b, c: fast.indexed_attention(a, b, c, idx, mask=mask),
                             lambda a, b, c: ref.indexed_attention(a, b, c, idx, mask=mask),
                             q, k, v, dtype, rng, f"indexed_attention({pattern}, T={T}, {dtype})")


def test_post_patterns_agree_with_hand_counts():
    """The test's own pattern builder, judged: row sizes counted by hand for T = 10."""
    # local(2), row 0: j ∈ {0, 1, 2}; row 5: {3, …, 7}
    A = _post_pattern("local", 10, 2, False)
    assert A[0].sum() == 3 and A[5].sum() == 5 and A[5, 3] and A[5, 7] and not A[5, 8]
    # atrous(3), row 4: j ∈ {1, 4, 7}; causal: {1, 4}
    assert np.flatnonzero(_post_pattern("atrous", 10, 3, False)[4]).tolist() == [1, 4, 7]
    assert np.flatnonzero(_post_pattern("atrous", 10, 3, True)[4]).tolist() == [1, 4]
    # sparse(3), row 9: |9 − j| ≤ 3 → {6, 7, 8, 9}, plus 9 − j ∈ 3ℤ → {0, 3}
    assert np.flatnonzero(_post_pattern("sparse", 10, 3, False)[9]).tolist() == [0, 3, 6, 7, 8, 9]
    assert _key_lists(_post_pattern("atrous", 4, 2, True)).tolist() == [[0, -1], [1, -1], [0, 2], [1, 3]]


def test_indexed_twin_equals_pattern_twins(rng):
    """The key-list kernel and the arithmetic-range kernels agree (two independent routes); the
    key lists come from the post's definitions (:func:`_post_pattern`), not from the oracle."""
    q, k, v = _qkv(rng, B=2, H=2, T=40, D=4, Dv=3)
    mask = rng.random((2, 40)) < 0.8
    for f, A, p in ((fast.local_attention, _post_pattern("local", 40, 3, True), 3),
                    (fast.atrous_attention, _post_pattern("atrous", 40, 6, False), 6),
                    (fast.sparse_attention, _post_pattern("sparse", 40, 6, False), 6)):
        idx = _key_lists(A)
        causal = f is fast.local_attention
        np.testing.assert_allclose(fast.indexed_attention(q, k, v, idx, mask=mask),
                                   f(q, k, v, p, causal=causal, mask=mask), rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------
# Properties of the twins alone (known values from the mathematics)
# ---------------------------------------------------------------------------

PATTERNS = [fast.atrous_attention, fast.local_attention, fast.sparse_attention]


@pytest.mark.parametrize("fn", PATTERNS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fully_masked_rows_give_zero_and_zero_gradient(rng, fn, dtype):
    """D4: a sequence with no valid token outputs 0 and passes no gradient; padded queries of
    the other sequence output 0 too, and padded keys get zero gradient."""
    q, k, v = _qkv(rng, B=2, T=9, dtype=dtype)
    mask = np.array([[False] * 9, [True] * 6 + [False] * 3])
    out = fn(q, k, v, 2, mask=mask)
    assert out.dtype == dtype
    assert np.all(out[0] == 0) and np.all(out[1, :, 6:] == 0)
    assert np.all(np.isfinite(out))
    dq, dk, dv = grad(lambda x: anp.sum(fn(x[0], x[1], x[2], 2, mask=mask) ** 2))((q, k, v))
    for g in (dq, dk, dv):
        assert g.dtype == dtype
        assert np.all(g[0] == 0) and np.all(g[1, :, 6:] == 0)


@pytest.mark.parametrize("fn", PATTERNS)
def test_causal_outputs_ignore_the_future(rng, fn):
    """Output i is unchanged when k_j, v_j (j > i) are changed (causal: only j ≤ i)."""
    q, k, v = _qkv(rng, B=1, H=2, T=50, D=4)
    base = fn(q, k, v, 4, causal=True)
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 31:] = 10 * rng.standard_normal(k2[:, :, 31:].shape)
    v2[:, :, 31:] = 10 * rng.standard_normal(v2[:, :, 31:].shape)
    out = fn(q, k2, v2, 4, causal=True)
    np.testing.assert_array_equal(out[:, :, :31], base[:, :, :31])


def test_degenerate_rates(rng):
    """Atrous with R ≥ T is the identity on v; atrous(1), sparse(1) and local(W ≥ T − 1) are
    the same full attention, computed by the group kernel and by the local kernel."""
    q, k, v = _qkv(rng, B=2, H=1, T=11, D=5, Dv=3)
    np.testing.assert_array_equal(fast.atrous_attention(q, k, v, 11), v)
    np.testing.assert_array_equal(fast.atrous_attention(q, k, v, 10 ** 12), v)
    full = fast.local_attention(q, k, v, 10)
    np.testing.assert_allclose(fast.atrous_attention(q, k, v, 1), full, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(fast.sparse_attention(q, k, v, 1), full, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(fast.local_attention(q, k, v, 10 ** 12), full, rtol=0, atol=0)


def test_T1_returns_v(rng):
    q, k, v = _qkv(rng, B=2, H=3, T=1)
    for fn in PATTERNS:
        np.testing.assert_allclose(fn(q, k, v, 3), v, rtol=1e-15)


@pytest.mark.parametrize("fn", PATTERNS)
def test_extreme_scores_stay_finite(rng, fn):
    """|scores| ~ 1e4: the max shift keeps every weight in [0, 1] (no overflow, no NaN), and
    each output row stays inside the convex hull of the values it averages."""
    q, k, v = _qkv(rng, B=1, H=1, T=40, D=4, scale=100.0)
    out = fn(q, k, v, 3)
    dq, dk, dv = grad(lambda x: anp.sum(fn(x[0], x[1], x[2], 3)))((q, k, v))
    assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(g)) for g in (dq, dk, dv))
    assert np.all(out <= v.max(axis=2, keepdims=True) + 1e-12)
    assert np.all(out >= v.min(axis=2, keepdims=True) - 1e-12)


@pytest.mark.parametrize("fn, ref_fn", [(fast.atrous_attention, ref.atrous_attention),
                                        (fast.local_attention, ref.local_attention),
                                        (fast.sparse_attention, ref.sparse_attention)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_padded_keys_with_the_largest_scores_are_ignored(rng, fn, ref_fn, dtype):
    """Padded keys whose scores exceed every allowed score by ~1e4 (α·s − m ≫ 709, where a
    naive exponential overflows) must still get weight 0: values and gradients as the oracle's."""
    q, k, v = _qkv(rng, B=1, H=2, T=24, D=4)
    mask = np.ones((1, 24), bool)
    mask[0, 5::4] = False
    q[..., 0] = 50.0
    k[:, :, ~mask[0], 0] = 400.0                 # padded keys: scores ≈ 50·400/2 = 1e4
    args = [x.astype(dtype) for x in (q, k, v)]
    out = fn(*args, 3, mask=mask)
    # the published tolerances for the twin's dtype (float64 tight, float32 looser)
    rv, av, _ = tolerance_for(dtype, "values")
    rg, ag, _ = tolerance_for(dtype, "grads")
    np.testing.assert_allclose(out, ref_fn(q, k, v, 3, mask=mask), rtol=max(rv, 1e-12), atol=av)
    u = rng.standard_normal(v.shape)
    g_twin = grad(lambda x: anp.sum(fn(x[0], x[1], x[2], 3, mask=mask) * u))(tuple(args))
    g_ref = grad(lambda x: anp.sum(ref_fn(x[0], x[1], x[2], 3, mask=mask) * u))((q, k, v))
    for a, b in zip(g_twin, g_ref):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=rg, atol=ag)


def test_float32_is_computed_in_float32(rng):
    """float32 in, float32 out, and the rounding error is float32-sized (≫ float64's)."""
    q, k, v = _qkv(rng, B=1, H=2, T=200, D=16, Dv=8)
    exact = fast.local_attention(q, k, v, 9)
    out32 = fast.local_attention(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), 9)
    assert out32.dtype == np.float32
    err = np.max(np.abs(out32 - exact))
    assert 1e-9 < err < 1e-5


def test_results_do_not_depend_on_the_thread_count(rng):
    """Rows are split among threads, never a reduction: 1 and 2 threads agree bit for bit."""
    q, k, v = _qkv(rng, B=2, H=2, T=130, D=8, Dv=4)
    n = numba.get_num_threads()
    u = rng.standard_normal(v.shape)
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        try:
            res = []
            for fn in PATTERNS:
                res.append(fn(q, k, v, 5))
                res.extend(grad(lambda x: anp.sum(fn(x[0], x[1], x[2], 5) * u))((q, k, v)))
            results.append(res)
        finally:
            numba.set_num_threads(n)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_memory_stays_far_below_T_squared(rng):
    """Forward + backward of the sparse twin at T = 4096: NumPy's peak allocation stays below
    8 MB, while one T × T float64 array alone would be 134 MB (the dense oracle keeps several)."""
    T = 4096
    q, k, v = _qkv(rng, T=T, D=16, Dv=16)
    f = lambda x: anp.sum(fast.sparse_attention(x[0], x[1], x[2], 64))
    grad(f)((q, k, v))                       # compile outside the measurement
    tracemalloc.start()
    try:
        grad(f)((q, k, v))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------------------
# Flags policy and the plain-Python mode
# ---------------------------------------------------------------------------

def test_fastmath_flags_come_only_from_config():
    """No ``fastmath=`` literal outside kernels/_config.py (``docs/references.md``, "Fastmath flags"), every ``"fastmath"`` key
    is ``_config.FASTMATH``, and the flag set keeps NaN/inf semantics (no nnan, ninf, fast)."""
    offenders = []
    for path in list((ROOT / "kexue_ref").rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py")):
        if path.name == "_config.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"fastmath\s*=", line):
                offenders.append(f"{path}:{n}: {line.strip()}")
            elif re.search(r"""["']fastmath["']\s*:""", line) and "FASTMATH" not in line:
                offenders.append(f"{path}:{n}: {line.strip()}")
    assert not offenders, "fastmath flags set outside _config.py:\n" + "\n".join(offenders)
    flags = _config.FASTMATH
    assert flags is not True and not isinstance(flags, bool)
    assert not {"nnan", "ninf", "fast"} & set(flags)


def test_plain_python_mode_matches(tmp_path):
    """With NUMBA_DISABLE_JIT=1 the kernels run as Python (the coverage job): same results."""
    script = (
        "import numpy as np, autograd.numpy as anp\n"
        "from autograd import grad\n"
        "from kexue_ref.kernels import sparse_attention as fast\n"
        "from kexue_ref import sparse_attention as ref\n"
        "rng = np.random.default_rng(0)\n"
        "q, k, v = (rng.standard_normal((2, 1, 7, 3)) for _ in range(3))\n"
        "m = np.array([[True] * 7, [True] * 4 + [False] * 3])\n"
        "for dt in (np.float64, np.float32):\n"
        "    a, b, c = q.astype(dt), k.astype(dt), v.astype(dt)\n"
        "    for name, p in (('local_attention', 2), ('atrous_attention', 3), ('sparse_attention', 2)):\n"
        "        f, g = getattr(fast, name), getattr(ref, name)\n"
        "        np.testing.assert_allclose(f(a, b, c, p, causal=True, mask=m), g(q, k, v, p, causal=True, mask=m),\n"
        "                                   rtol=1e-5, atol=1e-6)\n"
        "        gf = grad(lambda x: anp.sum(f(x, b, c, p, mask=m) ** 2))(a)\n"
        "        gr = grad(lambda x: anp.sum(g(x, k, v, p, mask=m) ** 2))(q)\n"
        "        tol = dict(rtol=1e-9, atol=1e-10) if dt == np.float64 else dict(rtol=1e-3, atol=1e-5)\n"
        "        np.testing.assert_allclose(gf, gr, **tol)\n"
        "    d = np.arange(7)[:, None] - np.arange(7)[None, :]\n"
        "    A = (np.abs(d) <= 3) | (d % 3 == 0)\n"
        "    idx = np.array([list(np.flatnonzero(r)) + [-1] * (7 - r.sum()) for r in A], dtype=np.int64)\n"
        "    np.testing.assert_allclose(fast.indexed_attention(a, b, c, idx, mask=m),\n"
        "                               ref.indexed_attention(q, k, v, idx, mask=m), rtol=1e-5, atol=1e-6)\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
