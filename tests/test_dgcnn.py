"""kexue_ref.dgcnn: the claims of the post (https://kexue.fm/archives/6671) and of docs/dgcnn.md.

Known values come from the mathematics (hand calculations, identities, naive loops written
here independently of the library's vectorised code), never from running the code under test.
"""
import numpy as np
import pytest
from autograd import grad

from kexue_ref import dgcnn as dg
from kexue_ref.dgcnn import corpus as C
from kexue_ref.dgcnn import train as tr


# ---------------------------------------------------------------------------
# Naive references written here (loops over positions, straight from the formulas)
# ---------------------------------------------------------------------------

def naive_conv(x, w, b, r):
    """y_t = b + Σ_j x_{t + (j − ℓ) r} W_j with ℓ = ⌊(k − 1) r / 2⌋ / r taps (Keras 'same')."""
    B, T, _ = x.shape
    k = w.shape[0]
    left = (k - 1) * r // 2
    y = np.zeros((B, T, w.shape[2])) + (0 if b is None else b)
    for t in range(T):
        for j in range(k):
            s = t + j * r - left
            if 0 <= s < T:
                y[:, t] += x[:, s] @ w[j]
    return y


def sig(z):
    return 1 / (1 + np.exp(-z))


def torch_gru(x, w_ih, w_hh, b_ih, b_hh):
    """PyTorch nn.GRU equations (gate rows r, z, n), last state."""
    N = w_hh.shape[1]
    h = np.zeros((x.shape[0], N))
    for s in range(x.shape[1]):
        gi, gh = x[:, s] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = sig(gi[:, :N] + gh[:, :N])
        z = sig(gi[:, N:2 * N] + gh[:, N:2 * N])
        n = np.tanh(gi[:, 2 * N:] + r * gh[:, 2 * N:])
        h = (1 - z) * n + z * h
    return h


# ---------------------------------------------------------------------------
# Convolution and the gated block
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("k,r,T", [(3, 1, 7), (3, 2, 7), (3, 5, 4), (2, 3, 6), (1, 2, 3), (5, 2, 9)])
def test_dilated_conv_matches_naive_loop(rng, k, r, T):
    x, w, b = rng.normal(size=(2, T, 3)), rng.normal(size=(k, 3, 4)), rng.normal(size=4)
    np.testing.assert_allclose(dg.dilated_conv1d(x, w, b, dilation=r), naive_conv(x, w, b, r), rtol=1e-12, atol=1e-12)


def test_conv_row0_reads_the_left_tap():
    # x = e_0 at t = 3; with W_0 = 1 only, y_t = x_{t−r}: the impulse moves right by r.
    x = np.zeros((1, 9, 1))
    x[0, 3, 0] = 1.0
    w = np.zeros((3, 1, 1))
    w[0] = 1.0
    y = dg.dilated_conv1d(x, w, dilation=2)[0, :, 0]
    assert y.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_block_forms_agree_for_any_input(rng):
    x, mask = rng.normal(size=(3, 8, 4)) * 3, np.arange(8) < np.array([8, 5, 1])[:, None]
    w, b = rng.normal(size=(3, 4, 8)), rng.normal(size=8)
    keep = rng.random((3, 8, 4)) > 0.1
    for r in (1, 2, 5):
        for gk in (None, keep):
            post = dg.dgcnn_block(x, mask, w, b, gk, dilation=r)
            keras = dg.dgcnn_block(x, mask, *dg.flip_gate(w, b), gk, dilation=r, gate="keras")
            np.testing.assert_allclose(post, keras, rtol=1e-13, atol=1e-14)
    # and flip_gate is an involution
    w2, b2 = dg.flip_gate(*dg.flip_gate(w, b))
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(b2, b)


def test_block_post_form_and_residual_form(rng):
    # Y = X ⊙ (1 − σ) + Conv₁(X) ⊙ σ = X + Conv₁'(X) ⊙ σ with Conv₁' = Conv₁ minus I at the centre tap
    x = rng.normal(size=(2, 6, 3))
    w1, b1, w2, b2 = rng.normal(size=(3, 3, 3)), rng.normal(size=3), rng.normal(size=(3, 3, 3)), rng.normal(size=3)
    w, b = dg.fuse_gate_kernels(w2, b2, w1, b1)
    y = dg.dgcnn_block(x, None, w, b, dilation=2)
    s = sig(naive_conv(x, w2, b2, 2))
    np.testing.assert_allclose(y, x * (1 - s) + naive_conv(x, w1, b1, 2) * s, rtol=1e-12)
    w1_res = w1.copy()
    w1_res[1] -= np.eye(3)
    np.testing.assert_allclose(y, x + naive_conv(x, w1_res, b1, 2) * s, rtol=1e-12, atol=1e-12)
    # split undoes fuse
    for a, e in zip(dg.split_gate_kernel(w, b), (w2, b2, w1, b1)):
        np.testing.assert_array_equal(a, e)


def test_gate_dropout_is_inverted_dropout_on_logits(rng):
    x = rng.normal(size=(1, 5, 2))
    w, b = rng.normal(size=(3, 2, 4)), rng.normal(size=4)
    keep = np.ones((1, 5, 2), bool)
    keep[0, 2, 1] = False
    y = dg.dgcnn_block(x, None, w, b, keep, gate="keras", rate=0.1)
    h = naive_conv(x, w, b, 1)
    g = np.where(keep, h[..., :2] / 0.9, 0.0)
    G = sig(g)
    np.testing.assert_allclose(y, G * x + (1 - G) * h[..., 2:], rtol=1e-12)
    # the dropped logit gives the gate 0.5: the average of the two branches
    assert y[0, 2, 1] == pytest.approx(0.5 * (x[0, 2, 1] + h[0, 2, 3]), rel=1e-12)


