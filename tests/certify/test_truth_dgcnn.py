"""The multiprecision truth of the DGCNN extractor (``kexue_ref/certify/truth_dgcnn.py``).

Expected values come from the mathematics of https://kexue.fm/archives/6671 and the author's
code conventions described in ``docs/dgcnn.md``: hand-computed convolutions, gates at σ = ½,
closed forms when the weights vanish, the identity σ(g) = 1 − σ(−g), the post's examples for
the span positions and its reported F1, the PyTorch GRU equations, exact rational counts — never
the float64 code. The last tests check that certification rejects wrong tables.
"""
from fractions import Fraction

import numpy as onp
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import tables  # noqa: E402
from ._util import mp, case_named as _case, assert_bump_is_rejected, close, all_close  # noqa: E402
from kexue_ref.certify import truth_dgcnn as td  # noqa: E402



def sig(v):
    return 1 / (1 + mpmath.exp(-mpmath.mpf(v)))


def test_every_op_has_a_truth():
    from kexue_ref.cases import dgcnn
    assert set(td.TRUTH) == {spec.name for spec in dgcnn.OPS}
    assert set(td.GRADS) <= set(td.TRUTH)
    for key, b in td.BOUNDS.items():
        assert key.split("[")[0] in td.TRUTH and b["reason"]


def test_truth_is_independent_of_the_oracle():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(td))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m.startswith("kexue_ref.dgcnn") or m.startswith("kexue_ref._numerics")
                          or m.startswith("autograd")) for m in names)


# ---------------------------------------------------------------------------
# Convolution, block, stack
# ---------------------------------------------------------------------------

def test_conv_taps_by_hand():
    # x = 1..5, kernel row 0 multiplies x_{t−r}: r = 2 gives 0, 0, 1, 2, 3 (plus the bias 0.5)
    x = mp(onp.arange(1.0, 6.0).reshape(1, 5, 1))
    w = mp(onp.array([1.0, 0.0, 0.0]).reshape(3, 1, 1))
    y = td.dilated_conv1d(x, w, mp([0.5]), dilation=2)
    assert all_close(y[0, :, 0], [0.5, 0.5, 1.5, 2.5, 3.5])
    # even k = 2, r = 3: TensorFlow 'same' puts ⌊3/2⌋ = 1 zero on the left: taps x_{t−1}, x_{t+2}
    x = mp(onp.arange(1.0, 8.0).reshape(1, 7, 1))
    w = mp(onp.array([1.0, 10.0]).reshape(2, 1, 1))
    y = td.dilated_conv1d(x, w, mp([0.0]), dilation=3)
    assert all_close(y[0, :, 0], [30, 41, 52, 63, 74, 5, 6])


def test_block_half_gate_and_forms():
    # w = 0, b = [0 | 3]: σ = ½, so Y = (X + 3)/2 in both forms (G = ½ too)
    x = mp([[[1.0], [-2.0]]])
    w, b = mp(onp.zeros((3, 1, 2))), mp([0.0, 3.0])
    for gate in ("post", "keras"):
        y = td.dgcnn_block(x, None, w, b, None, dilation=1, gate=gate, rate=0.0)
        assert all_close(y[0, :, 0], [2, mpmath.mpf(1) / 2])
    # the two forms agree once the gate half is negated: σ(g) = 1 − σ(−g), to all 60 digits
    rng = onp.random.default_rng(5)
    x, w, b = mp(rng.normal(size=(2, 6, 2))), mp(rng.normal(size=(3, 2, 4))), mp(rng.normal(size=4))
    mask = onp.arange(6) < onp.array([6, 4])[:, None]
    keep = rng.random((2, 6, 2)) > 0.3
    post = td.dgcnn_block(x, mask, w, b, keep, dilation=2, gate="post", rate=0.1)
    keras = td.dgcnn_block(x, mask, *td.flip_gate(w, b), keep, dilation=2, gate="keras", rate=0.1)
    assert all_close(post, keras)
    assert all(v == 0 for v in post[1, 4:].reshape(-1))


