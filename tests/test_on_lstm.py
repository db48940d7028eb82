"""ON-LSTM (https://kexue.fm/archives/6621): the post's claims and the two public codes' conventions.

Known values come from the post (its worked trees, the 1-based soft level), from hand
calculation, or from independent transcriptions written here: the post's piecewise cases as
explicit loops, a plain LSTM, and NumPy mirrors of the two public cells (the Keras
``one_step`` and the official ``ONLSTMCell.forward``), which read the weights in each code's own
layout and gate order.
"""
import itertools

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from scipy.special import expit, softmax

from kexue_ref import on_lstm as ol

ULP = 4 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# Independent transcriptions used as known values
# ---------------------------------------------------------------------------

def keras_mirror_step(x, h, c, kernel, recurrent_kernel, bias, levels):
    """The Keras layer's one_step in NumPy: slices [:L], [L:2L], then a (B, 4L, C) view."""
    B, N = h.shape
    C = N // levels
    z = x @ kernel + h @ recurrent_kernel + bias
    fm = np.cumsum(softmax(z[:, :levels], axis=-1), axis=-1)[:, :, None]
    im = np.cumsum(softmax(z[:, levels:2 * levels][:, ::-1], axis=-1), axis=-1)[:, ::-1][:, :, None]
    rest = z[:, 2 * levels:].reshape(B, 4 * levels, C)
    f, i, o = (expit(rest[:, g * levels:(g + 1) * levels]) for g in range(3))
    cin = np.tanh(rest[:, 3 * levels:])
    c3 = c.reshape(B, levels, C)
    ov = fm * im
    c_out = ov * (f * c3 + i * cin) + (fm - ov) * c3 + (im - ov) * cin
    return (o * np.tanh(c_out)).reshape(B, N), c_out.reshape(B, N)


def official_mirror_step(x, h, c, w_ih, b_ih, w_hh, b_hh, chunk_size):
    """ONLSTMCell.forward in NumPy: ĩ, f̃ first, then a (B, 4L, C) view chunked into o, ĉ, i, f."""
    B, N = h.shape
    L = N // chunk_size
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    cin, cforget = gates[:, :L], gates[:, L:2 * L]
    o, cell, ing, forg = np.split(gates[:, 2 * L:].reshape(B, 4 * L, chunk_size), 4, axis=1)
    cin = (1.0 - np.cumsum(softmax(cin, axis=-1), axis=-1))[:, :, None]
    cforget = np.cumsum(softmax(cforget, axis=-1), axis=-1)[:, :, None]
    ing, forg, cell, o = expit(ing), expit(forg), np.tanh(cell), expit(o)
    overlap = cforget * cin
    forg = forg * overlap + (cforget - overlap)
    ing = ing * overlap + (cin - overlap)
    cy = forg * c.reshape(B, L, chunk_size) + ing * cell
    return (o * np.tanh(cy)).reshape(B, N), cy.reshape(B, N)


def piecewise_loop(c_prev, c_hat, f, i, d_f, d_i, n):
    """The post's two cases with 1-based levels and inclusive intervals, one neuron at a time."""
    out = np.empty(n)
    for k in range(1, n + 1):
        j = k - 1
        if d_f <= d_i:
            if k < d_f:
                out[j] = c_hat[j]
            elif k <= d_i:
                out[j] = f[j] * c_prev[j] + i[j] * c_hat[j]
            else:
                out[j] = c_prev[j]
        else:
            if k <= d_i:
                out[j] = c_hat[j]
            elif k < d_f:
                out[j] = 0.0
            else:
                out[j] = c_prev[j]
    return out


def official_build_tree(depth, sen):
    """The codes' recursion on slices (the reference for the index-range version)."""
    if len(depth) == 1:
        return sen[0]
    k = int(np.argmax(depth))
    tree = []
    if k > 0:
        tree.append(official_build_tree(depth[:k], sen[:k]))
    node = sen[k]
    if k + 1 < len(sen):
        node = [node, official_build_tree(depth[k + 1:], sen[k + 1:])]
    if not tree:
        return node
    tree.append(node)
    return tree


def _setup(rng, B=2, D=3, N=6, L=3, scale=1.0):
    p = ol.random_params(rng, D, N, L, scale=scale)
    return p, rng.standard_normal((B, D)), 0.5 * rng.standard_normal((B, N)), rng.standard_normal((B, N))


# ---------------------------------------------------------------------------
# cumax and master gates
# ---------------------------------------------------------------------------