def test_even_kernel_same_padding_depends_on_the_dilation():
    # TensorFlow 'same': (k − 1)·r zeros, ⌊(k − 1)·r/2⌋ on the left. k = 2, r = 3: one zero on
    # the left, two on the right, so the taps are x_{t−1} and x_{t+2}
    x = np.arange(1.0, 8.0).reshape(1, 7, 1)                      # 1 … 7
    w = np.array([1.0, 10.0]).reshape(2, 1, 1)                     # x_{t−1} + 10·x_{t+2}
    y = dg.dilated_conv1d(x, w, dilation=3)[0, :, 0]
    want = [0 + 10 * 3, 1 + 10 * 4, 2 + 10 * 5, 3 + 10 * 6, 4 + 10 * 7, 5 + 0, 6 + 0]
    assert y.tolist() == [float(v) for v in want]


def test_saturated_gates_keep_the_small_branch():
    # gate logit 40: 1 − σ(40) = σ(−40) ≈ 4.25e-18, which 1 − σ(40) (= 0 in float64) would drop
    tiny = 1.0 / (1.0 + np.exp(40.0))
    x = np.array([[[3.0]]])
    w = np.zeros((3, 1, 2))
    y = dg.dgcnn_block(x, None, w, np.array([40.0, 0.0]))            # post: X σ(−g) + 0·σ(g)
    assert float(y[0, 0, 0]) == pytest.approx(3.0 * tiny, rel=1e-14, abs=0)
    y = dg.dgcnn_block(x, None, w, np.array([-40.0, 0.0]), gate="keras")   # keras: G X + (1 − G)·0
    assert float(y[0, 0, 0]) == pytest.approx(3.0 * tiny, rel=1e-14, abs=0)
    # GRU, one step from h0 = 0: h1 = (1 − z) h̃ with z = σ(40)
    b = np.zeros((2, 3))
    b[0] = [40.0, 0.0, 0.5]                                          # z logit 40, h̃ = tanh(0.5)
    h1 = dg.gru(np.zeros((1, 1, 1)), np.zeros((1, 3)), np.zeros((1, 3)), b)
    assert float(h1[0, 0, 0]) == pytest.approx(tiny * np.tanh(0.5), rel=1e-14, abs=0)
    # and the derivative of a saturated head is σ(z)σ(−z), not σ(z)(1 − σ(z)) = 0
    z = 40.0
    dps = grad(lambda bb: dg.subject_heads(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), np.zeros((3, 2, 1)),
                                           np.zeros(1), np.zeros((1, 1)), bb, np.zeros((1, 1)), np.zeros(1),
                                           np.ones((1, 1)), np.ones((1, 1)))[0][0, 0])(np.array([z]))
    assert float(dps[0]) == pytest.approx(tiny / (1.0 + tiny), rel=1e-14, abs=0)


def test_block_masks_its_output(rng):
    x = rng.normal(size=(2, 5, 2))
    mask = np.arange(5) < np.array([5, 2])[:, None]
    y = dg.dgcnn_block(x, mask, rng.normal(size=(3, 2, 4)), rng.normal(size=4))
    assert np.all(y[1, 2:] == 0) and np.all(y[0] != 0)


@pytest.mark.parametrize("dilations", [dg.STACK_6, dg.STACK_12])
def test_masked_stack_is_invariant_to_right_padding(rng, dilations):
    L, D, n = len(dilations), 3, 7
    w, b = rng.normal(size=(L, 3, D, 2 * D)) * 0.5, rng.normal(size=(L, 2 * D)) * 0.1
    x = rng.normal(size=(1, n, D))
    alone = dg.dgcnn_stack(x, np.ones((1, n), bool), w, b, dilations=dilations)
    for pad in (1, 5, 40):
        garbage = rng.normal(size=(1, pad, D)) * 10          # padded inputs need not be zero
        xp = np.concatenate([x, garbage], axis=1)
        mask = np.arange(n + pad)[None] < n
        y = dg.dgcnn_stack(xp, mask, w, b, dilations=dilations, gate="keras")
        y_post = dg.dgcnn_stack(xp, mask, w, b, dilations=dilations)
        np.testing.assert_allclose(y_post[:, :n], alone, rtol=1e-12, atol=1e-13)
        assert np.all(y[:, n:] == 0) and np.all(y_post[:, n:] == 0)


@pytest.mark.parametrize("dilations,half", [(dg.STACK_12, 27), (dg.STACK_6, 16)])
def test_receptive_field_by_perturbation(rng, dilations, half):
    L, D, T, t0 = len(dilations), 2, 90, 45
    # moderate weights: a saturated sigmoid (|logit| > 37) would have an exactly zero slope
    w, b = rng.normal(size=(L, 3, D, 2 * D)) * 0.4, rng.normal(size=(L, 2 * D)) * 0.1
    x = rng.normal(size=(1, T, D))
    x2 = x.copy()
    x2[0, t0] += 1.0
    changed = np.any(dg.dgcnn_stack(x2, None, w, b, dilations=dilations)
                     != dg.dgcnn_stack(x, None, w, b, dilations=dilations), axis=-1)[0]
    assert np.flatnonzero(changed).tolist() == list(range(t0 - half, t0 + half + 1))
    assert dg.receptive_field(dilations) == 2 * half + 1


def test_receptive_field_values():
    assert (dg.receptive_field(dg.STACK_12), dg.receptive_field(dg.STACK_6)) == (55, 33)
    assert dg.receptive_field([1, 2], kernel_size=5) == 13


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------

def naive_attention(x, valid, wq, wk, wv, H):
    """One query at a time, over the valid keys only."""
    B, T, _ = x.shape
    Dh = wq.shape[1] // H
    out = np.zeros((B, T, H * Dh))
    for bb in range(B):
        keys = np.flatnonzero(valid[bb])
        for h in range(H):
            cols = slice(h * Dh, (h + 1) * Dh)
            q, k, v = x[bb] @ wq[:, cols], x[bb] @ wk[:, cols], x[bb] @ wv[:, cols]
            for i in range(T):
                if not valid[bb, i] or keys.size == 0:
                    continue
                s = k[keys] @ q[i] / np.sqrt(Dh)
                a = np.exp(s - s.max())
                out[bb, i, cols] = (a / a.sum()) @ v[keys]
    return out


def _att_weights(rng, Din=4, H=2, Dh=3):
    return [rng.normal(size=(Din, H * Dh)) for _ in range(3)]


