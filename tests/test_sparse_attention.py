"""Sparse attention (https://kexue.fm/archives/6853): the oracle against explicit per-row loops,
the post's claims, the blocked forms, and compat="keras" (docs/sparse_attention.md) against loops
written from the Keras source and against hand-computed values."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from kexue_ref import _masks as mk
from kexue_ref import _numerics as nx
from kexue_ref import sparse_attention as sa

PATTERNS = {  # function, blocked form, the key set of query i (the post's definitions)
    "atrous": (sa.atrous_attention, sa.atrous_attention_blocked,
               lambda i, T, R: set(range(i % R, T, R))),
    "local": (sa.local_attention, sa.local_attention_blocked,
              lambda i, T, W: set(range(max(0, i - W), min(T, i + W + 1)))),
    "sparse": (sa.sparse_attention, sa.sparse_attention_blocked,
               lambda i, T, R: set(range(max(0, i - R), min(T, i + R + 1))) | set(range(i % R, T, R))),
}


def qkv(rng, B=1, H=1, T=7, D=3, Dv=2, scale=1.0):
    return (scale * rng.standard_normal((B, H, T, D)), scale * rng.standard_normal((B, H, T, D)),
            rng.standard_normal((B, H, T, Dv)))


def loop_attention(q, k, v, keys_of, mask=None):
    """o_i = Σ_{j ∈ keys_of(i)} softmax_j(q_i·k_j/√D) v_j with Python floats, row by row."""
    B, H, T, D = q.shape
    out = np.zeros(q.shape[:3] + v.shape[3:])
    for b in range(B):
        for h in range(H):
            for i in range(T):
                if mask is not None and not mask[b][i]:
                    continue
                keys = [j for j in sorted(keys_of(i)) if mask is None or mask[b][j]]
                if not keys:
                    continue
                s = [float(q[b, h, i] @ k[b, h, j]) / math.sqrt(D) for j in keys]
                m = max(s)
                w = [math.exp(x - m) for x in s]
                out[b, h, i] = sum(wj * v[b, h, j] for wj, j in zip(w, keys)) / sum(w)
    return out


def vjp(fn, q, k, v, u, **kw):
    """(dq, dk, dv) of <u, fn(q, k, v)> by autograd."""
    return grad(lambda a, b, c: anp.sum(fn(a, b, c, **kw) * u), argnum=(0, 1, 2))(q, k, v)


# ---------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------

def test_attention_known_values():
    # D = 1, q_0 = 1, k = (0, log 3): weights (1/4, 3/4)
    q = np.ones((1, 1, 1, 1))
    k = np.array([0.0, math.log(3.0)]).reshape(1, 1, 2, 1)
    v = np.array([[4.0, 0.0], [0.0, 8.0]]).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(sa.attention(q, k, v)[0, 0, 0], [1.0, 6.0], rtol=1e-15)
    # scaling by 1/√D: D = 4 with every component log 3 / 2 ... scores (0, 2·log 3 / 2) = (0, log 3)
    q4 = np.full((1, 1, 1, 4), 0.5)
    k4 = np.stack([np.zeros(4), np.full(4, math.log(3.0))]).reshape(1, 1, 2, 4)
    np.testing.assert_allclose(sa.attention(q4, k4, v)[0, 0, 0], [1.0, 6.0], rtol=1e-15)


def test_attention_equals_row_loop_with_random_mask(rng):
    q, k, v = qkv(rng, B=2, H=2, T=6)
    allowed = rng.random((6, 6)) < 0.5
    key_mask = rng.random((2, 6)) < 0.8
    out = sa.attention(q, k, v, allowed, key_mask=key_mask)
    for b in range(2):
        ref = loop_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1],
                             lambda i: {j for j in range(6) if allowed[i, j] and key_mask[b, j]})
        np.testing.assert_allclose(out[b:b + 1], ref, rtol=1e-12, atol=1e-14)


def test_fully_masked_row_is_zero_with_zero_cotangents(rng):
    q, k, v = qkv(rng, T=5)
    allowed = np.ones((5, 5), bool)
    allowed[2] = False
    out = sa.attention(q, k, v, allowed)
    assert (out[0, 0, 2] == 0).all() and np.isfinite(out).all()
    u = np.zeros_like(out)
    u[0, 0, 2] = rng.standard_normal(2)             # a cotangent on the masked row only
    for g in vjp(sa.attention, q, k, v, u, allowed=allowed):
        assert (g == 0).all() and np.isfinite(g).all()


def test_fill_makes_a_fully_masked_row_uniform_and_leaves_the_others(rng):
    q, k, v = qkv(rng, B=2, T=5)
    key_mask = np.array([[False] * 5, [True, False, True, True, False]])
    exact = sa.attention(q, k, v, key_mask=key_mask)
    filled = sa.attention(q, k, v, key_mask=key_mask, fill=-1e9)
    # batch 0: every key masked → the uniform average of all Tk values
    np.testing.assert_allclose(filled[0], np.broadcast_to(v[0].mean(axis=1, keepdims=True), filled[0].shape),
                               rtol=1e-14)
    assert (exact[0] == 0).all()
    np.testing.assert_allclose(filled[1], exact[1], rtol=1e-14, atol=1e-15)


def test_query_mask_zeroes_rows_and_their_gradients(rng):
    q, k, v = qkv(rng, B=2, T=4)
    qm = np.array([[True, False, True, True], [False] * 4])
    out = sa.attention(q, k, v, query_mask=qm)
    assert (out[0, :, 1] == 0).all() and (out[1] == 0).all()
    np.testing.assert_allclose(out[0, :, 0], sa.attention(q, k, v)[0, :, 0], rtol=1e-15)
    dq, dk, dv = vjp(sa.attention, q, k, v, np.ones_like(out), query_mask=qm)
    assert (dq[0, :, 1] == 0).all() and (dq[1] == 0).all() and (dk[1] == 0).all() and (dv[1] == 0).all()


def test_large_scores_tend_to_hard_attention(rng):
    q, k, v = qkv(rng, T=6)
    q = 1e4 * q
    out = sa.attention(q, k, v)
    assert np.isfinite(out).all()
    hard = v[0, 0, np.argmax(q[0, 0] @ k[0, 0].T, axis=1)]   # the argmax key of each row
    np.testing.assert_allclose(out[0, 0], hard, rtol=1e-12, atol=1e-12)


def test_float32_in_float32_out_and_close_to_float64(rng):
    q, k, v = qkv(rng, B=2, H=2, T=11)
    mask = np.array([[True] * 11, [True] * 6 + [False] * 5])
    for name, (fn, blocked, _) in PATTERNS.items():
        for f in (fn, blocked):
            o32 = f(*(x.astype(np.float32) for x in (q, k, v)), 3, mask=mask)
            assert o32.dtype == np.float32, (name, f.__name__)
            np.testing.assert_allclose(o32, f(q, k, v, 3, mask=mask), rtol=2e-5, atol=2e-6)


def test_mask_as_nested_list_equals_array(rng):
    q, k, v = qkv(rng, B=2, T=5)
    mask = [[True, True, False, True, True], [True, False, False, False, False]]
    for fn, _, _ in PATTERNS.values():
        np.testing.assert_array_equal(fn(q, k, v, 2, mask=mask), fn(q, k, v, 2, mask=np.array(mask)))


# ---------------------------------------------------------------------------
# The patterns against explicit key sets; the post's claims
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("T, R", [(1, 2), (3, 5), (10, 3), (12, 4), (13, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_pattern_equals_row_loop(name, T, R, causal, rng):
    fn, _, keys = PATTERNS[name]
    q, k, v = qkv(rng, B=2, T=T)
    mask = np.ones((2, T), bool)
    mask[1, T // 2:] = False
    ref = loop_attention(q, k, v, lambda i: {j for j in keys(i, T, R) if j <= i or not causal}, mask)
    np.testing.assert_allclose(fn(q, k, v, R, causal=causal, mask=mask), ref, rtol=1e-12, atol=1e-14)


def test_atrous_rate_at_least_T_returns_v_exactly(rng):
    q, k, v = qkv(rng, B=2, H=2, T=6)
    for R in (6, 7, 40):
        np.testing.assert_array_equal(sa.atrous_attention(q, k, v, R), v)
        np.testing.assert_array_equal(sa.atrous_attention_blocked(q, k, v, R), v)


def test_degenerate_rates_are_full_attention(rng):
    q, k, v = qkv(rng, B=2, T=9)
    full = sa.attention(q, k, v)
    for out in (sa.atrous_attention(q, k, v, 1), sa.sparse_attention(q, k, v, 1),
                sa.local_attention(q, k, v, 8), sa.local_attention(q, k, v, 20),
                sa.sparse_attention(q, k, v, 8)):
        np.testing.assert_allclose(out, full, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(sa.local_attention(q, k, v, 8, causal=True),
                               sa.attention(q, k, v, causal=True), rtol=1e-14, atol=1e-15)


CAUSAL_FNS = [
    ("atrous", lambda q, k, v: sa.atrous_attention(q, k, v, 3, causal=True)),
    ("local", lambda q, k, v: sa.local_attention(q, k, v, 2, causal=True)),
    ("sparse", lambda q, k, v: sa.sparse_attention(q, k, v, 3, causal=True)),
    ("atrous-blocked", lambda q, k, v: sa.atrous_attention_blocked(q, k, v, 3, causal=True)),
    ("local-blocked", lambda q, k, v: sa.local_attention_blocked(q, k, v, 2, causal=True, block=4)),
    ("sparse-blocked", lambda q, k, v: sa.sparse_attention_blocked(q, k, v, 3, causal=True, block=4)),
    ("indexed", lambda q, k, v: sa.indexed_attention(q, k, v, mk.key_index_from_mask(
        mk.sparse_mask(q.shape[2], 2, causal=True)))),
    ("attention", lambda q, k, v: sa.attention(q, k, v, causal=True)),
    ("keras-atrous", lambda q, k, v: sa.atrous_attention(q, k, v, 3, causal=True, compat="keras")),
    ("keras-local", lambda q, k, v: sa.local_attention(q, k, v, 2, causal=True, compat="keras")),
    ("keras-sparse", lambda q, k, v: sa.sparse_attention(q, k, v, 3, causal=True, compat="keras")),
]


@pytest.mark.parametrize("name, fn", CAUSAL_FNS, ids=[n for n, _ in CAUSAL_FNS])
def test_causal_outputs_ignore_future_keys_and_values(name, fn, rng):
    q, k, v = qkv(rng, B=2, T=13)
    out = fn(q, k, v)
    for i0 in (0, 4, 11):
        k2, v2 = k.copy(), v.copy()
        k2[:, :, i0 + 1:] += 10 * rng.standard_normal(k2[:, :, i0 + 1:].shape)
        v2[:, :, i0 + 1:] += 10 * rng.standard_normal(v2[:, :, i0 + 1:].shape)
        out2 = fn(q, k2, v2)
        np.testing.assert_allclose(out2[:, :, :i0 + 1], out[:, :, :i0 + 1], rtol=1e-14, atol=1e-15)
        assert not np.allclose(out2[:, :, i0 + 1:], out[:, :, i0 + 1:])


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_padded_tokens_do_not_matter(name, rng):
    fn, blocked, _ = PATTERNS[name]
    q, k, v = qkv(rng, B=2, T=10)
    mask = np.array([[True] * 10, [True] * 6 + [False] * 2 + [True, False]])
    q2, k2, v2 = (x.copy() for x in (q, k, v))
    for x in (q2, k2, v2):
        x += 5.0 * (~mask)[:, None, :, None]            # change every padded token
    for f in (fn, blocked):
        a, b = f(q, k, v, 3, mask=mask), f(q2, k2, v2, 3, mask=mask)
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
        assert (a[1, :, ~mask[1]] == 0).all()


def test_indexed_attention_equals_pattern_and_handles_empty_rows(rng):
    q, k, v = qkv(rng, B=2, H=2, T=11)
    idx = mk.key_index_from_mask(mk.sparse_mask(11, 3))
    np.testing.assert_allclose(sa.indexed_attention(q, k, v, idx), sa.sparse_attention(q, k, v, 3),
                               rtol=1e-14, atol=1e-15)
    idx = np.array([[0, 2], [-1, -1], [0, 1]])
    q, k, v = qkv(rng, T=3)
    out = sa.indexed_attention(q, k, v, idx)
    assert (out[0, 0, 1] == 0).all()
    ref = loop_attention(q, k, v, lambda i: set(idx[i][idx[i] >= 0].tolist()))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# The blocked forms equal the oracle, values and gradients
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("T, R, block", [(1, 2, 64), (3, 5, 1), (7, 3, 2), (12, 4, 5), (13, 3, 64), (16, 1, 3)])
@pytest.mark.parametrize("causal", [False, True])
def test_blocked_equals_oracle_values_and_gradients(name, T, R, block, causal, rng):
    fn, blocked, _ = PATTERNS[name]
    kw = {} if name == "atrous" else {"block": block}
    q, k, v = qkv(rng, B=2, H=2, T=T)
    mask = np.ones((2, T), bool)
    mask[1, (2 * T) // 3:] = False
    a = fn(q, k, v, R, causal=causal, mask=mask)
    b = blocked(q, k, v, R, causal=causal, mask=mask, **kw)
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    u = rng.standard_normal(a.shape)
    ga = grad(lambda x, y, z: anp.sum(fn(x, y, z, R, causal=causal, mask=mask) * u),
              argnum=(0, 1, 2))(q, k, v)
    gb = grad(lambda x, y, z: anp.sum(blocked(x, y, z, R, causal=causal, mask=mask, **kw) * u),
              argnum=(0, 1, 2))(q, k, v)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-12)


def test_blocked_fully_masked_batch_is_zero_with_zero_gradients(rng):
    q, k, v = qkv(rng, B=2, T=9)
    mask = np.array([[False] * 9, [True] * 9])
    for _, blocked, _ in PATTERNS.values():
        out = blocked(q, k, v, 3, mask=mask)
        assert (out[0] == 0).all()
        u = np.zeros_like(out)
        u[0] = 1.0
        for g in grad(lambda x, y, z: anp.sum(blocked(x, y, z, 3, mask=mask) * u), argnum=(0, 1, 2))(q, k, v):
            assert (g == 0).all()


# ---------------------------------------------------------------------------
# compat="keras" (docs/sparse_attention.md)
# ---------------------------------------------------------------------------

def test_float32_additive_constant_collapse():
    s = np.array([0.3, 2.0, -1.5, 5.0])
    # float32: the spacing at 1e10 is 1024, every score rounds to -1e10
    assert np.spacing(np.float32(1e10)) == 1024
    p32 = nx.softmax(s.astype(np.float32) - np.float32(1e10))
    assert p32.dtype == np.float32
    assert p32.tolist() == [0.25, 0.25, 0.25, 0.25]
    # float64 keeps the scores to about 1e-6
    p64 = nx.softmax(s - 1e10)
    np.testing.assert_allclose(p64, nx.softmax(s), atol=1e-5)
    assert abs(p64 - 0.25).max() > 0.5


def test_keras_always_true_branch_makes_weights_uniform():
    # D = 1, q_0 = 1, k = s: the scores of query 0 are exactly s = [0.3, 2, -1.5, 5]
    s = np.array([0.3, 2.0, -1.5, 5.0])
    q = np.ones((1, 1, 4, 1))
    k = s.reshape(1, 1, 4, 1)
    v = np.eye(4).reshape(1, 1, 4, 4)
    mask = np.ones((1, 4), bool)                 # masks the zero padding of the windows
    for dtype in (np.float64, np.float32):
        out = sa.local_attention(*(x.astype(dtype) for x in (q, k, v)), 3, mask=mask, compat="keras")
        assert out.dtype == dtype
        assert out[0, 0, 0].tolist() == [0.25, 0.25, 0.25, 0.25]
    post = sa.local_attention(q, k, v, 3, mask=mask)
    np.testing.assert_allclose(post[0, 0, 0], nx.softmax(s), rtol=1e-14)


def test_keras_float32_step_rounds_the_score_cotangent():
    # atrous, R = 1, T = 2, D = Dv = 1, no mask, non-causal: Keras appends one zero token and
    # every score becomes fl32(s − 1e10) = −1e10, so P = 1/3 on (key 0, key 1, padding).
    # With v = (1, 0), v_pad = 0 and the cotangent g = (1, 1), the softmax VJP is
    #   dS_ij = P_ij (g_i v_j − Σ_j' P_ij' g_i v_j') = (1/3)(v_j − 1/3): 2/9 at j = 0, −1/9 at j = 1.
    # The decision (docs/sparse_attention.md, compat="keras", item 3): dS is rounded to float32
    # (the cast gradient), so with k = (1, 0): dq_i = fl32(2/9)·1 + fl32(−1/9)·0 = fl32(2/9),
    # and with q = (1, 1): dk_j = 2·fl32(dS_0j); dv_j = Σ_i P_ij g_i = 2/3 is not rounded.
    q = np.ones((1, 1, 2, 1))
    k = np.array([1.0, 0.0]).reshape(1, 1, 2, 1)
    v = np.array([1.0, 0.0]).reshape(1, 1, 2, 1)

    def loss(q, k, v):
        # g = (1, 1): the sum of the outputs
        return anp.sum(sa.atrous_attention(q, k, v, 1, compat="keras"))

    np.testing.assert_allclose(sa.atrous_attention(q, k, v, 1, compat="keras").ravel(), [1 / 3] * 2,
                               rtol=1e-15)
    dq, dk, dv = (grad(loss, n)(q, k, v).ravel() for n in range(3))
    r29, r19 = float(np.float32(2 / 9)), float(np.float32(-1 / 9))
    assert r29 != 2 / 9 and r19 != -1 / 9                 # the test tells the two rules apart
    np.testing.assert_allclose(dq, [r29, r29], rtol=4e-16)
    np.testing.assert_allclose(dk, [2 * r29, 2 * r19], rtol=4e-16)
    np.testing.assert_allclose(dv, [2 / 3, 2 / 3], rtol=4e-16)
    # the un-rounded (identity) rule would give 2/9: 7e-9 relative away, far outside the tolerance
    assert abs(dq[0] - 2 / 9) > 1e-9
    # the same for local attention (W = 1, T = 1: slots pad, key 0, pad) and in forward mode
    from autograd import make_jvp
    q1, k1, v1 = np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1))
    # P = 1/3 on (pad, 0, pad); dS_00 = (1/3)(1 − 1/3) = 2/9 → dq = fl32(2/9)·k_0
    assert grad(lambda x: anp.sum(sa.local_attention(x, k1, v1, 1, compat="keras")))(q1).item() == \
        pytest.approx(r29, rel=4e-16)
    # forward mode, tangent 0.1 of q: the score tangent fl32(0.1) (k_0 = 1), then
    # dP_0 = (1/3)(1 − 1/3)·fl32(0.1) and do = dP_0·v_0 = (2/9)·fl32(0.1)
    jvp = make_jvp(lambda x: sa.local_attention(x, k1, v1, 1, compat="keras"))(q1)(np.full_like(q1, 0.1))[1]
    assert float(np.float32(0.1)) != 0.1
    assert jvp.item() == pytest.approx(2 / 9 * float(np.float32(0.1)), rel=4e-16)
    # float32 inputs: the roundings are no-ops, the gradient is the float32 VJP itself
    g32 = grad(loss)(*(x.astype(np.float32) for x in (q, k, v)))
    assert g32.dtype == np.float32 and np.allclose(g32.ravel(), 2 / 9, rtol=1e-6)


def test_keras_atrous_attends_its_padding_without_a_mask(rng):
    q, k, _ = qkv(rng, T=5, D=2)
    v = np.eye(5).reshape(1, 1, 5, 5)
    # T = 5, R = 2: one zero token is appended; groups {0, 2, 4} and {1, 3, pad}
    out = sa.atrous_attention(q, k, v, 2, compat="keras")[0, 0]
    np.testing.assert_allclose(out[1], [0, 1 / 3, 0, 1 / 3, 0], rtol=1e-7)
    np.testing.assert_allclose(out[0], [1 / 3, 0, 1 / 3, 0, 1 / 3], rtol=1e-7)
    # with a mask the padding is excluded: uniform over the real group members
    out = sa.atrous_attention(q, k, v, 2, mask=np.ones((1, 5), bool), compat="keras")[0, 0]
    np.testing.assert_allclose(out[1], [0, 1 / 2, 0, 1 / 2, 0], rtol=1e-7)
    # T = 4, R = 2 divides: Keras still pads a whole group ({0, 2, pad}, {1, 3, pad})
    v4 = np.eye(4).reshape(1, 1, 4, 4)
    out = sa.atrous_attention(q[:, :, :4], k[:, :, :4], v4, 2, compat="keras")[0, 0]
    np.testing.assert_allclose(out[0], [1 / 3, 0, 1 / 3, 0], rtol=1e-7)


def test_keras_local_padding_and_causal_window():
    T, W = 5, 2
    q = np.zeros((1, 1, T, 1))
    v = np.eye(T).reshape(1, 1, T, T)
    # non-causal, no mask: 2W + 1 = 5 slots, zero padding included in the denominator
    out = sa.local_attention(q, q, v, W, compat="keras")[0, 0]
    np.testing.assert_allclose(out[0], [1 / 5, 1 / 5, 1 / 5, 0, 0], rtol=1e-7)
    # causal, no mask: query 0 sees two zero slots and itself, all with score 0
    out = sa.local_attention(q, q, v, W, causal=True, compat="keras")[0, 0]
    np.testing.assert_allclose(out[0], [1 / 3, 0, 0, 0, 0], rtol=1e-14)
    np.testing.assert_allclose(out[3], [0, 1 / 3, 1 / 3, 1 / 3, 0], rtol=1e-14)
    # causal with a mask: the padding is masked, query 0 is v_0
    out = sa.local_attention(q, q, v, W, causal=True, mask=np.ones((1, T), bool), compat="keras")[0, 0]
    np.testing.assert_allclose(out[0], [1, 0, 0, 0, 0], rtol=1e-14)


def test_keras_sparse_dilated_local_branch_and_double_counting():
    # T = 10, R = 2, equal scores: query 2 sees its group {0, 2, 4, 6, 8, pad} (6 entries) and
    # the dilated "local" window {0, 2, 4} (3 entries), one softmax over 9 entries
    T = 10
    q = np.zeros((1, 1, T, 1))
    v = np.eye(T).reshape(1, 1, T, T)
    out = sa.sparse_attention(q, q, v, 2, compat="keras")[0, 0]
    np.testing.assert_allclose(out[2] * 9, [2, 0, 2, 0, 2, 0, 1, 0, 1, 0], rtol=1e-14)
    assert out[2, 1] == out[2, 3] == 0                  # keys at distance 1 are never attended
    post = sa.sparse_attention(q, q, v, 2)[0, 0]
    np.testing.assert_allclose(post[2], [1 / 7, 1 / 7, 1 / 7, 1 / 7, 1 / 7, 0, 1 / 7, 0, 1 / 7, 0], rtol=1e-14)
    # causal: group {0, 2} and window offsets {-2, 0} → 4 entries
    out = sa.sparse_attention(q, q, v, 2, causal=True, compat="keras")[0, 0]
    np.testing.assert_allclose(out[2], [0.5, 0, 0.5, 0, 0, 0, 0, 0, 0, 0], rtol=1e-14)
    # R = 3: window offsets {-6, -3, 0, 3, 6}
    out = sa.sparse_attention(np.zeros((1, 1, 13, 1)), np.zeros((1, 1, 13, 1)),
                              np.eye(13).reshape(1, 1, 13, 13), 3, compat="keras")[0, 0]
    # query 6: group {0, 3, 6, 9, 12} (T = 13 → 2 zero tokens, 15 slots, 5 per group) and the
    # window {0, 3, 6, 9, 12} again: 10 entries, each key exactly twice
    np.testing.assert_allclose(out[6] * 10, [2, 0, 0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 2], rtol=1e-14)
    # query 1: group {1, 4, 7, 10, 13 (zero)}, window {-5, -2, 1, 4, 7}: 2 edge slots
    np.testing.assert_allclose(out[1] * 10, [0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 1, 0, 0], rtol=1e-14)


def _keras_scores_round(s, masked, causal_future, collapse):
    """One Keras score: additive masks, then fl32(s − 1e10) on the always-true branch."""
    s = s - 1e10 * masked - 1e10 * causal_future
    return float(np.float32(s) - np.float32(1e10)) if collapse else s


def _softmax_sum(entries):
    """Σ_e softmax(score_e) value_e over a list of (score, value) pairs (duplicates allowed)."""
    m = max(s for s, _ in entries)
    w = [math.exp(s - m) for s, _ in entries]
    return sum(wi * val for wi, (_, val) in zip(w, entries)) / sum(w)


def keras_loop(kind, q, k, v, p, causal, mask):
    """The Keras layers re-derived per query as a list of (score, value) entries."""
    B, H, T, D = q.shape
    out = np.zeros(q.shape[:3] + v.shape[3:])
    pad = p - T % p if kind != "local" else 0
    Tp = T + pad
    zero_v = np.zeros(v.shape[3])
    for b in range(B):
        valid = [j < T and (mask is None or mask[b][j]) for j in range(Tp)]
        for h in range(H):
            def key(j, t, future, group):
                # a slot: real token, appended zero token, or edge padding (score 0, value 0)
                inside = 0 <= j < Tp
                s = float(q[b, h, t] @ k[b, h, j]) / math.sqrt(D) if 0 <= j < T else 0.0
                masked = mask is not None and not (inside and valid[j])
                collapse = not causal and kind != "sparse"
                score = _keras_scores_round(s, masked, causal and future, collapse)
                return score, (v[b, h, j] if 0 <= j < T else zero_v)
            for t in range(T):
                if kind == "atrous":
                    entries = [key(j, t, j > t, True) for j in range(t % p, Tp, p)]
                elif kind == "local":
                    entries = [key(t + u, t, u > 0, False) for u in range(-p, p + 1)]
                else:
                    entries = ([key(j, t, j > t, True) for j in range(t % p, Tp, p)]
                               + [key(t + u * p, t, u > 0, False) for u in range(-(p - 1), p)])
                out[b, h, t] = 0 if mask is not None and not mask[b][t] else _softmax_sum(entries)
    return out


@pytest.mark.parametrize("kind", ["atrous", "local", "sparse"])
@pytest.mark.parametrize("T, p", [(1, 2), (4, 2), (7, 3), (9, 3), (10, 4)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_keras_compat_equals_a_loop_over_the_keras_entries(kind, T, p, causal, masked, rng):
    fn = {"atrous": sa.atrous_attention, "local": sa.local_attention, "sparse": sa.sparse_attention}[kind]
    q, k, v = qkv(rng, B=2, T=T)
    mask = None
    if masked:
        mask = np.ones((2, T), bool)
        mask[1, T // 2:] = False
    out = fn(q, k, v, p, causal=causal, mask=mask, compat="keras")
    ref = keras_loop(kind, q, k, v, p, causal, mask)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)


def test_keras_causal_atrous_equals_the_post():
    # the appended zero tokens are in every query's future, so causal masking removes them
    rng = np.random.default_rng(8)
    q, k, v = qkv(rng, B=2, T=11)
    np.testing.assert_allclose(sa.atrous_attention(q, k, v, 3, causal=True, compat="keras"),
                               sa.atrous_attention(q, k, v, 3, causal=True), rtol=1e-14, atol=1e-15)


def test_keras_compat_errors(rng):
    q, k, v = qkv(rng, T=5)
    with pytest.raises(ValueError, match="compat='keras' needs rate >= 2"):
        sa.sparse_attention(q, k, v, 1, compat="keras")
    with pytest.raises(ValueError, match="compat must be one of"):
        sa.atrous_attention(q, k, v, 2, compat="Keras")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, msg", [
    (lambda q, k, v: sa.atrous_attention(q, k, v, 0), ValueError, "rate must be >= 1"),
    (lambda q, k, v: sa.local_attention(q, k, v, -1), ValueError, "neighbors must be >= 1"),
    (lambda q, k, v: sa.sparse_attention(q, k[:, :, :4], v[:, :, :4], 2), ValueError, "same length T"),
    (lambda q, k, v: sa.attention(q, k, v[:, :, :4]), ValueError, r"v must have shape \(B, H, Tk, Dv\)"),
    (lambda q, k, v: sa.attention(q[0], k, v), ValueError, r"q must have shape \(B, H, Tq, D\)"),
    (lambda q, k, v: sa.attention(q, k[:, :, :3], v[:, :, :3], causal=True), ValueError, "causal=True needs Tq == Tk"),
    (lambda q, k, v: sa.atrous_attention(q, k, v, 2, mask=np.ones((5,), bool)), ValueError,
     r"mask must have shape \(B, T\) = \(1, 5\)"),
    (lambda q, k, v: sa.atrous_attention(q, k, v, 2, mask=np.ones((1, 5))), TypeError, "mask must be a boolean"),
    (lambda q, k, v: sa.attention(q, k, v, np.ones((2, 5, 5), bool)), ValueError, "does not broadcast"),
    (lambda q, k, v: sa.attention(q, k, v, np.ones((5, 5), int)), TypeError, "allowed must be a boolean"),
    (lambda q, k, v: sa.attention(q, k, v, fill=np.nan), ValueError, "fill must be a finite number"),
    (lambda q, k, v: sa.attention(q[:, :, :0], k, v), ValueError, "every size of q, k, v must be >= 1"),
    (lambda q, k, v: sa.attention(q.astype(complex), k, v), TypeError, "q must be a real"),
    (lambda q, k, v: sa.local_attention_blocked(q, k, v, 2, block=0), ValueError, "block must be >= 1"),
    (lambda q, k, v: sa.indexed_attention(q, k, v, np.array([[0, 0]] * 5)), ValueError, "strictly increasing"),
])
def test_bad_input_names_the_argument(call, exc, msg, rng):
    q, k, v = qkv(rng, T=5)
    with pytest.raises(exc, match=msg):
        call(q, k, v)