def test_cumax_known_value_and_shape_of_a_cdf(rng):
    np.testing.assert_allclose(ol.cumax(np.log([0.25, 0.25, 0.5])), [0.25, 0.5, 1.0], rtol=1e-15)
    a = 3 * rng.standard_normal((4, 9))
    f = ol.cumax(a)
    np.testing.assert_allclose(f, np.cumsum(softmax(a, axis=-1), axis=-1), rtol=1e-14)
    assert np.all(np.diff(f, axis=-1) >= 0)
    assert np.all((f >= 0) & (f <= 1 + ULP))
    np.testing.assert_allclose(f[:, -1], 1.0, rtol=0, atol=ULP)
    np.testing.assert_allclose(ol.cumax(a + 123.0), f, rtol=1e-13)  # softmax is shift-invariant
    np.testing.assert_allclose(ol.cumax(a.T, axis=0), f.T, rtol=1e-15)


@pytest.mark.parametrize("L", [1, 2, 7, 115])
def test_master_gate_structure(rng, L):
    a_f, a_i = 2 * rng.standard_normal((2, 5, L))
    f, i_su = ol.master_gates(a_f, a_i)
    _, i_paper = ol.master_gates(a_f, a_i, master_input="paper")
    # f̃ non-decreasing, ending at 1; Su's ĩ non-increasing, starting at 1
    assert np.all(np.diff(f, axis=-1) >= -ULP) and np.all(np.diff(i_su, axis=-1) <= ULP)
    np.testing.assert_allclose(f[:, -1], 1.0, atol=ULP, rtol=0)
    np.testing.assert_allclose(i_su[:, 0], 1.0, atol=ULP, rtol=0)
    # paper ĩ_k = su ĩ_{k+1}, and its last entry is exactly 0
    np.testing.assert_array_equal(i_paper[:, :-1], i_su[:, 1:])
    assert np.all(i_paper[:, -1] == 0.0)
    # paper ĩ = 1 − cumax(a_i) up to rounding; su ĩ − paper ĩ = p
    np.testing.assert_allclose(i_paper, 1 - ol.cumax(a_i), rtol=0, atol=1e-14)
    np.testing.assert_allclose(i_su - i_paper, softmax(a_i, axis=-1), rtol=0, atol=1e-14)
    # 0 ≤ ω ≤ min(f̃, ĩ) within rounding, for both conventions
    for i in (i_su, i_paper):
        omega = f * i
        assert np.all(omega >= 0) and np.all(omega <= np.minimum(f, i) + ULP)


def test_paper_gate_keeps_precision_at_high_levels():
    # p_0 ≈ 1 and the high levels carry ≈ e^{-30}: 1 − cumsum can only resolve multiples of
    # 2^-53 there; the exclusive suffix sum keeps full relative precision.
    a = np.array([30.0, 0.0, -1.0, 0.5, -2.0])
    p = np.exp(a - (a.max() + np.log(np.sum(np.exp(a - a.max())))))
    exact = np.array([p[k + 1:].sum() for k in range(5)])  # a few terms of similar size
    _, i_paper = ol.master_gates(a[None], a[None], master_input="paper")
    np.testing.assert_allclose(i_paper[0, 1:], exact[1:], rtol=1e-14, atol=0)
    assert i_paper[0, -1] == 0.0
    naive = 1 - np.cumsum(p)
    assert np.max(np.abs(naive[1:-1] / exact[1:-1] - 1)) > 1e-6   # the pitfall being avoided


def test_chunk_expansion_is_repeat_not_tile(rng):
    assert ol.expand_levels(np.array([0.1, 0.9]), 3).tolist() == [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]
    g = rng.random((2, 4))
    np.testing.assert_array_equal(ol.expand_levels(g, 5), np.repeat(g, 5, axis=-1))
    np.testing.assert_array_equal(ol.expand_levels(g, 1), g)
    a_f, a_i = rng.standard_normal((2, 2, 4))
    for got, want in zip(ol.master_gates(a_f, a_i, chunk=3), ol.master_gates(a_f, a_i)):
        np.testing.assert_array_equal(got, np.repeat(want, 3, axis=-1))


def test_expansion_gradient_sums_over_the_chunk():
    # VJP of the expansion: the cotangent summed over each level's C neurons
    w = np.arange(12.0).reshape(2, 6)
    g = grad(lambda x: anp.sum(ol.expand_levels(x, 2) * w))(np.ones((2, 3)))
    np.testing.assert_array_equal(g, w.reshape(2, 3, 2).sum(-1))