def test_attention_matches_naive_loop_and_zeroes_padding(rng):
    x = rng.normal(size=(3, 6, 4))
    valid = np.arange(6) < np.array([6, 3, 0])[:, None]
    ws = _att_weights(rng)
    out = dg.multihead_attention(x, valid, *ws, heads=2)
    np.testing.assert_allclose(out, naive_attention(x, valid, *ws, 2), rtol=1e-12, atol=1e-14)
    assert np.all(out[2] == 0)                      # fully masked sample: 0 (D4)


def test_attention_keras_compat_leaks_into_padded_rows(rng):
    x = rng.normal(size=(1, 6, 4))
    x[0, 4:] = 0.0                                 # the encoder output is 0 at padding
    valid = np.arange(6)[None] < 4
    ws = _att_weights(rng)
    ours = dg.multihead_attention(x, valid, *ws, heads=2)
    keras = dg.multihead_attention(x, valid, *ws, heads=2, compat="keras")
    np.testing.assert_allclose(keras[:, :4], ours[:, :4], rtol=1e-12)     # valid queries agree
    assert np.all(ours[:, 4:] == 0)
    # a zero query scores every key 0: the padded rows are the plain mean of the valid values
    v = x[0, :4] @ ws[2]
    np.testing.assert_allclose(keras[0, 4], v.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(keras[0, 5], v.mean(axis=0), rtol=1e-12)


def test_attention_keras_compat_without_a_valid_key_is_the_plain_softmax(rng):
    # Every key penalised by the same 1e10 cancels in the softmax: the row is the unmasked
    # attention of the sample, exactly (S − 1e10 in float64 would keep S only to 2e-6).
    x = rng.normal(size=(2, 5, 4))
    ws = _att_weights(rng)
    valid = np.arange(5) < np.array([5, 0])[:, None]
    keras = dg.multihead_attention(x, valid, *ws, heads=2, compat="keras")
    plain = naive_attention(x, np.ones((2, 5), bool), *ws, 2)
    np.testing.assert_allclose(keras, plain, rtol=1e-14, atol=1e-15)

    def f(xx):
        return np.sum(dg.multihead_attention(xx, valid, *ws, heads=2, compat="keras")[1] ** 2)

    def f_plain(xx):
        return np.sum(dg.multihead_attention(xx, None, *ws, heads=2)[1] ** 2)

    np.testing.assert_allclose(grad(f)(x), grad(f_plain)(x), rtol=1e-13, atol=1e-15)


def test_padding_leak_changes_the_next_conv_at_the_last_valid_character(rng):
    # The subject heads read [H | A] with a kernel-3 conv: at the last valid character they see
    # the first padded row. Zeroed (default) → same as the unpadded sentence; keras → differs.
    n, D, Dh = 4, 4, 2
    h = rng.normal(size=(1, n, D))
    ws = _att_weights(rng, D, 2, Dh)
    head = [rng.normal(size=(3, D + 2 * Dh, 3)), rng.normal(size=3), rng.normal(size=(3, 1)), np.zeros(1),
            rng.normal(size=(3, 1)), np.zeros(1)]

    def ps1(hh, valid, compat):
        a = dg.multihead_attention(hh, valid, *ws, heads=2, compat=compat)
        ones = np.full(valid.shape, 0.9)
        return dg.subject_heads(hh, a, *head, ones, ones)[0][0, :n]

    alone = {c: ps1(h, np.ones((1, n), bool), c) for c in (None, "keras")}
    hp = np.concatenate([h, np.zeros((1, 3, D))], axis=1)
    valid = np.arange(n + 3)[None] < n
    padded = {c: ps1(hp, valid, c) for c in (None, "keras")}
    np.testing.assert_allclose(padded[None], alone[None], rtol=1e-12)
    np.testing.assert_allclose(alone["keras"], alone[None], rtol=1e-12)
    np.testing.assert_allclose(padded["keras"][:n - 1], alone[None][:n - 1], rtol=1e-12)
    assert abs(padded["keras"][n - 1] - alone[None][n - 1]) > 1e-6


# ---------------------------------------------------------------------------
# Recurrent cells and layouts
# ---------------------------------------------------------------------------

def test_gru_matches_pytorch_equations_through_the_converter(rng):
    x = rng.normal(size=(2, 6, 3))
    w, u, b = rng.normal(size=(3, 6)), rng.normal(size=(2, 6)), rng.normal(size=(2, 6))
    ours = dg.gru(x, w, u, b)[:, -1]
    np.testing.assert_allclose(ours, torch_gru(x, *dg.gru_keras_to_torch(w, u, b)), rtol=1e-12)


def test_lstm_one_step_by_hand(rng):
    # one step from h0 = c0 = 0: c = σ(i) tanh(ĉ), h = σ(o) tanh(c)
    x = rng.normal(size=(2, 1, 3))
    w, u, b = rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), rng.normal(size=8)
    a = x[:, 0] @ w + b
    c = sig(a[:, :2]) * np.tanh(a[:, 4:6])
    np.testing.assert_allclose(dg.lstm(x, w, u, b)[:, 0], sig(a[:, 6:]) * np.tanh(c), rtol=1e-12)


def test_birnn_backward_direction_reads_reversed_input(rng):
    x = rng.normal(size=(2, 6, 3))
    f = [rng.normal(size=(3, 6)), rng.normal(size=(2, 6)), rng.normal(size=(2, 6))]
    bw = [rng.normal(size=(3, 6)), rng.normal(size=(2, 6)), rng.normal(size=(2, 6))]
    out = dg.birnn(x, *f, *bw)
    np.testing.assert_allclose(out[:, :2], dg.gru(x, *f)[:, -1], rtol=1e-13)
    np.testing.assert_allclose(out[:, 2:], dg.gru(x[:, ::-1], *bw)[:, -1], rtol=1e-13)