def test_block_dropped_gate_logit_is_one_half():
    # a dropped logit is 0: gate ½, the average of the two branches; a kept one is g / 0.9
    x = mp([[[2.0, 4.0]]])
    w = mp(onp.zeros((3, 2, 4)))
    b = mp([1.0, 1.0, 6.0, 8.0])
    keep = onp.array([[[False, True]]])
    y = td.dgcnn_block(x, None, w, b, keep, dilation=1, gate="keras", rate=0.1)
    assert close(y[0, 0, 0], 4)
    s = sig(1 / (1 - mpmath.mpf(0.1)))
    assert close(y[0, 0, 1], s * 4 + (1 - s) * 8)


def test_stack_with_constant_blocks_halves_towards_the_bias():
    # every block has w = 0, gate bias 0, value bias c: Y = (X + c)/2, so after L blocks
    # H = X/2^L + c(1 − 2^−L) at valid positions and 0 at padding
    L, c = 6, mpmath.mpf(3)
    x = mp([[[1.0], [5.0], [7.0]]])
    w = mp(onp.zeros((L, 3, 1, 2)))
    b = mp(onp.tile([0.0, 3.0], (L, 1)))
    mask = onp.array([[True, True, False]])
    h = td.dgcnn_stack(x, mask, w, b, dilations=(1, 2, 5, 1, 2, 5))
    for t, xv in ((0, 1), (1, 5)):
        assert close(h[0, t, 0], xv / mpmath.mpf(2) ** L + c * (1 - mpmath.mpf(2) ** -L))
    assert h[0, 2, 0] == 0


def test_flip_gate_is_an_involution():
    rng = onp.random.default_rng(1)
    w, b = mp(rng.normal(size=(2, 3, 2, 4))), mp(rng.normal(size=(2, 4)))
    w1, b1 = td.flip_gate(w, b)
    assert all_close(w1[..., :2], -w[..., :2]) and all_close(w1[..., 2:], w[..., 2:])
    w2, b2 = td.flip_gate(w1, b1)
    assert all_close(w2, w) and all_close(b2, b)


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------

def test_attention_limits():
    rng = onp.random.default_rng(2)
    x = mp(rng.normal(size=(2, 4, 3)))
    wq, wk, wv = (mp(rng.normal(size=(3, 4))) for _ in range(3))
    v = td._affine(x, wv)
    # one valid key: every valid query copies its value; padded query rows are 0
    one = onp.array([[True, False, False, False], [True, True, True, True]])
    out = td.multihead_attention(x, one, wq, wk, wv, heads=2)
    assert all_close(out[0, 0], v[0, 0]) and all(z == 0 for z in out[0, 1:].reshape(-1))
    # W_Q = 0: every score is 0, the output is the mean of the valid values
    zero = mp(onp.zeros((3, 4)))
    mask = onp.array([[True, True, False, False], [True, True, True, True]])
    out = td.multihead_attention(x, mask, zero, wk, wv, heads=2)
    assert all_close(out[0, 1], (v[0, 0] + v[0, 1]) / 2)
    assert all_close(out[1, 3], v[1].sum(axis=0) / 4)
    # a sample without a valid key: 0 (default); the keras form penalises every key by the same
    # 1e10, which cancels: the unmasked attention of that sample
    none = onp.array([[True, True, True, True], [False, False, False, False]])
    out = td.multihead_attention(x, none, wq, wk, wv, heads=2)
    assert all(z == 0 for z in out[1].reshape(-1))
    keras = td.multihead_attention(x, none, wq, wk, wv, heads=2, compat="keras")
    full = td.multihead_attention(x, None, wq, wk, wv, heads=2)
    assert all_close(keras[1], full[1])


def test_attention_single_head_by_hand():
    # T = 2, D = 1: scores q_i k_j, weights e^{s}/Σe^{s}
    x = mp([[[1.0], [2.0]]])
    out = td.multihead_attention(x, None, mp([[1.0]]), mp([[0.5]]), mp([[3.0]]), heads=1)
    for i, q in ((0, 1), (1, 2)):
        e1, e2 = mpmath.exp(q * mpmath.mpf(0.5)), mpmath.exp(q * mpmath.mpf(1))
        assert close(out[0, i, 0], (3 * e1 + 6 * e2) / (e1 + e2))


# ---------------------------------------------------------------------------
# Recurrent cells and the GRU layout
# ---------------------------------------------------------------------------