# ---------------------------------------------------------------------------
# Hard master gates: the partitioned update and the unified formula
# ---------------------------------------------------------------------------

def test_hard_master_gates_known_value():
    f, i = ol.hard_master_gates(2, 4, 6)
    assert f.tolist() == [0, 0, 1, 1, 1, 1] and i.tolist() == [1, 1, 1, 1, 1, 0]
    f1, i1 = ol.hard_master_gates(3, 5, 6, base=1)   # the same levels, 1-based
    np.testing.assert_array_equal(f1, f)
    np.testing.assert_array_equal(i1, i)


@pytest.mark.parametrize("base", [0, 1])
def test_unified_equals_piecewise_for_every_pair(rng, base):
    n = 7
    pairs = np.array(list(itertools.product(range(base, n + base), repeat=2)))  # all 49 pairs
    B = len(pairs)
    c_prev, c_hat = rng.standard_normal((2, B, n))
    f, i = rng.random((2, B, n))
    d_f, d_i = pairs[:, 0], pairs[:, 1]
    fm, im = ol.hard_master_gates(d_f, d_i, n, base=base)
    unified = ol.cell_update(c_prev, c_hat, f, i, fm, im)
    cases = ol.partitioned_update(c_prev, c_hat, f, i, d_f, d_i, base=base)
    loops = np.stack([piecewise_loop(c_prev[b], c_hat[b], f[b], i[b], d_f[b] + 1 - base,
                                     d_i[b] + 1 - base, n) for b in range(B)])
    np.testing.assert_allclose(cases, loops, rtol=1e-15, atol=0)
    np.testing.assert_allclose(unified, loops, rtol=1e-15, atol=1e-16)


def test_unified_equals_piecewise_with_chunks(rng):
    L, C = 4, 3
    pairs = np.array(list(itertools.product(range(L), repeat=2)))
    B = len(pairs)
    c_prev, c_hat = rng.standard_normal((2, B, L * C))
    f, i = rng.random((2, B, L * C))
    fm, im = ol.hard_master_gates(pairs[:, 0], pairs[:, 1], L)
    np.testing.assert_allclose(ol.cell_update(c_prev, c_hat, f, i, fm, im, chunk=C),
                               ol.partitioned_update(c_prev, c_hat, f, i, pairs[:, 0], pairs[:, 1], chunk=C),
                               rtol=1e-15, atol=1e-16)


def test_all_ones_master_gates_give_the_plain_lstm_update(rng):
    c_prev, c_hat = rng.standard_normal((2, 3, 8))
    f, i = rng.random((2, 3, 8))
    ones = np.ones((3, 8))
    np.testing.assert_allclose(ol.cell_update(c_prev, c_hat, f, i, ones, ones), f * c_prev + i * c_hat,
                               rtol=1e-15)