def test_layout_converters_round_trip_and_compute_the_same_conv(rng):
    x, w, b = rng.normal(size=(2, 7, 3)), rng.normal(size=(3, 3, 4)), rng.normal(size=4)
    wt = dg.conv1d_keras_to_torch(w)
    assert wt.shape == (4, 3, 3)
    np.testing.assert_array_equal(dg.conv1d_torch_to_keras(wt), w)
    for r in (1, 2, 5):
        torch_out = dg.conv1d_torch(np.transpose(x, (0, 2, 1)), wt, b, dilation=r)
        np.testing.assert_allclose(np.transpose(torch_out, (0, 2, 1)), dg.dilated_conv1d(x, w, b, dilation=r),
                                   rtol=1e-12, atol=1e-13)
    # even kernels: a port's (k // 2)·r padding gives one more output than Keras 'same'
    w2 = rng.normal(size=(2, 3, 4))
    assert dg.conv1d_torch(np.transpose(x, (0, 2, 1)), dg.conv1d_keras_to_torch(w2)).shape[-1] == 8
    wd = rng.normal(size=(3, 5))
    np.testing.assert_allclose(x @ wd, x @ dg.dense_keras_to_torch(wd).T)
    np.testing.assert_array_equal(dg.dense_torch_to_keras(dg.dense_keras_to_torch(wd)), wd)


# ---------------------------------------------------------------------------
# Span positions, subject features, heads
# ---------------------------------------------------------------------------

def test_span_positions_known_values():
    assert dg.span_positions(3, 4).tolist() == [4, 4, 4, 3, 3, 3]
    assert dg.span_positions(2, 9).tolist() == [9, 8, 6, 5, 3, 2]
    assert dg.span_positions(np.array([3, 2]), np.array([4, 9])).tolist() == [[4, 4, 4, 3, 3, 3], [9, 8, 6, 5, 3, 2]]
    # n = 3 hits halves: 0.5 → 0 and 1.5 → 2 (half to even, as TF's K.round)
    assert dg.span_positions(0, 1, n=3).tolist() == [1, 0, 0]
    assert dg.span_positions(1, 2, n=3).tolist() == [2, 2, 1]


def test_span_positions_agree_with_float_rounding_rules_for_six_points():
    # k1·a + k2·(1 − a) with a = i/5 is a multiple of 1/5, never a half: TF's float K.round
    # (half to even), NumPy's round and floor(x + 0.5) (half up) all give the exact result
    k1, k2 = np.meshgrid(np.arange(70), np.arange(70))
    ok = k2 >= k1
    k1, k2 = k1[ok], k2[ok]
    a = np.arange(6) / 5.0
    x = k1[:, None] * a + k2[:, None] * (1 - a)
    ours = dg.span_positions(k1, k2)
    assert np.array_equal(ours, np.round(x)) and np.array_equal(ours, np.floor(x + 0.5))


def test_relative_distances():
    d = dg.relative_distances(5, np.array([1]), np.array([3]))
    assert d[0, :, 0].tolist() == [1, 0, 1, 2, 3] and d[0, :, 1].tolist() == [3, 2, 1, 0, 1]


def test_subject_features_wiring(rng):
    B, T, D, N = 2, 8, 3, 2
    h = rng.normal(size=(B, T, D))
    fw = [rng.normal(size=(D, 3 * N)), rng.normal(size=(N, 3 * N)), rng.normal(size=(2, 3 * N))]
    bw = [rng.normal(size=(D, 3 * N)), rng.normal(size=(N, 3 * N)), rng.normal(size=(2, 3 * N))]
    pos = rng.normal(size=(12, N))
    k1, k2 = np.array([2, 0]), np.array([4, 7])
    s = dg.subject_features(h, k1, k2, *fw, *bw, pos)
    for bb in range(B):
        rows = h[bb, dg.span_positions(k1[bb], k2[bb])][None]
        v = dg.birnn(rows, *fw, *bw)[0]
        for t in range(T):
            want = v + np.concatenate([pos[abs(t - k1[bb])], pos[abs(t - k2[bb])]])
            np.testing.assert_allclose(s[bb, t], want, rtol=1e-12)


def test_object_heads_gating(rng):
    B, T, D, P, M = 1, 5, 2, 3, 4
    args = [rng.normal(size=(B, T, D)), rng.normal(size=(B, T, 2)), rng.normal(size=(B, T, 2)),
            rng.normal(size=(3, D + 4, M)), rng.normal(size=M), rng.normal(size=(M, 1)), rng.normal(size=1),
            rng.normal(size=(M, P)), rng.normal(size=P), rng.normal(size=(M, P)), rng.normal(size=P)]
    pc = np.array([[0.0, 0.5, 1.0]])
    pn1, pn2 = rng.uniform(size=(B, T)), rng.uniform(size=(B, T))
    po1, po2 = dg.object_heads(*args, pc, pn1, pn2)
    assert np.all(po1[..., 0] == 0) and np.all(po2[..., 0] == 0)          # relation absent: pc = 0
    assert np.all(po1 <= pn1[..., None]) and np.all(po1[..., 1] <= 0.5)
    # po1 / po2 = [sigmoid(U W1 + b1) pn1] / [sigmoid(U W2 + b2) pn2]: the common po·pc cancels
    po1b, _ = dg.object_heads(*args, np.ones((1, P)), pn1, pn2)
    np.testing.assert_allclose(po1[..., 2], po1b[..., 2], rtol=1e-12)


# ---------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------

def test_bce_by_hand_and_clip():
    p = np.array([[0.8, 0.3, 0.99]])
    t = np.array([[1.0, 0.0, 0.0]])
    m = np.array([[True, True, False]])
    want = -(np.log(0.8) + np.log(0.7)) / 2
    assert float(dg.masked_bce(p, t, m)) == pytest.approx(want, rel=1e-13)
    # p = 0 with target 1: log of the clipped 1e-7
    assert float(dg.masked_bce(np.zeros((1, 1)), np.ones((1, 1)))) == pytest.approx(-np.log(1e-7), rel=1e-12)


