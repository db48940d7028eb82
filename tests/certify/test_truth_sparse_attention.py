"""The multiprecision truth of sparse attention (https://kexue.fm/archives/6853) checked against
the mathematics: hand-computed softmax weights, the post's key sets and row counts, the Keras
departures worked out by hand (docs/sparse_attention.md), its written-out VJP against central
differences of its own forward, and certification rejecting tables that are a few ulps off."""
import math

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import registry, tables  # noqa: E402
from kexue_ref.certify import _mp  # noqa: E402
from ._util import EPS, case_named as _case  # noqa: E402
from kexue_ref.certify import truth_sparse_attention as ts  # noqa: E402


@pytest.fixture(autouse=True)
def _precision():
    with mpmath.workdps(50):
        yield


def mp4(a):
    """A (T, E) list as a (1, 1, T, E) object array of mpf."""
    return _mp.mpf_array(np.asarray(a, dtype=float).reshape(1, 1, *np.shape(a)))


def as_float(x):
    return _mp.to_float(x)


# ---------------------------------------------------------------------------
# Forward values from the formula
# ---------------------------------------------------------------------------

def test_scores_log2_give_weights_one_third_two_thirds():
    # D = 1, q_0 = 1, k = (0, log 2): S = (0, log 2), P = (1/3, 2/3), o = (1·1 + 2·4)/3 = 3
    q = mp4([[1.0], [0.0]])
    k = _mp.zeros((1, 1, 2, 1))
    k[0, 0, 1, 0] = mpmath.log(2)
    v = mp4([[1.0], [4.0]])
    out = ts.attention(q, k, v, np.ones((2, 2), bool))
    assert abs(out[0, 0, 0, 0] - 3) < mpmath.mpf(10) ** -45
    # query 1 has q = 0: equal scores, the mean 5/2
    assert abs(out[0, 0, 1, 0] - mpmath.mpf(5) / 2) < mpmath.mpf(10) ** -45


def test_scale_is_one_over_sqrt_d():
    # D = 4, q = k = (1, 1, 1, 1) for key 1 and 0 for key 0: S = (0, 4/√4 = 2)
    q = mp4([[1.0] * 4])
    k = mp4([[0.0] * 4, [1.0] * 4])
    v = mp4([[0.0], [1.0]])
    out = ts.attention(q, k, v, np.ones((1, 2), bool))
    # o = e²/(1 + e²)
    assert abs(out[0, 0, 0, 0] - mpmath.exp(2) / (1 + mpmath.exp(2))) < mpmath.mpf(10) ** -45


def test_equal_scores_causal_and_fully_masked_rows():
    q = _mp.zeros((1, 1, 2, 1))
    v = mp4([[1.0], [3.0]])
    assert as_float(ts.attention(q, q, v)).ravel().tolist() == [2.0, 2.0]
    assert as_float(ts.attention(q, q, v, causal=True)).ravel().tolist() == [1.0, 2.0]
    # D4: no valid key → 0; fill = c → the uniform average of all values
    no_key = [[False, False]]
    assert as_float(ts.attention(q, q, v, key_mask=no_key)).ravel().tolist() == [0.0, 0.0]
    assert as_float(ts.attention(q, q, v, key_mask=no_key, fill=-1e9)).ravel().tolist() == [2.0, 2.0]
    # an invalid query row is 0 even with fill
    assert as_float(ts.attention(q, q, v, query_mask=[[True, False]], fill=-1e9)).ravel().tolist() == [2.0, 0.0]


def test_patterns_average_their_key_sets_at_equal_scores():
    # q = 0: every allowed key has weight 1/|N(i)|, so o_i is the mean of v over the post's key set
    T = 7
    q = _mp.zeros((1, 1, T, 1))
    v = mp4([[float(t)] for t in range(T)])
    sets = {
        "atrous": (ts.atrous_attention, lambda i, R: [j for j in range(T) if (i - j) % R == 0]),
        "local": (ts.local_attention, lambda i, W: [j for j in range(T) if abs(i - j) <= W]),
        "sparse": (ts.sparse_attention,
                   lambda i, R: [j for j in range(T) if abs(i - j) <= R or (i - j) % R == 0]),
    }
    for name, (fn, keys) in sets.items():
        for p in (1, 2, 3):
            for causal in (False, True):
                out = as_float(fn(q, q, v, p, causal=causal)).ravel()
                want = [np.mean([j for j in keys(i, p) if not causal or j <= i]) for i in range(T)]
                np.testing.assert_allclose(out, want, rtol=1e-15, err_msg=f"{name} {p} {causal}")