def _torch_gru(x, wih, whh, bih, bhh):
    """PyTorch nn.GRU equations, rows [r | z | n]: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""
    B, S, _ = x.shape
    N = whh.shape[1]
    out = onp.empty((B, N), dtype=object)
    for bi in range(B):
        h = [mpmath.mpf(0)] * N
        for s in range(S):
            gi = [mpmath.fsum(wih[g, i] * x[bi, s, i] for i in range(x.shape[2])) + bih[g] for g in range(3 * N)]
            gh = [mpmath.fsum(whh[g, i] * h[i] for i in range(N)) + bhh[g] for g in range(3 * N)]
            r = [sig(gi[n] + gh[n]) for n in range(N)]
            z = [sig(gi[N + n] + gh[N + n]) for n in range(N)]
            nn = [mpmath.tanh(gi[2 * N + n] + r[n] * gh[2 * N + n]) for n in range(N)]
            h = [(1 - z[n]) * nn[n] + z[n] * h[n] for n in range(N)]
        out[bi] = h
    return out


def test_gru_matches_the_pytorch_equations_through_the_converter():
    rng = onp.random.default_rng(3)
    x = mp(rng.normal(size=(2, 5, 3)))
    w, u, b = mp(rng.normal(size=(3, 6))), mp(rng.normal(size=(2, 6))), mp(rng.normal(size=(2, 6)))
    ours = td.gru(x, w, u, b)[:, -1]
    assert all_close(ours, _torch_gru(x, *td.gru_keras_to_torch(w, u, b)))


def test_gru_and_lstm_one_step_by_hand():
    # GRU from h0 = 0: h1 = (1 − z) tanh(x W_h + b^x_h + r b^h_h)
    x = mp([[[0.5, -1.0]]])
    w = mp([[0.2, 0.1, -0.3], [0.4, 0.0, 0.6]])
    u = mp([[1.0, 2.0, 3.0]])
    b = mp([[0.1, 0.2, 0.3], [0.0, -0.5, 0.7]])
    az = mpmath.mpf(0.5) * mpmath.mpf(0.2) - mpmath.mpf(0.4) + mpmath.mpf(0.1)
    ar = mpmath.mpf(0.5) * mpmath.mpf(0.1) + mpmath.mpf(0.2) - mpmath.mpf(0.5)
    ah = mpmath.mpf(0.5) * mpmath.mpf(-0.3) - mpmath.mpf(0.6) + mpmath.mpf(0.3) + sig(ar) * mpmath.mpf(0.7)
    assert close(td.gru(x, w, u, b)[0, 0, 0], (1 - sig(az)) * mpmath.tanh(ah))
    # LSTM from h0 = c0 = 0: c = σ(i) tanh(ĉ), h = σ(o) tanh(c), columns [i | f | c | o]
    wl = mp([[0.3, 9.0, -0.2, 0.5]])
    bl = mp([0.1, 0.0, 0.4, -0.3])
    xl = mp([[[2.0]]])
    a = [mpmath.mpf(2) * mpmath.mpf(float(p)) + mpmath.mpf(float(q))
         for p, q in zip([0.3, 9.0, -0.2, 0.5], [0.1, 0.0, 0.4, -0.3])]
    c = sig(a[0]) * mpmath.tanh(a[2])
    assert close(td.lstm(xl, wl, mp(onp.zeros((1, 4))), bl)[0, 0, 0], sig(a[3]) * mpmath.tanh(c))


def test_birnn_backward_half_reads_the_reversed_sequence():
    rng = onp.random.default_rng(4)
    x = mp(rng.normal(size=(2, 4, 3)))
    for cell, g in (("gru", 3), ("lstm", 4)):
        bshape = (2, g * 2) if cell == "gru" else (g * 2,)
        f = [mp(rng.normal(size=(3, g * 2))), mp(rng.normal(size=(2, g * 2))), mp(rng.normal(size=bshape))]
        bw = [mp(rng.normal(size=(3, g * 2))), mp(rng.normal(size=(2, g * 2))), mp(rng.normal(size=bshape))]
        run = td.gru if cell == "gru" else td.lstm
        out = td.birnn(x, *f, *bw, cell=cell)
        assert all_close(out[:, :2], run(x, *f)[:, -1])
        assert all_close(out[:, 2:], run(x[:, ::-1], *bw)[:, -1])


# ---------------------------------------------------------------------------
# Gates, pooling, heads, subject features
# ---------------------------------------------------------------------------

def test_global_gate_and_maxpool_by_hand():
    # relu(h W1 + b1) with a negative pre-activation is 0: g = σ(b2) there
    h = mp([[1.0, 2.0]])
    w1, b1 = mp([[1.0, -1.0], [1.0, -1.0]]), mp([0.0, 0.0])
    w2, b2 = mp([[0.5], [7.0]]), mp([0.25])
    assert close(td.global_gate(h, w1, b1, w2, b2)[0, 0], sig(mpmath.mpf(3) * mpmath.mpf(0.5) + mpmath.mpf(0.25)))
    hh = mp([[[1.0, -5.0], [3.0, -7.0], [9.0, 9.0]], [[-1.0, 0.0], [2.0, 2.0], [4.0, 4.0]]])
    mask = onp.array([[True, True, False], [False, False, False]])
    assert all_close(td.seq_maxpool(hh, mask), [3, -5, 0, 0])


def test_heads_with_zero_features():
    # wc = 0, bc = 0: U = relu(0) = 0, so every probability is a product of sigmoids of biases
    B, T, D, P = 1, 3, 2, 2
    h, a, s = mp(onp.ones((B, T, D))), mp(onp.ones((B, T, 1))), mp(onp.ones((B, T, 1)))
    pn1, pn2 = mp([[0.5, 0.25, 1.0]]), mp([[1.0, 0.5, 0.75]])
    ps1, ps2 = td.subject_heads(h, a, mp(onp.zeros((3, 3, 4))), mp(onp.zeros(4)), mp(onp.ones((4, 1))),
                                mp([0.3]), mp(onp.ones((4, 1))), mp([-0.7]), pn1, pn2)
    assert all_close(ps1[0], [sig(0.3) * pn1[0, t] for t in range(T)])
    assert all_close(ps2[0], [sig(-0.7) * pn2[0, t] for t in range(T)])
    pc = mp([[0.5, 0.8]])
    po1, po2 = td.object_heads(h, a, s, mp(onp.zeros((3, 4, 4))), mp(onp.zeros(4)), mp(onp.ones((4, 1))),
                               mp([0.2]), mp(onp.ones((4, P))), mp([0.1, -0.1]), mp(onp.ones((4, P))),
                               mp([1.0, 2.0]), pc, pn1, pn2)
    for t in range(T):
        for c, (b1, b2) in enumerate(((0.1, 1.0), (-0.1, 2.0))):
            assert close(po1[0, t, c], sig(0.2) * sig(b1) * pc[0, c] * pn1[0, t])
            assert close(po2[0, t, c], sig(0.2) * sig(b2) * pc[0, c] * pn2[0, t])


def test_span_positions_post_examples_and_halves():
    # the post's examples: (3, 4) → 4,4,4,3,3,3 and (2, 9) → 9,8,6,5,3,2 (end to start)
    got = td.span_positions(onp.array([3, 2]), onp.array([4, 9]))
    assert got.tolist() == [[4, 4, 4, 3, 3, 3], [9, 8, 6, 5, 3, 2]]
    # n = 3 hits halves: 0.5 → 0, 1.5 → 2 (half to even, as K.round)
    got = td.span_positions(onp.array([0, 0, 1]), onp.array([1, 3, 2]), n=3)
    assert got.tolist() == [[1, 0, 0], [3, 2, 0], [2, 2, 1]]


def test_subject_features_with_a_silent_rnn_are_the_position_embeddings():
    # all GRU weights 0: z = r = ½ and h̃ = tanh(0) = 0, so h stays 0 and S_t = [E|t−k1| | E|t−k2|]
    rng = onp.random.default_rng(6)
    h = mp(rng.normal(size=(2, 5, 3)))
    zero = [mp(onp.zeros((3, 6))), mp(onp.zeros((2, 6))), mp(onp.zeros((2, 6)))]
    table = mp(rng.normal(size=(8, 2)))
    k1, k2 = onp.array([1, 0]), onp.array([3, 4])
    out = td.subject_features(h, k1, k2, *zero, *zero, table, cell="gru")
    for bi in range(2):
        for t in range(5):
            assert all_close(out[bi, t], list(table[abs(t - k1[bi])]) + list(table[abs(t - k2[bi])]))


# ---------------------------------------------------------------------------
# Losses and their gradients
# ---------------------------------------------------------------------------

def test_bce_by_hand_and_the_clip_bounds():
    p, t = mp([[0.8, 0.3, 0.99]]), mp([[1.0, 0.0, 0.0]])
    m = onp.array([[True, True, False]])
    want = -(mpmath.log(mpmath.mpf(0.8)) + mpmath.log(1 - mpmath.mpf(0.3))) / 2
    assert close(td.masked_bce(p, t, m), want)
    # p = 0 with target 1 costs −log ε (ε the float 1e-7); p = 1 with target 0 costs
    # −log(1 − fl(1 − ε)): the upper bound is 1 − ε rounded to float64, as frameworks clip
    eps = mpmath.mpf(1e-7)
    eps_hi = 1 - mpmath.mpf(1.0 - 1e-7)
    assert eps_hi != eps
    assert close(td.masked_bce(mp([[1.0, 0.0]]), mp([[0.0, 1.0]]), None),
                 -(mpmath.log(eps) + mpmath.log(eps_hi)) / 2)
    # the object term sums over P first: equal channels give P times the subject term
    m2 = onp.array([[True, True, False]])
    s = td.masked_bce(mp(onp.full((1, 3), 0.3)), mp(onp.zeros((1, 3))), m2)
    o = td.masked_bce(mp(onp.full((1, 3, 7), 0.3)), mp(onp.zeros((1, 3, 7))), m2)
    assert close(o, 7 * s)


def test_extraction_loss_is_the_sum_of_four_terms():
    rng = onp.random.default_rng(7)
    ps1, ps2 = mp(rng.uniform(0.1, 0.9, (2, 3))), mp(rng.uniform(0.1, 0.9, (2, 3)))
    po1, po2 = mp(rng.uniform(0.1, 0.9, (2, 3, 2))), mp(rng.uniform(0.1, 0.9, (2, 3, 2)))
    s1, s2 = mp((rng.random((2, 3)) < 0.5) * 1.0), mp((rng.random((2, 3)) < 0.5) * 1.0)
    o1, o2 = mp((rng.random((2, 3, 2)) < 0.5) * 1.0), mp((rng.random((2, 3, 2)) < 0.5) * 1.0)
    m = onp.array([[True, True, True], [True, False, False]])
    total = td.extraction_loss(ps1, ps2, po1, po2, s1, s2, o1, o2, m)
    parts = sum(td.masked_bce(p, t, m) for p, t in ((ps1, s1), (ps2, s2), (po1, o1), (po2, o2)))
    assert close(total, parts)


def test_bce_gradient_formula_against_high_precision_derivatives():
    rng = onp.random.default_rng(8)
    p = mp(rng.uniform(0.05, 0.95, (2, 3, 2)))
    p[0, 0, 0] = mpmath.mpf(0.0)             # clipped: no gradient
    p[1, 2, 1] = mpmath.mpf(1.0)
    t = mp((rng.random((2, 3, 2)) < 0.5) * 1.0)
    m = onp.array([[True, True, True], [True, True, False]])
    u = onp.array(-1.75)
    g = td.GRADS["dgcnn.masked_bce"](p, t, m, cotangents={"out": u})["p"]
    for idx in onp.ndindex(p.shape):
        def f(v, idx=idx):
            q = p.copy()
            q[idx] = v
            return td.masked_bce(q, t, m) * mpmath.mpf(float(u))
        if idx in ((0, 0, 0), (1, 2, 1)) or not m[idx[:2]]:
            assert g[idx] == 0
        else:
            assert close(g[idx], mpmath.diff(f, p[idx]), rel=mpmath.mpf(10) ** -40)


# ---------------------------------------------------------------------------
# Decoding and metrics
# ---------------------------------------------------------------------------

def test_decoders_on_hand_built_probabilities():
    # two starts share the end at 3 (nested subjects); a start without an end after it is dropped
    ps1, ps2 = mp([0.9, 0.1, 0.8, 0.1, 0.1, 0.7]), mp([0.1, 0.1, 0.1, 0.5, 0.1, 0.1])
    assert td.decode_subjects(ps1, ps2).tolist() == [[0, 3], [2, 3]]
    # thresholds are strict: exactly 0.5 is no start, exactly 0.4 no end
    assert td.decode_subjects(mp([0.5, 0.9]), mp([0.4, 0.41])).tolist() == [[1, 1]]
    assert td.decode_subjects(mp([0.2, 0.2]), mp([0.9, 0.9])).shape == (0, 2)
    # objects: the first end of the same class at or after the start
    po1, po2 = onp.full((7, 3), 0.05), onp.full((7, 3), 0.05)
    po1[2, 0] = po1[2, 2] = 0.9
    po2[3, 0] = po2[3, 2] = 0.8
    po1[5, 1] = 0.7
    po2[6, 1] = 0.6
    po2[4, 1] = 0.3
    po1[0, 1] = 0.6
    rows = td.decode_objects(mp(po1), mp(po2))
    assert rows.tolist() == [[0, 6, 1], [2, 3, 0], [2, 3, 2], [5, 6, 1]]


def test_set_prf_exact_counts():
    gold = onp.array([[0, 0, 1], [0, 1, 2], [3, 0, 1], [4, 2, 5]])
    pred = onp.array([[0, 0, 1], [0, 1, 2], [3, 0, 2], [0, 0, 1]])
    assert td.set_prf(pred, gold) == (Fraction(2, 3), Fraction(1, 2), Fraction(4, 7))
    empty = onp.zeros((0, 3), dtype=int)
    assert td.set_prf(empty, empty) == (1, 1, 1)
    assert td.set_prf(empty, gold) == (1, 0, 0)
    # F1 of counts is the harmonic mean of P and R
    p, r, f = td.set_prf(pred, gold)
    assert f == 2 * p * r / (p + r)


def test_f1_of_the_post():
    # P 0.8939, R 0.8679 → F1 0.880708…; 1/F = (1/P + 1/R)/2
    f = td.f1_score(mp(0.8939), mp(0.8679))
    assert abs(f - mpmath.mpf("0.8807")) < mpmath.mpf("5e-5")
    assert close(1 / f, (1 / mpmath.mpf(0.8939) + 1 / mpmath.mpf(0.8679)) / 2)


# ---------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------

def test_layouts_are_permutations_and_the_torch_conv_matches_same_for_odd_k():
    rng = onp.random.default_rng(9)
    w = mp(rng.normal(size=(3, 2, 4)))
    wt = td.conv1d_keras_to_torch(w)
    assert wt.shape == (4, 2, 3) and all(wt[o, i, j] == w[j, i, o] for o, i, j in onp.ndindex(4, 2, 3))
    d = mp(rng.normal(size=(3, 5)))
    assert all_close(td.dense_keras_to_torch(td.dense_keras_to_torch(d)), d)
    # the GRU converter only moves numbers: the multiset of entries is unchanged
    gw, gu, gb = mp(rng.normal(size=(3, 6))), mp(rng.normal(size=(2, 6))), mp(rng.normal(size=(2, 6)))
    wih, whh, bih, bhh = td.gru_keras_to_torch(gw, gu, gb)
    assert sorted(wih.reshape(-1)) == sorted(gw.reshape(-1)) and sorted(bhh) == sorted(gb[1])
    # odd k: PyTorch's (k // 2)·r padding is Keras 'same'; even k gives one more output
    x, b = mp(rng.normal(size=(2, 7, 2))), mp(rng.normal(size=4))
    for r in (1, 2, 5):
        keras = td.dilated_conv1d(x, w, b, dilation=r)
        torch = td.conv1d_torch(onp.transpose(x, (0, 2, 1)), wt, b, dilation=r)
        assert all_close(onp.transpose(torch, (0, 2, 1)), keras)
    w2 = mp(rng.normal(size=(2, 2, 4)))
    assert td.conv1d_torch(onp.transpose(x, (0, 2, 1)), td.conv1d_keras_to_torch(w2), b).shape == (2, 4, 8)


# ---------------------------------------------------------------------------
# Certification rejects wrong tables
# ---------------------------------------------------------------------------

certify = pytest.importorskip("kexue_ref.certify")


@pytest.mark.parametrize("op, name, member, idx", [
    ("dgcnn.dilated_conv1d", "T1-r1", "output.out", (1, 0, 1)),
    ("dgcnn.dilated_conv1d", "T1-r5", "grad.w", (1, 2, 0)),
    ("dgcnn.dgcnn_block", "post-T1-r2", "grad.b", (4,)),
    ("dgcnn.dgcnn_stack", "T1", "output.out", (0, 0, 1)),
    ("dgcnn.multihead_attention", "H2-padded", "output.out", (1, 2, 3)),
    ("dgcnn.gru", "S1", "grad.w", (2, 4)),
    ("dgcnn.lstm", "S1", "output.out", (1, 0, 1)),
    ("dgcnn.global_gate", "pc-B2-P3", "grad.h", (0, 2)),
    ("dgcnn.seq_maxpool", "padded", "grad.h", (1, 1, 2)),
    ("dgcnn.subject_heads", "T1", "output.ps2", (1, 0)),
    ("dgcnn.object_heads", "P1", "output.po1", (1, 3, 0)),
    ("dgcnn.masked_bce", "subject-B2-T5", "grad.p", (0, 1)),
    ("dgcnn.extraction_loss", "B2-T5-P3", "output.out", ()),
    ("dgcnn.set_prf", "hand-built", "output.f1", ()),
    ("dgcnn.f1_score", "post-numbers", "output.out", ()),
    ("dgcnn.flip_gate", "k3-D2", "output.b", (1,)),
    ("dgcnn.gru_keras_to_torch", "Din3-N2", "output.weight_hh", (3, 1)),
    ("dgcnn.conv1d_torch", "even-k2", "grad.weight", (1, 2, 0)),
])
def test_certifier_rejects_a_few_ulps(op, name, member, idx):
    assert_bump_is_rejected(op, name, member, idx)


@pytest.mark.parametrize("op, name, member", [
    ("dgcnn.decode_subjects", "nearest-end", "output.spans"),
    ("dgcnn.decode_objects", "several-p-one-o", "output.objects"),
    ("dgcnn.span_positions", "n3-halves", "output.out"),
])
def test_certifier_rejects_a_wrong_index(op, name, member):
    case = _case(op, name)
    rec = tables.case_record(case)
    assert certify.certify_record(case, rec)[member].passed
    bad = dict(rec)
    bad[member] = rec[member].copy()
    bad[member][-1, -1] += 1
    cert = certify.certify_record(case, bad)[member]
    assert cert.exact and not cert.passed


def test_certifier_rejects_the_unrounded_clip_bound():
    # the convention is the bound fl(1 − ε), as frameworks clip; a table that takes 1 − ε as
    # exact (−log ε at p = 1, t = 0) moves the clipped case's loss by ~5.8e-10/16 and is wrong
    case = _case("dgcnn.masked_bce", "clipped")
    rec = tables.case_record(case)
    assert certify.certify_record(case, rec)["output.out"].passed
    p, t = rec["input.p"], rec["input.t"]
    hi = p >= 0.5
    # log p̄ and log(1 − p̄) with the bounds ε and exactly 1 − ε, each from its exact side
    with onp.errstate(divide="ignore"):   # the branch not taken may be log 0
        lp = onp.where(hi, onp.log1p(-onp.maximum(1 - p, 1e-7)), onp.log(onp.maximum(p, 1e-7)))
        lq = onp.where(hi, onp.log(onp.maximum(1 - p, 1e-7)), onp.log1p(-onp.maximum(p, 1e-7)))
    unrounded = -(t * lp + (1 - t) * lq).mean()
    assert unrounded != rec["output.out"]
    bad = dict(rec)
    bad["output.out"] = onp.asarray(unrounded)
    assert not certify.certify_record(case, bad)["output.out"].passed


def test_certifier_rejects_a_gradient_through_the_active_clip():
    # the clip passes no gradient at p = 0 or 1: a table with −t/p̄ there is wrong
    case = _case("dgcnn.masked_bce", "clipped")
    rec = tables.case_record(case)
    assert rec["grad.p"][0, 0] == 0 and certify.certify_record(case, rec)["grad.p"].passed
    bad = dict(rec)
    bad["grad.p"] = rec["grad.p"].copy()
    bad["grad.p"][0, 0] = -float(rec["cotangent.out"]) / 1e-7 / 3
    assert not certify.certify_record(case, bad)["grad.p"].passed


def test_certifier_rejects_the_other_gate_form():
    # a stack table computed with the code's gate (G on the identity branch) is not the post's
    case = _case("dgcnn.dgcnn_stack", "T1")
    rec = tables.case_record(case)
    other = dict(case.params, gate="keras")
    wrong = case.spec.ref(*[case.inputs[n] for n in case.spec.inputs], **other)
    bad = dict(rec)
    bad["output.out"] = onp.asarray(wrong)
    assert not certify.certify_record(case, bad)["output.out"].passed