def test_bce_clip_is_exact_at_both_ends():
    # the bounds are ε and fl(1 − ε) (1 − ε rounded, as every framework's clip has it):
    # p = 0 with target 1 costs −log ε; p = 1 with target 0 costs −log(1 − fl(1 − ε)), and
    # 1 − fl(1 − ε) is an exact float, ε·(1 + 5.8e-10) — the loss keeps that difference
    eps = 1e-7
    eps_hi = 1.0 - (1.0 - eps)
    assert eps_hi != eps
    for p, t, want in ((1.0, 0.0, -np.log(eps_hi)), (0.0, 1.0, -np.log(eps))):
        got = float(dg.masked_bce(np.array([[p]]), np.array([[t]])))
        assert abs(got - want) <= 2 * np.spacing(want)
    # p = 1 with target 1: −log fl(1 − ε) = ε' + ε'²/2 + ε'³/3 + …, to full relative precision
    got = float(dg.masked_bce(np.ones((1, 1)), np.ones((1, 1))))
    assert got == pytest.approx(eps_hi + eps_hi ** 2 / 2 + eps_hi ** 3 / 3, rel=1e-15, abs=0)
    # the clip is flat where it is active, and the gradient inside is −t/p + (1 − t)/(1 − p)
    g = grad(lambda q: dg.masked_bce(q, np.array([[1.0, 0.0, 1.0, 0.0]])))(np.array([[0.0, 1.0, 0.2, 0.9]]))
    np.testing.assert_allclose(g, [[0.0, 0.0, -1 / 0.2 / 4, 1 / (1 - 0.9) / 4]], rtol=1e-14)


def test_object_term_is_P_times_subject_term_with_equal_channels():
    B, T, P = 2, 6, 50
    m = np.arange(T) < np.array([6, 2])[:, None]
    s = dg.masked_bce(np.full((B, T), 0.3), np.zeros((B, T)), m)
    o = dg.masked_bce(np.full((B, T, P), 0.3), np.zeros((B, T, P)), m)
    assert float(o / s) == pytest.approx(50.0, rel=1e-13)
    total = dg.extraction_loss(np.full((B, T), 0.3), np.full((B, T), 0.3), np.full((B, T, P), 0.3),
                               np.full((B, T, P), 0.3), np.zeros((B, T)), np.zeros((B, T)),
                               np.zeros((B, T, P)), np.zeros((B, T, P)), m)
    assert float(total) == pytest.approx(2 * 51 * -np.log(0.7), rel=1e-13)


def test_loss_ignores_padding_and_averages_over_the_batch(rng):
    p = rng.uniform(0.1, 0.9, size=(2, 5))
    t = (rng.random((2, 5)) < 0.5) * 1.0
    m = np.arange(5) < np.array([5, 2])[:, None]
    p2 = p.copy()
    p2[1, 2:] = 0.5
    assert float(dg.masked_bce(p, t, m)) == float(dg.masked_bce(p2, t, m))
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert float(dg.masked_bce(p, t, m)) == pytest.approx(per[m].sum() / 7, rel=1e-13)   # 7 valid tokens


# ---------------------------------------------------------------------------
# Decoding and metric: the five properties on hand-built probabilities
# ---------------------------------------------------------------------------

TEXT = "XY fans sang AB and wrote CD"
#       0123456789012345678901234567


def _hand_probs():
    T, P = len(TEXT), 3                             # classes: 0 sang, 1 wrote, 2 fan club of
    ps1, ps2 = np.full(T, 0.05), np.full(T, 0.05)
    ps1[0] = 0.9                                    # subject "XY fans": 0..6
    ps2[6] = 0.8
    objs = {}
    po1, po2 = np.full((T, P), 0.05), np.full((T, P), 0.05)
    po1[13, 0], po2[14, 0] = 0.9, 0.7               # (sang, AB)
    po1[26, 1], po2[27, 1] = 0.8, 0.6               # (wrote, CD)
    po1[0, 2], po2[1, 2] = 0.7, 0.9                 # (fan club of, XY): o inside s
    objs[(0, 6)] = (po1, po2)
    return ps1, ps2, objs


def test_decoder_nearest_end_and_thresholds():
    ps1 = np.array([0.9, 0.1, 0.51, 0.1, 0.1, 0.5])
    ps2 = np.array([0.1, 0.41, 0.1, 0.1, 0.45, 0.9])
    # start 5 (0.5) is not > 0.5; start 2 takes the nearest end 4, not 5
    assert dg.decode_subjects(ps1, ps2).tolist() == [[0, 1], [2, 4]]
    assert dg.decode_subjects(ps1, ps2, start=0.4, end=0.42).tolist() == [[0, 4], [2, 4], [5, 5]]


def test_decoder_one_subject_many_objects_and_overlap():
    ps1, ps2, objs = _hand_probs()
    subjects = dg.decode_subjects(ps1, ps2)
    assert subjects.tolist() == [[0, 6]]
    rows = dg.decode_objects(*objs[(0, 6)])
    assert rows.tolist() == [[0, 1, 2], [13, 14, 0], [26, 27, 1]]
    triples = set(dg.spans_to_triples(TEXT, (0, 6), rows, ["sang", "wrote", "fan club of"]))
    assert triples == {("XY fans", "fan club of", "XY"), ("XY fans", "sang", "AB"), ("XY fans", "wrote", "CD")}


def test_decoder_several_predicates_for_one_pair_and_shared_pair():
    T, P = 10, 4
    po1, po2 = np.full((T, P), 0.1), np.full((T, P), 0.1)
    po1[5, [1, 3]] = 0.95                           # one object start, two classes
    po2[7, [1, 3]] = 0.95
    po2[6, 3] = 0.3                                 # below 0.4: not an end
    rows = dg.decode_objects(po1, po2)
    assert rows.tolist() == [[5, 7, 1], [5, 7, 3]]
    # two subjects whose object maps are the same give the same (p, o) for both
    text = "AA and BB sang CC"
    shared = set()
    for s in [(0, 1), (7, 8)]:
        shared |= set(dg.spans_to_triples(text, s, np.array([[15, 16, 0]]), ["sang"]))
    assert shared == {("AA", "sang", "CC"), ("BB", "sang", "CC")}


def test_decoder_spans_ignore_word_boundaries():
    # property 1: spans are characters; a subject may start or end inside a "word"
    text = "theQXZband"
    ps1, ps2 = np.zeros(10), np.zeros(10)
    ps1[3], ps2[5] = 0.9, 0.9
    (k1, k2), = dg.decode_subjects(ps1, ps2)
    assert text[k1:k2 + 1] == "QXZ"