def test_atrous_rate_at_least_T_is_v_exactly_and_padding_rows_are_zero():
    rng = np.random.default_rng(0)
    q, k, v = (mp4(rng.standard_normal((5, 3))) for _ in range(3))
    out = ts.atrous_attention(q, k, v, 9)
    assert all(out[0, 0, i, d] == v[0, 0, i, d] for i in range(5) for d in range(3))
    out = as_float(ts.local_attention(q, k, v, 2, mask=[[True, True, False, True, False]]))
    assert (out[0, 0, [2, 4]] == 0).all() and (out[0, 0, [0, 1, 3]] != 0).all()


def test_keras_departures_by_hand():
    # docs/sparse_attention.md, "compat='keras'": equal scores (q = 0), T = 5, v = 0..4
    T = 5
    q = _mp.zeros((1, 1, T, 1))
    v = mp4([[float(t)] for t in range(T)])
    # atrous R = 2 pads one zero token: query 1 averages {v1, v3, 0} = 4/3
    np.testing.assert_allclose(as_float(ts.atrous_attention(q, q, v, 2, compat="keras")).ravel(),
                               [2, 4 / 3, 2, 4 / 3, 2], rtol=1e-15)
    # local W = 1 zero-pads its windows: the edges average two values and a zero
    np.testing.assert_allclose(as_float(ts.local_attention(q, q, v, 1, compat="keras")).ravel(),
                               [1 / 3, 1, 2, 3, 7 / 3], rtol=1e-15)
    # sparse R = 2, T = 10, query 2: group {0, 2, 4, 6, 8, pad} plus the dilated window {0, 2, 4}:
    # nine entries, keys 0, 2, 4 twice
    T = 10
    z = _mp.zeros((1, 1, T, 1))
    eye = _mp.mpf_array(np.eye(T).reshape(1, 1, T, T))
    row = as_float(ts.sparse_attention(z, z, eye, 2, compat="keras"))[0, 0, 2] * 9
    np.testing.assert_allclose(row, [2, 0, 2, 0, 2, 0, 1, 0, 1, 0], atol=1e-14)


def test_keras_float32_collapse_makes_weights_uniform():
    # D = 1, q_0 = 1, k = s: scores s = (0.3, 2, −1.5, 5); fl32(fl32(s) − 1e10) = −1e10 for all
    s = [0.3, 2.0, -1.5, 5.0]
    q = mp4([[1.0]] * 4)
    k = mp4([[x] for x in s])
    v = _mp.mpf_array(np.eye(4).reshape(1, 1, 4, 4))
    out = ts.local_attention(q, k, v, 3, mask=[[True] * 4], compat="keras")
    assert as_float(out)[0, 0, 0].tolist() == [0.25] * 4
    # causal keras keeps the scores (no collapse): the plain softmax of the visible keys
    out = ts.local_attention(q, k, v, 3, mask=[[True] * 4], causal=True, compat="keras")
    e = [mpmath.exp(x) for x in s[:3]]
    assert abs(out[0, 0, 2, 1] - e[1] / sum(e)) < mpmath.mpf(10) ** -40
    # 1e10 is exact in float32 and its spacing there is 1024
    assert ts._keras_float32_step(mpmath.mpf(511)) == -10 ** 10
    assert ts._keras_float32_step(mpmath.mpf(513)) == -10 ** 10 + 1024


# ---------------------------------------------------------------------------
# The pattern predicates
# ---------------------------------------------------------------------------