# ---------------------------------------------------------------------------
# The cell: mirrors of both codes, both layouts, one level
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("N,L", [(6, 3), (4, 4), (8, 2)])
def test_cell_matches_the_keras_code(rng, N, L):
    p, x, h, c = _setup(rng, N=N, L=L)
    kernel, recurrent, bias = ol.to_keras(p)
    h1, c1, fm, im = ol.on_lstm_cell(x, h, c, [kernel, recurrent, bias], levels=L, layout="keras")
    h_k, c_k = keras_mirror_step(x, h, c, kernel, recurrent, bias, L)
    np.testing.assert_allclose(h1, h_k, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(c1, c_k, rtol=1e-13, atol=1e-15)
    assert fm.shape == im.shape == (2, L)


@pytest.mark.parametrize("N,C", [(6, 2), (4, 1), (8, 4)])
def test_cell_matches_the_official_code(rng, N, C):
    p, x, h, c = _setup(rng, N=N, L=N // C)
    state = ol.to_official(p)
    state["hh.bias"] = 0.4 * state["ih.0.bias"]           # two biases, only the sum matters
    state["ih.0.bias"] = 0.6 * state["ih.0.bias"]
    h1, c1, _, _ = ol.on_lstm_cell(x, h, c, state, chunk=C, layout="official", master_input="paper")
    h_o, c_o = official_mirror_step(x, h, c, state["ih.0.weight"], state["ih.0.bias"],
                                    state["hh.weight"], state["hh.bias"], C)
    # the official ĩ is 1 − cumsum, ours the exact suffix sum: equal to rounding
    np.testing.assert_allclose(h1, h_o, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c1, c_o, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("master_input", ["su", "paper"])
def test_both_layouts_of_one_model_give_the_same_layer(rng, master_input):
    p = ol.random_params(rng, 3, 6, 2)
    x = rng.standard_normal((2, 5, 3))
    h0, c0 = rng.standard_normal((2, 2, 6))
    su = ol.on_lstm(x, p, h0, c0, levels=2, master_input=master_input)
    off = ol.on_lstm(x, ol.to_official(p), h0, c0, chunk=3, master_input=master_input, layout="official")
    ker = ol.on_lstm(x, ol.to_keras(p), h0, c0, levels=2, master_input=master_input, layout="keras")
    for a, b, k in zip(su, off, ker):
        np.testing.assert_allclose(b, a, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(k, a)


def test_one_level_su_is_a_plain_lstm_and_paper_never_writes(rng):
    D, N = 3, 4
    p, x, h, c = _setup(rng, D=D, N=N, L=1)
    h1, c1, fm, im = ol.on_lstm_cell(x, h, c, p, levels=1)
    z = x @ p["W"] + h @ p["U"] + p["b"]
    zf, zi, zo, zc = np.split(z[:, 2:], 4, axis=1)        # columns after the two master logits
    c_lstm = expit(zf) * c + expit(zi) * np.tanh(zc)
    np.testing.assert_allclose(c1, c_lstm, rtol=1e-14)
    np.testing.assert_allclose(h1, expit(zo) * np.tanh(c_lstm), rtol=1e-14)
    assert np.all(fm == 1.0) and np.all(im == 1.0)
    # paper convention with one level: ĩ = 0, ω = 0, so c_t = f̃ c_{t−1} = c_{t−1}
    h2, c2, _, im2 = ol.on_lstm_cell(x, h, c, p, levels=1, master_input="paper")
    assert np.all(im2 == 0.0)
    np.testing.assert_array_equal(c2, c)
    np.testing.assert_allclose(h2, expit(zo) * np.tanh(c), rtol=1e-14)


def test_saturated_logits_give_the_hard_update(rng):
    # one-hot softmaxes: the soft cell update becomes the post's partitioned update
    B, L = 4, 5
    d_f, d_i = np.array([0, 2, 4, 3]), np.array([4, 2, 1, 0])
    a_f = np.where(np.arange(L) == d_f[:, None], 800.0, 0.0)
    a_i = np.where(np.arange(L) == d_i[:, None], 800.0, 0.0)
    fm, im = ol.master_gates(a_f, a_i)
    c_prev, c_hat = rng.standard_normal((2, B, L))
    f, i = rng.random((2, B, L))
    np.testing.assert_allclose(ol.cell_update(c_prev, c_hat, f, i, fm, im),
                               ol.partitioned_update(c_prev, c_hat, f, i, d_f, d_i), rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------
# Converters
# ---------------------------------------------------------------------------

def test_layout_round_trips(rng):
    p = ol.random_params(rng, 5, 6, 3)
    back = ol.from_official(ol.to_official(p))
    for k in "WUb":
        np.testing.assert_array_equal(back[k], p[k])
    state = ol.to_official(p, prefix="cells.1.")
    assert sorted(state) == ["cells.1.hh.bias", "cells.1.hh.weight", "cells.1.ih.0.bias", "cells.1.ih.0.weight"]
    assert state["cells.1.ih.0.weight"].shape == (2 * 3 + 4 * 6, 5)
    assert state["cells.1.hh.weight"].shape == (30, 6)
    # official → su → official: weights exact, the two biases folded into ih
    state = {"ih.0.weight": rng.standard_normal((30, 5)), "ih.0.bias": rng.standard_normal(30),
             "hh.weight": rng.standard_normal((30, 6)), "hh.bias": rng.standard_normal(30)}
    again = ol.to_official(ol.from_official(state))
    np.testing.assert_array_equal(again["ih.0.weight"], state["ih.0.weight"])
    np.testing.assert_array_equal(again["hh.weight"], state["hh.weight"])
    np.testing.assert_allclose(again["ih.0.bias"] + again["hh.bias"], state["ih.0.bias"] + state["hh.bias"],
                               rtol=1e-15)
    kw = ol.to_keras(p)
    assert [a is p[k] for a, k in zip(kw, "WUb")] == [True, True, True]
    named = ol.from_keras({"kernel": kw[0], "recurrent_kernel": kw[1], "bias": kw[2]})
    assert all(named[k] is p[k] for k in "WUb")


def test_gate_blocks_land_where_each_code_reads_them():
    L, N = 2, 4
    labels = {"fm": 1, "im": 2, "f": 3, "i": 4, "o": 5, "c": 6}
    su = np.concatenate([np.full(L if g in ("fm", "im") else N, labels[g]) for g in ol.GATE_ORDER["su"]])
    off = ol.permute_gates(su, L, "su", "official")
    # official: ĩ (L), f̃ (L), then outgate, cell, ingate, forgetgate, N each
    assert off.tolist() == [2] * L + [1] * L + [5] * N + [6] * N + [4] * N + [3] * N
    np.testing.assert_array_equal(ol.permute_gates(off, L, "official", "su"), su)
    keep = np.arange(12 * 28).reshape(12, 28) % 3 > 0        # a boolean mask with 2L + 4N = 28
    np.testing.assert_array_equal(ol.permute_gates(ol.permute_gates(keep, 2, "su", "official"), 2,
                                                   "official", "su"), keep)


def test_gradients_flow_through_the_official_layout(rng):
    p, x, h, c = _setup(rng, N=4, L=2)
    state = ol.to_official(p)
    u = rng.standard_normal((2, 4))

    def loss_su(W):
        return anp.sum(ol.on_lstm_cell(x, h, c, {**p, "W": W}, levels=2)[0] * u)

    def loss_off(w_ih):
        return anp.sum(ol.on_lstm_cell(x, h, c, {**state, "ih.0.weight": w_ih}, chunk=2,
                                       layout="official")[0] * u)
    g_su, g_off = grad(loss_su)(p["W"]), grad(loss_off)(state["ih.0.weight"])
    np.testing.assert_allclose(g_off, ol.permute_gates(g_su, 2, "su", "official", axis=1).T, rtol=1e-13)


# ---------------------------------------------------------------------------
# DropConnect and dropout: explicit masks, both scalings
# ---------------------------------------------------------------------------

def test_dropconnect_conventions(rng):
    p = ol.random_params(rng, 3, 4, 2)
    x = rng.standard_normal((2, 4, 3))
    kW, kU = rng.random(p["W"].shape) < 0.7, rng.random(p["U"].shape) < 0.7
    q = 0.3

    def run(params, **kw):
        return ol.on_lstm(x, params, levels=2, **kw).h

    # inverted (Keras): kept weights × 1/(1 − p) on both kernels; evaluation = plain weights
    np.testing.assert_allclose(
        run(p, dropconnect_masks={"W": kW, "U": kU}, dropconnect_p=q),
        run({**p, "W": p["W"] * kW / (1 - q), "U": p["U"] * kU / (1 - q)}), rtol=1e-14)
    np.testing.assert_array_equal(run(p, dropconnect_p=q), run(p))
    # official: U only, unscaled in training; U × (1 − p) at evaluation
    np.testing.assert_allclose(run(p, dropconnect="official", dropconnect_masks={"U": kU}, dropconnect_p=q),
                               run({**p, "U": p["U"] * kU}), rtol=1e-14)
    np.testing.assert_allclose(run(p, dropconnect="official", dropconnect_p=q),
                               run({**p, "U": p["U"] * (1 - q)}), rtol=1e-14)
    # the targets can be chosen explicitly
    np.testing.assert_allclose(run(p, dropconnect="official", dropconnect_on=("W",), dropconnect_p=q),
                               run({**p, "W": p["W"] * (1 - q)}), rtol=1e-14)


def test_official_hh_mask_converts_to_the_canonical_u_mask(rng):
    p = ol.random_params(rng, 3, 4, 2)
    state = ol.to_official(p)
    keep_hh = rng.random(state["hh.weight"].shape) < 0.6
    keep_U = ol.permute_gates(keep_hh.T, 2, "official", "su")
    x = rng.standard_normal((1, 3, 3))
    masked_official = {**state, "hh.weight": state["hh.weight"] * keep_hh}
    np.testing.assert_allclose(
        ol.on_lstm(x, p, levels=2, dropconnect="official", dropconnect_masks={"U": keep_U}, dropconnect_p=0.4).h,
        ol.on_lstm(x, masked_official, chunk=2, layout="official").h, rtol=1e-14)


def test_stack_equals_chained_layers_with_locked_dropout(rng):
    p0, p1 = ol.random_params(rng, 3, 4, 2), ol.random_params(rng, 4, 6, 3)
    x = rng.standard_normal((2, 5, 3))
    keep = rng.random((2, 4)) < 0.7
    out = ol.on_lstm_stack(x, [p0, p1], levels=[2, 3], dropout_masks=[keep], dropout_p=0.3)
    l0 = ol.on_lstm(x, p0, levels=2)
    l1 = ol.on_lstm(l0.h * keep[:, None, :] / 0.7, p1, levels=3)
    np.testing.assert_allclose(out.h, l1.h, rtol=1e-14)
    np.testing.assert_array_equal(out.layers[0].h, l0.h)       # layers hold pre-dropout outputs
    per_step = np.repeat(keep[:, None, :], 5, axis=1)
    np.testing.assert_array_equal(
        ol.on_lstm_stack(x, [p0, p1], levels=[2, 3], dropout_masks=[per_step], dropout_p=0.3).h, out.h)
    evaluation = ol.on_lstm_stack(x, [p0, p1], chunk=[2, 2])
    np.testing.assert_allclose(evaluation.h, ol.on_lstm(l0.h, p1, levels=3).h, rtol=1e-14)


# ---------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------

def test_layer_is_the_cell_scanned_over_time(rng):
    p = ol.random_params(rng, 3, 6, 3)
    x = rng.standard_normal((2, 4, 3))
    x_copy = x.copy()
    out = ol.on_lstm(x, p, chunk=2, master_input="paper")
    h = c = np.zeros((2, 6))
    for t in range(4):
        h, c, fm, im = ol.on_lstm_cell(x[:, t], h, c, p, chunk=2, master_input="paper")
        np.testing.assert_array_equal(out.h[:, t], h)
        np.testing.assert_array_equal(out.c[:, t], c)
        np.testing.assert_array_equal(out.f_master[:, t], fm)
        np.testing.assert_allclose(out.distance[:, t], 1 - fm.mean(-1), rtol=1e-15)
        np.testing.assert_allclose(out.distance_in[:, t], im.mean(-1), rtol=1e-15)
    np.testing.assert_array_equal(x, x_copy)
    assert all(o.dtype == np.float32 for o in
               ol.on_lstm(x.astype(np.float32), {k: v.astype(np.float32) for k, v in p.items()}, levels=3))


# ---------------------------------------------------------------------------
# Soft level and distance
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("L", [1, 4, 115])
def test_soft_level_is_the_expected_level(rng, L):
    a = 2 * rng.standard_normal((3, L))
    p = softmax(a, axis=-1)
    f = ol.cumax(a)
    k1 = np.arange(1, L + 1)
    # post: d_f = Σ_{k=1}^{L} k p_f(k) = L (1 − mean f̃) + 1
    np.testing.assert_allclose(ol.soft_level(f, base=1), (k1 * p).sum(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ol.soft_level(f, base=1), L * (1 - f.mean(-1)) + 1, rtol=1e-12, atol=1e-12)
    # 0-based: Σ k p_k = L − Σ f̃ (the paper's eq. 15) = L · distance
    np.testing.assert_allclose(ol.soft_level(f), L - f.sum(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ol.soft_level(f), L * ol.distance(f), rtol=1e-12, atol=1e-12)


def test_soft_level_known_values():
    assert ol.soft_level(np.array([0.25, 0.5, 1.0]), base=1) == pytest.approx(2.25, abs=1e-15)
    f, _ = ol.hard_master_gates(np.array([0, 3, 5]), np.array([0, 0, 0]), 6)
    np.testing.assert_array_equal(ol.soft_level(f), [0, 3, 5])
    np.testing.assert_array_equal(ol.distance(f), [0, 0.5, 5 / 6])


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------

def test_the_posts_two_trees():
    t = ol.build_tree(["苹果", "的", "颜色", "是", "什么"], np.array([0.5, 0.1, 0.6, 0.2, 0.9]))
    assert t == [[["苹果", "的"], ["颜色", "是"]], "什么"]
    t = ol.build_tree(["爱", "真的", "需要", "勇气"], np.array([0.9, 0.6, 0.3, 0.1]))
    assert t == ["爱", ["真的", ["需要", "勇气"]]]
    assert ol.tree_to_brackets(t) == "(爱 (真的 (需要 勇气)))"


def test_tree_rules_and_ties():
    assert ol.build_tree(["a"], [0.3]) == "a"
    assert ol.build_tree(list("abcd"), np.arange(4.0)) == [[["a", "b"], "c"], "d"]   # increasing: left-branching
    assert ol.build_tree(list("abc"), np.zeros(3)) == ["a", ["b", "c"]]          # ties → first
    assert ol.build_tree(list("abc"), np.array([0.1, 0.5, 0.2])) == ["a", ["b", "c"]]
    assert ol.build_tree(list("abcd"), np.array([0.1, 0.5, 0.2, 0.0])) == ["a", ["b", ["c", "d"]]]
    assert ol.build_tree(list("abcd"), np.array([0.3, 0.1, 0.5, 0.2])) == [["a", "b"], ["c", "d"]]
    assert ol.build_tree(np.array(["x", "y"]), [0.2, 0.1]) == ["x", "y"]        # numpy strings become str


def test_build_tree_agrees_with_the_codes_recursion(rng):
    for T in range(1, 30):
        d = np.round(rng.random(T), 1)                        # rounded: plenty of ties
        tokens = [f"w{t}" for t in range(T)]
        tree = ol.build_tree(tokens, d)
        assert tree == official_build_tree(d, tokens)
        if T >= 2:
            assert len(ol.tree_spans(tree)) == T - 2        # binary: T − 2 non-trivial spans


def test_spans_and_bracket_f1_by_hand():
    balanced = [["a", "b"], ["c", "d"]]
    right = ["a", ["b", ["c", "d"]]]
    assert ol.tree_spans(balanced) == [(0, 2), (2, 4)]
    assert ol.tree_spans(right) == [(1, 4), (2, 4)]
    assert ol.bracket_f1(balanced, right) == (0.5, 0.5, 0.5)
    # with trivial spans: 4 tokens + the sentence; 6 of 7 shared
    assert ol.tree_spans(balanced, trivial=True) == [(0, 1), (0, 2), (0, 4), (1, 2), (2, 3), (2, 4), (3, 4)]
    assert ol.bracket_f1(balanced, right, trivial=True) == pytest.approx((6 / 7, 6 / 7, 6 / 7), abs=1e-15)
    assert ol.bracket_f1(["a", "b"], ["a", "b"]) == (1.0, 1.0, 1.0)
    # a flat gold tree has no non-trivial span: R = 1, P = 0, F1 = 0 (the official convention)
    assert ol.bracket_f1(right, ["a", "b", "c", "d"]) == (0.0, 1.0, 0.0)
    assert ol.bracket_f1(balanced, balanced) == (1.0, 1.0, 1.0)
    # unequal precision and recall against a gold tree with an extra ternary node
    gold = [["a", "b", "c"], ["d", "e"]]                       # spans (0, 3), (3, 5)
    pred = [[["a", "b"], "c"], ["d", "e"]]                     # spans (0, 2), (0, 3), (3, 5)
    p, r, f = ol.bracket_f1(pred, gold)
    assert (p, r) == (2 / 3, 1.0) and f == pytest.approx(0.8, abs=1e-15)


# ---------------------------------------------------------------------------
# Bad input (beyond the registry's error cases)
# ---------------------------------------------------------------------------

def test_bad_input_messages(rng):
    p = ol.random_params(rng, 3, 4, 2)
    x = rng.standard_normal((2, 3, 3))
    with pytest.raises(ValueError, match="give exactly one of levels="):
        ol.on_lstm(x, p, levels=2, chunk=2)
    with pytest.raises(TypeError, match="params must be a dict"):
        ol.on_lstm(x, [p["W"], p["U"], p["b"]], levels=2)
    with pytest.raises(ValueError, match="need keys 'W', 'U', 'b'"):
        ol.on_lstm(x, ol.to_official(p), levels=2)
    with pytest.raises(ValueError, match=r"missing \['hh.bias'\]"):
        ol.from_official({k: v for k, v in ol.to_official(p).items() if k != "hh.bias"})
    with pytest.raises(ValueError, match="Keras weights must be"):
        ol.from_keras([p["W"], p["U"]])
    with pytest.raises(ValueError, match=r"dropconnect_masks must be a dict with one keep-mask for each of \('U',\)"):
        ol.on_lstm(x, p, levels=2, dropconnect="official", dropconnect_masks={"W": np.ones((3, 20), bool)})
    with pytest.raises(ValueError, match="dropconnect_on must name weights"):
        ol.on_lstm(x, p, levels=2, dropconnect_on=("V",))
    with pytest.raises(ValueError, match=r"dropout_masks must be a list of n_layers − 1 = 1"):
        ol.on_lstm_stack(x, [p, ol.random_params(rng, 4, 4, 2)], levels=2, dropout_masks=[])
    with pytest.raises(TypeError, match="layer_params must be a list"):
        ol.on_lstm_stack(x, p, levels=2)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        ol.random_params(0, 3, 4, 2)
    with pytest.raises(ValueError, match="levels=3 does not divide the hidden size N=4"):
        ol.random_params(rng, 3, 4, 3)
    with pytest.raises(ValueError, match="tree and gold must cover the same tokens"):
        ol.bracket_f1(["a", "b"], ["a", ["b", "c"]])
    with pytest.raises(ValueError, match=r"a has 7 entries on axis 0; expected 2L \+ 4N"):
        ol.permute_gates(np.zeros(7), 1, "su", "official")


def test_saturated_gradients_are_finite_without_overflow_warnings(rng):
    # autograd's tanh VJP is g / cosh(x)², which overflows (a RuntimeWarning, an error under
    # this project's pytest settings) for |x| > ~44 in float32; the cell's tanh uses sech² in
    # the overflow-free form 4e^{−2|x|} / (1 + e^{−2|x|})².
    p, x, h, c = _setup(rng, N=4, L=2, scale=80.0)
    u = rng.standard_normal((2, 4))
    for dtype in (np.float32, np.float64):
        pd = {k: v.astype(dtype) for k, v in p.items()}

        def loss(W):
            return anp.sum(ol.on_lstm_cell(x.astype(dtype), h.astype(dtype), c.astype(dtype) * 60,
                                           {**pd, "W": W}, levels=2)[0] * u.astype(dtype))
        g = grad(loss)(pd["W"])
        assert g.dtype == dtype and np.all(np.isfinite(g))
    # the shared VJP itself (kexue_ref.numerics.tanh): sech² x, against 1 / cosh² x where
    # that does not overflow
    from kexue_ref.numerics import tanh
    t = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(grad(lambda z: anp.sum(tanh(z)))(t), 1 / np.cosh(t) ** 2, rtol=1e-14)


# ---------------------------------------------------------------------------
# Accuracy of the cumulative sums and of the layer's distance
# ---------------------------------------------------------------------------

def test_cumulative_gates_end_exactly_at_one(rng):
    # f̃_{L−1} = Σ_j p_j = 1 and su ĩ_0 = 1 exactly: the entries above 1/2 are 1 − (a sum)
    a_f, a_i = 3 * rng.standard_normal((2, 6, 115))
    f, i_su = ol.master_gates(a_f, a_i)
    assert np.all(f[:, -1] == 1.0) and np.all(i_su[:, 0] == 1.0)
    assert np.all(ol.cumax(a_f)[:, -1] == 1.0)


def test_cumax_at_115_levels_stays_within_two_ulp_of_the_exact_cdf(rng):
    # exact cdf from 50-digit arithmetic; a plain cumsum of 115 softmax terms gathers
    # several ulp(1) of rounding near 1 (up to 4.5 in trials), the two-sided sums up to ~1.6
    mpmath = pytest.importorskip("mpmath")
    a = 3 * rng.standard_normal((16, 115))
    p = softmax(a, axis=-1)
    err = {"oracle": 0.0, "plain cumsum": 0.0}
    with mpmath.workdps(50):
        for r, row in enumerate(a):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
            s = mpmath.fsum(e)
            exact = [mpmath.fsum(e[:k + 1]) / s for k in range(len(e))]
            for name, got in (("oracle", ol.cumax(row)), ("plain cumsum", np.cumsum(p[r]))):
                err[name] = max(err[name], max(abs(float(mpmath.mpf(float(g)) - x))
                                               for g, x in zip(got, exact)))
    eps = np.finfo(np.float64).eps
    assert err["oracle"] <= 2 * eps
    assert err["plain cumsum"] > err["oracle"]


def test_layer_distance_keeps_relative_precision_when_the_forget_gate_is_near_one():
    # constant logits a_f = (0, −30, −40): p_f ≈ (1, e^{−30}, e^{−40}), so the distance
    # d = 1 − mean f̃ = Σ_k k p_k / L ≈ e^{−30}/3 is tiny; 1 − mean f̃ computed near 1 would
    # only resolve multiples of 2^{−53}
    L, N, D = 3, 3, 2
    width = 2 * L + 4 * N
    b = np.zeros(width)
    b[:L] = [0.0, -30.0, -40.0]
    params = {"W": np.zeros((D, width)), "U": np.zeros((N, width)), "b": b}
    out = ol.on_lstm(np.ones((1, 2, D)), params, levels=L)
    z = np.exp(b[:L])
    p = z / z.sum()
    expected = (1 * p[1] + 2 * p[2]) / L
    np.testing.assert_allclose(out.distance, expected, rtol=1e-14, atol=0)