def test_object_decoder_first_end_of_same_class_only():
    po1 = np.array([[0.9, 0.1], [0.1, 0.1], [0.1, 0.1]])
    po2 = np.array([[0.1, 0.1], [0.1, 0.9], [0.5, 0.1]])
    # class 0 starts at 0; the end at 1 is of class 1; the first class-0 end is 2
    assert dg.decode_objects(po1, po2).tolist() == [[0, 2, 0]]


def test_f1_arithmetic_of_the_post():
    f = float(dg.f1_score(0.8939, 0.8679))
    assert f == pytest.approx(2 * 0.8939 * 0.8679 / (0.8939 + 0.8679), rel=1e-15)
    assert round(f, 6) == 0.880708 and round(f, 4) == 0.8807


def test_set_prf_counts():
    gold = {("a", "p", "b"), ("a", "q", "c"), ("d", "p", "b"), ("e", "r", "f")}
    pred = [("a", "p", "b"), ("a", "q", "c"), ("a", "q", "c"), ("x", "p", "y")]   # duplicate counts once
    p, r, f = (float(v) for v in dg.set_prf(pred, gold))
    assert (p, r, f) == (2 / 3, 2 / 4, 4 / 7)
    assert tuple(float(v) for v in dg.set_prf(set(), set())) == (1.0, 1.0, 1.0)
    assert tuple(float(v) for v in dg.set_prf(set(), gold)) == (1.0, 0.0, 0.0)


def test_corpus_prf_sums_counts_not_scores():
    preds = [{1, 2}, set()]
    golds = [{1, 2}, {3, 4, 5, 6}]
    p, r, f = (float(v) for v in dg.corpus_prf(preds, golds))
    assert (p, r, f) == (1.0, 2 / 6, 4 / 8)          # the mean of per-sentence F1 would be 0.5 too, so:
    preds, golds = [{1}, {2, 3, 4}], [{1}, {5}]
    assert float(dg.corpus_prf(preds, golds)[2]) == pytest.approx(2 * 1 / (4 + 2))   # not (1 + 0) / 2


def test_threshold_and_shape_errors():
    with pytest.raises(ValueError, match=r"start must lie in \(0.0, 1.0\)"):
        dg.decode_subjects(np.full(3, 0.5), np.full(3, 0.5), start=1.0)
    with pytest.raises(ValueError, match=r"end must lie in \(0.0, 1.0\)"):
        dg.decode_objects(np.full((3, 2), 0.5), np.full((3, 2), 0.5), end=-0.1)


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------

def test_corpus_is_deterministic_and_consistent():
    a = C.synthetic_corpus(200, np.random.default_rng(5))
    b = C.synthetic_corpus(200, np.random.default_rng(5))
    assert a == b
    for s in a:
        assert "".join(s.words) == s.text
        for (k1, k2), c, (i, j) in s.spans:
            subj, obj = s.text[k1:k2 + 1], s.text[i:j + 1]
            assert obj.isupper() and obj.isalpha()
            assert subj.isalpha() and subj.isupper() or subj.endswith(" fans")


def test_corpus_plants_the_five_properties():
    corpus = C.synthetic_corpus(300, np.random.default_rng(1))
    seen = set()
    for s in corpus:
        trip = s.triples
        by_s, by_po, by_so = {}, {}, {}
        for subj, p, obj in trip:
            by_s.setdefault(subj, set()).add((p, obj))
            by_po.setdefault((p, obj), set()).add(subj)
            by_so.setdefault((subj, obj), set()).add(p)
        if any(len(v) > 1 for v in by_s.values()):
            seen.add(2)
        if any(len(v) > 1 for v in by_po.values()):
            seen.add(3)
        if any(len(v) > 1 for v in by_so.values()):
            seen.add(4)
        for (k1, k2), _, (i, j) in s.spans:
            if max(k1, i) <= min(k2, j):
                seen.add(5)
        bounds = np.cumsum([0] + [len(w) for w in s.words]).tolist()
        for (k1, k2), _, (i, j) in s.spans:
            for a, e in ((k1, k2), (i, j)):
                if a not in bounds or e + 1 not in bounds or any(a < q <= e for q in bounds):
                    seen.add(1)
        assert s.properties <= {1, 2, 3, 4, 5}
    assert seen == {1, 2, 3, 4, 5}


# ---------------------------------------------------------------------------
# Pipeline and training
# ---------------------------------------------------------------------------

def _tiny(cell="gru", **kw):
    return dg.DGCNNConfig(n_chars=C.N_CHARS, word_dim=4, n_predicates=len(C.PREDICATES), dim=8,
                          dilations=dg.STACK_6, heads=2, head_size=4, maxlen=96, cell=cell, **kw)


@pytest.fixture(scope="module")
def tiny_batch():
    rng = np.random.default_rng(71)
    sents = C.synthetic_corpus(8, rng)
    table = C.word_vector_table(rng, n_buckets=32, dim=4)
    tokens, word_vecs = C.make_batch(sents, table)
    spans = [tr.sample_subject_span(rng, s.subjects) for s in sents]
    return sents, tokens, word_vecs, tr.make_targets(sents, tokens.shape[1], len(C.PREDICATES), spans)


def test_pipeline_is_invariant_to_batch_padding_by_default(tiny_batch):
    sents, tokens, word_vecs, targets = tiny_batch
    cfg = _tiny()
    params = dg.init_params(cfg, np.random.default_rng(0))
    params["pos_emb"] = np.random.default_rng(1).normal(size=params["pos_emb"].shape) * 0.1
    out = dg.forward(params, tokens, word_vecs, targets["k1"], targets["k2"], cfg)
    for b in (0, 3):
        n = len(sents[b].text)
        one = dg.forward(params, tokens[b:b + 1, :n], word_vecs[b:b + 1, :n], targets["k1"][b:b + 1],
                         targets["k2"][b:b + 1], cfg)
        for a, e in zip(out[:4], one[:4]):
            np.testing.assert_allclose(a[b, :n], e[0], rtol=1e-10, atol=1e-12)