def test_mask_row_counts_from_the_post():
    for T in (1, 5, 13, 37):
        for R in (1, 2, 3, 4, 9):
            a = ts.atrous_mask(T, R).sum(1)
            assert a.tolist() == [(T - 1 - i % R) // R + 1 for i in range(T)]
            loc = ts.local_mask(T, R).sum(1)
            assert loc.tolist() == [min(i, R) + min(T - 1 - i, R) + 1 for i in range(T)]
            assert (ts.sparse_mask(T, R) == (ts.local_mask(T, R) | ts.atrous_mask(T, R))).all()
            assert (ts.strided_mask(T, R) == ts.atrous_mask(T, R, causal=True)).all()
            assert (ts.openai_local_mask(T, R + 1) == ts.local_mask(T, R, causal=True)).all()
    # T = 37, R = 4: 553 allowed pairs (docs/sparse_attention.md)
    assert int(ts.sparse_mask(37, 4).sum()) == 553


def test_fixed_layout_and_block_layout_by_hand():
    # n = 6, s = 3: windows {0, 1, 2}, {3, 4, 5}; summary block 2 (the last of each window)
    want = np.array([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                     [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]], bool)
    assert (ts.openai_fixed_layout(6, 3)[0] == want).all()
    # three heads rotate the summary offset: head 1 uses offset 1, head 2 offset 0
    L = ts.openai_fixed_layout(6, 3, heads=3, num_verts=3)
    assert L[1, 5, 1] and not L[1, 5, 2] and L[2, 5, 0] and not L[2, 5, 1]
    # local(6, 1) in blocks of 2: a block is on if any pair in it is
    assert ts.mask_to_layout(ts.local_mask(6, 1), 2).astype(int).tolist() == \
        [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    # partial last block (T = 5, block 2)
    assert ts.mask_to_layout(np.eye(5, dtype=bool), 2).astype(int).tolist() == \
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


# ---------------------------------------------------------------------------
# The written-out VJP against central differences of the truth's forward
# ---------------------------------------------------------------------------

def _central_vjp(fn, q, k, v, g, h=mpmath.mpf(10) ** -16, **params):
    """Σ_out <g, ∂out/∂x> for every entry of q, k, v by central differences at 50 digits.

    Truncation O(h²) ≈ 1e-32, rounding ≈ 1e-50/h = 1e-34: far below the 1e-25 compared.
    """
    res = {}
    for name, x in (("q", q), ("k", k), ("v", v)):
        d = _mp.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            orig = x[idx]
            x[idx] = orig + h
            plus = fn(q, k, v, **params)
            x[idx] = orig - h
            minus = fn(q, k, v, **params)
            x[idx] = orig
            d[idx] = sum(gi * (a - b) for gi, a, b in
                         zip(g.ravel().tolist(), plus.ravel(), minus.ravel())) / (2 * h)
        res[name] = d
    return res


@pytest.mark.parametrize("op, params", [
    ("sparse_attention.atrous_attention", {"rate": 2, "mask": [[True, True, False, True, True], [True] * 5]}),
    ("sparse_attention.local_attention", {"neighbors": 1, "causal": True}),
    ("sparse_attention.sparse_attention", {"rate": 2, "compat": "keras", "mask": [[True] * 4 + [False], [True] * 5]}),
    ("sparse_attention.sparse_attention", {"rate": 3, "compat": "keras", "causal": True}),
    ("sparse_attention.atrous_attention", {"rate": 2, "compat": "keras", "causal": True}),
    ("sparse_attention.attention", {"fill": -3.0, "key_mask": [[True, False, True, True, False], [False] * 5]}),
])
def test_grads_equal_central_differences_of_the_forward(op, params):
    rng = np.random.default_rng(1)
    q, k = (_mp.mpf_array(rng.standard_normal((2, 1, 5, 2))) for _ in range(2))
    v = _mp.mpf_array(rng.standard_normal((2, 1, 5, 2)))
    g = rng.standard_normal((2, 1, 5, 2))
    fn = ts.TRUTH[op]
    if op.endswith(".attention"):
        params = dict(params, allowed=rng.random((5, 5)) < 0.7)
    exact = ts.GRADS[op](q, k, v, cotangents={"out": g}, **params)
    fd = _central_vjp(fn, q, k, v, g, **params)
    for name in "qkv":
        for a, b in zip(exact[name].ravel(), fd[name].ravel()):
            assert abs(a - b) < mpmath.mpf(10) ** -25, (op, name)


def test_keras_collapse_grad_rounds_the_score_cotangent_to_float32():
    # the decision of docs/sparse_attention.md ("compat='keras'", item 3), by hand: atrous R = 1,
    # T = 2, D = 1, no mask: P = 1/3 on (key 0, key 1, zero token); v = (1, 0), g = (1, 1):
    # dS_i0 = 2/9, dS_i1 = −1/9; with k = (1, 0), q = (1, 1):
    # dq_i = fl32(2/9), dk = (2·fl32(2/9), 2·fl32(−1/9)), dv = (2/3, 2/3)
    q = mp4([[1.0], [1.0]])
    k = mp4([[1.0], [0.0]])
    v = mp4([[1.0], [0.0]])
    g = np.ones((1, 1, 2, 1))
    d = ts.GRADS["sparse_attention.atrous_attention"](q, k, v, 1, cotangents={"out": g}, compat="keras")
    r29, r19 = float(np.float32(2 / 9)), float(np.float32(-1 / 9))
    assert [float(x) for x in d["q"].ravel()] == [r29, r29]
    assert [float(x) for x in d["k"].ravel()] == [2 * r29, 2 * r19]
    assert all(abs(x - mpmath.mpf(2) / 3) < mpmath.mpf(10) ** -45 for x in d["v"].ravel())
    # the forward there is flat in q and k (every score collapses to −1e10)
    out = ts.atrous_attention(q, k, v, 1, compat="keras")
    q2 = mp4([[1.5], [0.5]])
    assert (as_float(ts.atrous_attention(q2, k, v, 1, compat="keras")) == as_float(out)).all()


# ---------------------------------------------------------------------------
# Certification rejects wrong tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op, name, member", [
    ("sparse_attention.attention", "B2-H2-Tq5-Tk7", "output.out"),
    ("sparse_attention.attention", "fill-1e9-causal", "grad.v"),
    ("sparse_attention.atrous_attention", "B2-T12-rate3-pad", "grad.q"),
    ("sparse_attention.local_attention", "keras-B2-T11-neighbors3-pad", "output.out"),
    ("sparse_attention.sparse_attention", "keras-T10-rate2", "grad.k"),
    ("sparse_attention.indexed_attention", "T11-sparse3", "grad.k"),
    ("sparse_attention.local_attention_blocked", "T17-neighbors3-block1", "output.out"),
])
def test_certification_rejects_a_few_eps_off(op, name, member):
    from kexue_ref.certify import certify_record
    case = _case(op, name)
    rec = tables.case_record(case)
    scales = {k: s["scale"] for k, s in tables.natural_scales(case, rec).items()}
    assert certify_record(case, rec, scales)[member].passed
    bad = dict(rec)
    arr = rec[member].copy()
    idx = np.unravel_index(np.argmax(np.abs(arr)), arr.shape)
    # 8 eps·S: past both the goal (1 eps·S) and the gradients' bound (3 eps·S)
    arr[idx] += 8 * EPS * scales[member]
    bad[member] = arr
    assert not certify_record(case, bad, scales)[member].passed