def test_pipeline_keras_compat_depends_on_padding(tiny_batch):
    # the code's leaks (unzeroed attention rows, unmasked subject features) reach the last
    # valid character through the kernel-3 convs of the heads
    sents, tokens, word_vecs, targets = tiny_batch
    cfg = _tiny(compat="keras")
    params = dg.init_params(cfg, np.random.default_rng(0))
    params["pos_emb"] = np.random.default_rng(1).normal(size=params["pos_emb"].shape) * 0.1
    b = int(np.argmin([len(s.text) for s in sents]))
    n = len(sents[b].text)
    assert n < tokens.shape[1]
    out = dg.forward(params, tokens, word_vecs, targets["k1"], targets["k2"], cfg)
    one = dg.forward(params, tokens[b:b + 1, :n], word_vecs[b:b + 1, :n], targets["k1"][b:b + 1],
                     targets["k2"][b:b + 1], cfg)
    for a, e in zip(out[:4], one[:4]):
        np.testing.assert_allclose(a[b, :n - 1], e[0, :n - 1], rtol=1e-10, atol=1e-12)
        assert np.max(np.abs(a[b, n - 1] - e[0, n - 1])) > 1e-8


def test_pipeline_gate_forms_agree(tiny_batch):
    _, tokens, word_vecs, targets = tiny_batch
    params = dg.init_params(_tiny(), np.random.default_rng(2))
    flipped = dict(params)
    flipped["enc_w"], flipped["enc_b"] = dg.flip_gate(params["enc_w"], params["enc_b"])
    a = dg.forward(params, tokens, word_vecs, targets["k1"], targets["k2"], _tiny())
    b = dg.forward(flipped, tokens, word_vecs, targets["k1"], targets["k2"], _tiny(gate="keras"))
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


def _gradient_mismatches(params, tokens, word_vecs, targets, cfg, keys=None, h=1e-6, rtol=1e-4, atol=1e-8):
    r"""Parameters whose autograd gradient disagrees with central differences of the loss.

    For each parameter θ_k (or those in ``keys``) and a seeded random unit direction d_k, the
    directional derivative from the gradient, :math:`\langle \nabla_{\theta_k} L, d_k \rangle`,
    is compared with :math:`(L(\theta_k + h d_k) - L(\theta_k - h d_k)) / 2h`; a mismatch is
    :math:`|\cdot - \cdot| > rtol\,\lVert \nabla_{\theta_k} L \rVert + atol`. The truncation
    error is O(h²) and the rounding error ~ ε·L/h ≈ 4e-10; h = 1e-6 also keeps the segment
    clear of the ReLU and max-pool kinks at this seed (h = 1e-4 crosses some).

    Returns
    -------
    list of (key, from the gradient, from differences).
    """
    def loss(p):
        return float(tr.batch_loss(p, tokens, word_vecs, targets, cfg))
    g = grad(tr.batch_loss)(params, tokens, word_vecs, targets, cfg)
    rng = np.random.default_rng(11)
    bad = []
    for key in params:
        # one direction per parameter, drawn for every key so a subset sees the same directions
        d = rng.standard_normal(params[key].shape)
        d /= np.linalg.norm(d)
        if keys is not None and key not in keys:
            continue
        lin = float(np.sum(g[key] * d))
        plus, minus = dict(params), dict(params)
        plus[key], minus[key] = params[key] + h * d, params[key] - h * d
        fd = (loss(plus) - loss(minus)) / (2 * h)
        if abs(lin - fd) > rtol * np.linalg.norm(g[key]) + atol:
            bad.append((key, lin, fd))
    return bad


def test_training_steps_lower_the_loss(tiny_batch):
    """The gradient Adam is given is the loss's derivative (every parameter, against central
    differences), and six Adam steps then lower the loss monotonically by more than 5 %.

    The descent alone would not notice a wrong VJP: Adam's first step moves each weight by
    about lr·sign(g), so a gradient with mostly the right signs still descends."""
    _, tokens, word_vecs, targets = tiny_batch
    for cell in ("gru", "lstm"):
        cfg = _tiny(cell)
        params = dg.init_params(cfg, np.random.default_rng(3))
        bad = _gradient_mismatches(params, tokens, word_vecs, targets, cfg)
        assert not bad, (cell, bad)
        opt = tr.adam_init(params)
        losses = []
        for step in range(6):
            loss, params, opt = tr.train_step(params, opt, tokens, word_vecs, targets, cfg, 3e-3)
            losses.append(loss)
        assert all(np.diff(losses) < 0) and losses[-1] < 0.95 * losses[0], (cell, losses)


def test_gradient_check_rejects_a_wrong_shift_vjp(tiny_batch, monkeypatch):
    """The judge judged: with the time shift's VJP shifting the wrong way (+s instead of −s),
    the loss still falls under Adam, but the central-difference check names the conv weights."""
    import autograd.core
    from autograd.extend import defvjp
    from kexue_ref.dgcnn import conv

    _, tokens, word_vecs, targets = tiny_batch
    cfg = _tiny()
    params = dg.init_params(cfg, np.random.default_rng(3))
    keys = ("enc_w", "enc_b", "char_emb")
    assert _gradient_mismatches(params, tokens, word_vecs, targets, cfg, keys) == []
    # the wrong adjoint, registered for this test only (monkeypatch restores the right one)
    monkeypatch.setitem(autograd.core.primitive_vjps, conv._shift_time,
                        autograd.core.primitive_vjps[conv._shift_time])
    defvjp(conv._shift_time, lambda ans, x, s: lambda g: conv._shift_time(g, s))
    bad = _gradient_mismatches(params, tokens, word_vecs, targets, cfg, keys)
    assert {k for k, _, _ in bad} == set(keys), bad
    # ... while the descent it feeds still lowers the loss (why the check above is needed)
    opt = tr.adam_init(params)
    losses = []
    for _ in range(3):
        loss, params, opt = tr.train_step(params, opt, tokens, word_vecs, targets, cfg, 3e-3)
        losses.append(loss)
    assert all(np.diff(losses) < 0), losses


def test_pipeline_keeps_float32(tiny_batch):
    _, tokens, word_vecs, targets = tiny_batch
    cfg = _tiny()
    params = dg.init_params(cfg, np.random.default_rng(4), dtype=np.float32)
    outs = dg.forward(params, tokens, word_vecs, targets["k1"], targets["k2"], cfg)
    assert all(o.dtype == np.float32 for o in outs[:4])
    g = grad(tr.batch_loss)(params, tokens, word_vecs, {k: (v.astype(np.float32) if v.dtype.kind == "f" else v)
                                                        for k, v in targets.items()}, cfg)
    assert g["enc_w"].dtype == np.float32