def test_certification_rejects_the_unrounded_keras_gradient():
    # a table whose q gradient follows the other rule (the float32 step as the identity) fails
    from kexue_ref.certify import certify_record
    case = _case("sparse_attention.atrous_attention", "keras-T10-rate2")
    rec = tables.case_record(case)
    q, k, v = (_mp.mpf_array(rec[f"input.{n}"]) for n in "qkv")
    plan, collapse = ts._pattern_plan("atrous", q, 2, False, None, "keras")
    assert collapse
    ident = ts._vjp(q, k, v, plan, rec["cotangent.out"], collapse=False)
    bad = dict(rec, **{"grad.q": _mp.to_float(ident["q"])})
    assert not np.array_equal(bad["grad.q"], rec["grad.q"])
    assert certify_record(case, rec)["grad.q"].passed
    assert not certify_record(case, bad)["grad.q"].passed


@pytest.mark.parametrize("op, name", [("sparse_attention.sparse_mask", "T13-rate3-causal"),
                                      ("sparse_attention.openai_fixed_layout", "n12-s4-h4-v2-nv2"),
                                      ("sparse_attention.mask_to_layout", "local13-1-block4")])
def test_certification_rejects_one_flipped_mask_entry(op, name):
    from kexue_ref.certify import certify_record
    case = _case(op, name)
    rec = tables.case_record(case)
    assert certify_record(case, rec)["output.out"].passed
    arr = rec["output.out"].copy()
    arr.reshape(-1)[arr.size // 2] ^= True
    assert not certify_record(case, dict(rec, **{"output.out": arr}))["output.out"].passed


def test_every_op_of_the_topic_has_a_truth():
    ops = {s.name for s in registry.select_ops("sparse_attention.*")}
    assert ops == set(ts.TRUTH)
    assert set(ts.GRADS) == {op for op in ops if registry.get_op(op).diff}
    assert math.isclose(ts.KERAS_CONSTANT, 1e10)