def test_extract_triples_decodes_with_the_model(tiny_batch, monkeypatch):
    sents, tokens, word_vecs, _ = tiny_batch
    cfg = _tiny()
    params = dg.init_params(cfg, np.random.default_rng(5))
    out = dg.extract_triples(params, tokens, word_vecs, [s.text for s in sents], cfg, predicates=C.PREDICATES)
    assert len(out) == len(sents) and all(isinstance(o, set) for o in out)
    # force every probability high: each start pairs with the nearest end, every class decodes
    from kexue_ref.dgcnn import model as M
    monkeypatch.setattr(M, "subject_probs", lambda p, enc: (np.where(enc["mask"], 0.9, 0.0),) * 2)
    monkeypatch.setattr(M, "object_probs", lambda p, enc, k1, k2, c: (np.full(enc["h"].shape[:2] + (7,), 0.9),) * 2)
    out = M.extract_triples(params, tokens[:1], word_vecs[:1], [sents[0].text], cfg, predicates=C.PREDICATES)
    n = len(sents[0].text)
    assert len(out[0]) == len({(sents[0].text[i], p, sents[0].text[j]) for i in range(n) for j in range(n)
                               for p in C.PREDICATES})


def test_bad_pipeline_input(tiny_batch):
    _, tokens, word_vecs, targets = tiny_batch
    cfg = _tiny()
    params = dg.init_params(cfg, np.random.default_rng(6))
    bad = tokens.copy()
    bad[0, 0] = C.N_CHARS
    with pytest.raises(ValueError, match=r"tokens must hold ids in \[0, n_chars\)"):
        dg.encode(params, bad, word_vecs, cfg)
    with pytest.raises(ValueError, match=r"word_vecs must have shape \(B, T, Dw\)"):
        dg.encode(params, tokens, word_vecs[:, :-1], cfg)
    with pytest.raises(TypeError, match="tokens must hold integer"):
        dg.encode(params, tokens * 1.0, word_vecs, cfg)
    with pytest.raises(ValueError, match=r"embed_keep must have shape \(B, T, D\)"):
        dg.encode(params, tokens, word_vecs, cfg, embed_keep=np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match="spans must satisfy"):
        dg.forward(params, tokens, word_vecs, targets["k2"] + 1, targets["k2"], cfg)
    with pytest.raises(ValueError, match=r"start must lie in \(0.0, 1.0\)"):
        dg.extract_triples(params, tokens, word_vecs, ["x"] * len(tokens), cfg, start=0.0)


def test_warmup_adam_and_ema():
    assert [tr.warmup_lr(n, 4, 1e-3) for n in (0, 1, 3, 10)] == [0.00025, 0.0005, 0.001, 0.001]
    # the first Adam step moves each weight by lr·g/(|g| + ε/√(1-β2)) ≈ lr·sign(g)
    p, g = {"w": np.array([1.0, -2.0])}, {"w": np.array([0.3, -5.0])}
    new, state = tr.adam_step(p, g, tr.adam_init(p), 1e-2)
    np.testing.assert_allclose(new["w"], p["w"] - 1e-2 * np.sign(g["w"]), rtol=1e-6)
    assert state["t"] == 1
    # EMA: debiased = weighted mean of the weights seen; textbook = started at θ0
    ema = tr.ema_init({"w": np.array(10.0)})
    ema = tr.ema_update(ema, {"w": np.array(1.0)}, 0.9)
    assert float(tr.ema_weights(ema)["w"]) == pytest.approx(1.0)
    ema = tr.ema_update(ema, {"w": np.array(3.0)}, 0.9)
    assert float(tr.ema_weights(ema)["w"]) == pytest.approx((0.9 * 0.1 * 1 + 0.1 * 3) / (1 - 0.81))
    assert float(tr.ema_weights(ema, debias=False)["w"]) == pytest.approx(0.81 * 10 + 0.9 * 0.1 * 1 + 0.1 * 3)


def test_subject_sampling_distribution_and_targets():
    # subjects (0,1) and (3,4): k1 = 0 w.p. 1/2, then k2 ∈ {1, 4} uniformly; k1 = 3 forces k2 = 4
    rng = np.random.default_rng(2024)
    n = 4000
    draws = [tr.sample_subject_span(rng, [(0, 1), (3, 4)]) for _ in range(n)]
    freq = sum(d == (0, 4) for d in draws) / n
    se = np.sqrt(0.25 * 0.75 / n)
    assert abs(freq - 0.25) < 4 * se
    assert set(draws) == {(0, 1), (0, 4), (3, 4)}

    class S:
        spans = (((0, 1), 2, (6, 7)), ((3, 4), 0, (6, 7)))
    t = tr.make_targets([S, S], 9, 3, [(0, 1), (0, 4)])
    assert t["s1"][0].tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0] and t["s2"][0].tolist() == [0, 1, 0, 0, 1, 0, 0, 0, 0]
    assert t["o1"][0, 6, 2] == 1 and t["o1"][0].sum() == 1 and t["o2"][0, 7, 2] == 1
    assert t["o1"][1].sum() == 0 and t["o2"][1].sum() == 0      # (0, 4) is no subject: implicit negative


def test_run_epoch_counts_steps_and_updates_the_ema():
    rng = np.random.default_rng(8)
    sents = C.synthetic_corpus(12, rng)
    table = C.word_vector_table(rng, n_buckets=16, dim=4)
    cfg = _tiny()
    params = dg.init_params(cfg, rng)
    state = {"params": params, "opt": tr.adam_init(params), "ema": tr.ema_init(params), "step": 0}
    seen = []
    state, losses = tr.run_epoch(state, sents, table, cfg, rng, batch_size=5, ema_decay=0.5,
                                 on_step=lambda n, total, loss: seen.append((n, total)))
    assert state["step"] == 3 == len(losses) and seen == [(1, 3), (2, 3), (3, 3)]
    assert state["ema"]["t"] == 3 and state["opt"]["t"] == 3
    batches = tr.length_batches([len(s.text) for s in sents], 5, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(12))
