"""The ON-LSTM truth functions (https://kexue.fm/archives/6621) against values from the math.

Known values are hand calculations (the post's p = [1/4, 1/4, 1/2], the post's two trees and
the left- vs right-branching F1), identities (f̃ ends at 1, paper ĩ_k = su ĩ_{k+1}, a single
level makes the "su" cell a plain LSTM and the "paper" cell never write, the official layout
read row by row agrees with the canonical one after reordering the gate blocks by hand), and a
central difference of the truth for the exact VJPs. The last tests check that certification
rejects a table changed by a few ulps.
"""
from fractions import Fraction

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import registry, tables  # noqa: E402
from kexue_ref.cases import on_lstm as cases_on_lstm  # noqa: E402
from kexue_ref.certify import _mp  # noqa: E402
from ._util import mp  # noqa: E402
from kexue_ref.certify import truth_on_lstm as T  # noqa: E402


@pytest.fixture(autouse=True)
def _dps():
    with mpmath.workdps(50):
        yield


def close(a, b, tol=1e-40):
    a = np.asarray(a, dtype=object).reshape(-1)
    b = np.asarray(b, dtype=object).reshape(-1)
    assert a.shape == b.shape
    for x, y in zip(a, b):
        assert abs(mpmath.mpf(x) - mpmath.mpf(y)) <= tol, (x, y)


def test_every_op_has_a_truth():
    ops = {spec.name for spec in cases_on_lstm.OPS}
    assert set(T.TRUTH) == ops


def test_cumax_and_master_gates_of_the_posts_softmax():
    a = _mp.log(mp([1, 1, 2]) / 4)                        # softmax = [1/4, 1/4, 1/2]
    close(T.cumax(a), [0.25, 0.5, 1])
    f, i_su = T.master_gates(a, a)
    close(f, [0.25, 0.5, 1])
    close(i_su, [1, 0.75, 0.5])
    _, i_paper = T.master_gates(a, a, master_input="paper")
    close(i_paper, [0.75, 0.5, 0])                        # paper ĩ_k = su ĩ_{k+1}, last 0
    f3, _ = T.master_gates(a, a, chunk=2)
    close(f3, [0.25, 0.25, 0.5, 0.5, 1, 1])               # each level repeated C times
    close(T.cumax(np.stack([a, a]), axis=0), [[0.5] * 3, [1] * 3])   # two equal logits per column


def test_hard_gates_and_partitioned_update_by_hand():
    f, i = T.hard_master_gates(np.array([1]), np.array([2]), levels=4)
    close(f, [[0, 1, 1, 1]])
    close(i, [[1, 1, 1, 0]])
    fb, ib = T.hard_master_gates(np.array([2]), np.array([3]), levels=4, base=1)
    close(fb, f)
    close(ib, i)
    cp, ch = mp([[1, 2, 3, 4]]), mp([[10, 20, 30, 40]])
    ff, ii = mp([[0.5] * 4]), mp([[0.25] * 4])
    # d_f = 1 ≤ d_i = 2: ĉ below 1, f c + i ĉ on [1, 2], c above 2
    close(T.partitioned_update(cp, ch, ff, ii, np.array([1]), np.array([2])), [[10, 6, 9, 4]])
    # d_f = 3 > d_i = 0: ĉ at 0, empty (0) on 1..2, c from 3
    close(T.partitioned_update(cp, ch, ff, ii, np.array([3]), np.array([0])), [[10, 0, 0, 4]])
    # the unified update with the hard gates gives the same
    for df, di in [(1, 2), (3, 0), (0, 3), (2, 2)]:
        f, i = T.hard_master_gates(np.array([df]), np.array([di]), levels=4)
        close(T.cell_update(cp, ch, ff, ii, f, i), T.partitioned_update(cp, ch, ff, ii, np.array([df]),
                                                                      np.array([di])))


def test_soft_level_and_distances_by_hand():
    f = mp([0.25, 0.5, 1.0])
    close(T.soft_level(f, base=1), [2.25])                # 1/4 + 2/4 + 3/2
    close(T.soft_level(f), [1.25])
    close(T.distance(f), [1 - mpmath.mpf(1.75) / 3])
    close(T.distance_in(mp([1.0, 0.5, 0.25])), [mpmath.mpf(1.75) / 3])


def _plain_lstm(x, h, c, W, U, b, N):
    z = x @ W + h @ U + b
    sig = lambda v: 1 / (1 + np.exp(-v))                 # noqa: E731
    f, i, o, g = (z[:, 2 + k * N:2 + (k + 1) * N] for k in range(4))
    c_new = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c_new), c_new


def test_one_level_su_cell_is_a_plain_lstm_and_paper_never_writes(rng):
    B, D, N = 2, 3, 2
    x, h, c = rng.standard_normal((B, D)), rng.standard_normal((B, N)), rng.standard_normal((B, N))
    W, U, b = rng.standard_normal((D, 2 + 4 * N)), rng.standard_normal((N, 2 + 4 * N)), rng.standard_normal(2 + 4 * N)
    h1, c1, fm, im = T.cell(mp(x), mp(h), mp(c), mp(W), mp(U), mp(b), levels=1)
    he, ce = _plain_lstm(x, h, c, W, U, b, N)
    np.testing.assert_allclose(_mp.to_float(h1), he, rtol=1e-14)
    np.testing.assert_allclose(_mp.to_float(c1), ce, rtol=1e-14)
    close(fm, np.ones((B, 1)))
    close(im, np.ones((B, 1)))
    _, c2, _, im2 = T.cell(mp(x), mp(h), mp(c), mp(W), mp(U), mp(b), levels=1, master_input="paper")
    close(c2, mp(c))
    close(im2, np.zeros((B, 1)))


def _official_by_hand(W, U, b, L, N):
    """The official rows [ĩ | f̃ | o | ĉ | i | f] from canonical columns [f̃ | ĩ | f | i | o | ĉ]."""
    cols = {"fm": slice(0, L), "im": slice(L, 2 * L)}
    for k, g in enumerate("fioc"):
        cols[g] = slice(2 * L + k * N, 2 * L + (k + 1) * N)
    order = ["im", "fm", "o", "c", "i", "f"]
    perm = np.concatenate([np.arange(W.shape[1])[cols[g]] for g in order])
    return W[:, perm].T, 0.5 * b[perm], U[:, perm].T, 0.5 * b[perm]   # halves: exact


@pytest.mark.parametrize("master_input", ["su", "paper"])
def test_official_layout_agrees_with_the_canonical_one(rng, master_input):
    B, T_, D, N, L = 2, 3, 3, 4, 2
    width = 2 * L + 4 * N
    x, h0, c0 = rng.standard_normal((B, T_, D)), rng.standard_normal((B, N)), rng.standard_normal((B, N))
    W, U, b = rng.standard_normal((D, width)), rng.standard_normal((N, width)), rng.standard_normal(width)
    W_ih, b_ih, W_hh, b_hh = _official_by_hand(W, U, b, L, N)
    su = T.layer(mp(x), mp(h0), mp(c0), mp(W), mp(U), mp(b), levels=L, master_input=master_input)
    off = T.layer_official(mp(x), mp(h0), mp(c0), mp(W_ih), mp(b_ih), mp(W_hh), mp(b_hh), chunk=2,
                           master_input=master_input)
    for a, o in zip(su, off):
        close(a, o, tol=1e-30)
    # the layer's first step is the cell
    cell = T.cell(mp(x[:, 0]), mp(h0), mp(c0), mp(W), mp(U), mp(b), levels=L, master_input=master_input)
    for a, o in zip(cell, su[:4]):
        close(a, o[:, 0])
    # distance = 1 − mean f̃, distance_in = mean ĩ
    close(su[4], T.distance(su[2]))
    close(su[5], T.distance_in(su[3]))


def test_dropconnect_conventions(rng):
    B, T_, D, N, L = 1, 2, 3, 2, 1
    width = 2 * L + 4 * N
    x, h0, c0 = rng.standard_normal((B, T_, D)), rng.standard_normal((B, N)), rng.standard_normal((B, N))
    W, U, b = rng.standard_normal((D, width)), rng.standard_normal((N, width)), rng.standard_normal(width)
    kW, kU = rng.random(W.shape) < 0.6, rng.random(U.shape) < 0.6
    inv = T.layer_dropconnect(mp(x), mp(h0), mp(c0), mp(W), mp(U), mp(b), kW, kU, levels=L,
                              dropconnect="inverted", dropconnect_p=0.25)
    ref = T.layer(mp(x), mp(h0), mp(c0), mp(W * kW) / mpmath.mpf(0.75), mp(U * kU) / mpmath.mpf(0.75),
                  mp(b), levels=L)
    for a, o in zip(inv, ref):
        close(a, o, tol=1e-30)
    off = T.layer_dropconnect(mp(x), mp(h0), mp(c0), mp(W), mp(U), mp(b), kW, kU, levels=L,
                              dropconnect="official", dropconnect_p=0.25)
    ref = T.layer(mp(x), mp(h0), mp(c0), mp(W * kW), mp(U * kU), mp(b), levels=L)
    for a, o in zip(off, ref):
        close(a, o, tol=1e-30)
    # evaluation in the official convention: U × (1 − p), W untouched
    ev = T.cell(mp(x[:, 0]), mp(h0), mp(c0), mp(W), mp(U), mp(b), levels=L, dropconnect="official",
                dropconnect_p=0.25)
    ref = T.cell(mp(x[:, 0]), mp(h0), mp(c0), mp(W), mp(U) * mpmath.mpf(0.75), mp(b), levels=L)
    for a, o in zip(ev, ref):
        close(a, o, tol=1e-30)


def test_stack_is_two_layers_with_inverted_dropout(rng):
    B, T_, D, N0, L0, N1, L1 = 2, 2, 3, 2, 1, 3, 3
    x = rng.standard_normal((B, T_, D))
    p0 = [rng.standard_normal(s) for s in ((D, 2 * L0 + 4 * N0), (N0, 2 * L0 + 4 * N0), (2 * L0 + 4 * N0,))]
    p1 = [rng.standard_normal(s) for s in ((N0, 2 * L1 + 4 * N1), (N1, 2 * L1 + 4 * N1), (2 * L1 + 4 * N1,))]
    keep = np.array([[True, False], [True, True]])
    h, d, d_in = T.stack2(mp(x), *map(mp, p0), *map(mp, p1), keep, levels=[L0, L1], dropout_p=0.5)
    z0, z1 = np.zeros((B, N0)), np.zeros((B, N1))
    out0 = T.layer(mp(x), mp(z0), mp(z0), *map(mp, p0), levels=L0)
    inp = np.where(keep[:, None, :], out0[0], 0) * 2
    out1 = T.layer(inp, mp(z1), mp(z1), *map(mp, p1), levels=L1)
    close(h, out1[0])
    close(d, np.stack([out0[4], out1[4]]))
    close(d_in, np.stack([out0[5], out1[5]]))


def test_trees_and_f1_by_hand():
    br, spans = T.induced_tree(mp([0.5, 0.1, 0.6, 0.2, 0.9]), np.array(["苹果", "的", "颜色", "是", "什么"]))
    assert str(br) == "(((苹果 的) (颜色 是)) 什么)"
    assert spans.tolist() == [[0, 2], [0, 4], [2, 4]]
    br, spans = T.induced_tree(mp([0.9, 0.6, 0.3, 0.1]), np.array(["爱", "真的", "需要", "勇气"]))
    assert str(br) == "(爱 (真的 (需要 勇气)))"
    br, _ = T.induced_tree(mp([0.5, 0.5, 0.5]), np.array(["a", "b", "c"]))
    assert str(br) == "(a (b c))"                         # ties: the first index
    # left- vs right-branching over 5 tokens: spans {(0,2),(0,3),(0,4)} vs {(1,5),(2,5),(3,5)}
    P, R, F = T.tree_f1(mp([0.1, 0.2, 0.3, 0.4, 0.5]), mp([0.5, 0.4, 0.3, 0.2, 0.1]))
    assert (P[()], R[()], F[()]) == (0, 0, 0)
    # ((a b) (c d)) vs (a (b (c d))): spans {(0,2),(2,4)} vs {(1,4),(2,4)}: P = R = F = 1/2
    P, R, F = T.tree_f1(mp([0.1, 0.05, 0.9, 0.2]), mp([0.9, 0.8, 0.1, 0.05]))
    assert (P[()], R[()], F[()]) == (Fraction(1, 2),) * 3
    P, R, F = T.tree_f1(mp([0.1, 0.2]), mp([0.2, 0.1]))   # no span on either side
    assert (P[()], R[()], F[()]) == (1, 1, 1)


def _phi(fn, args, cots, **kw):
    outs = fn(*args, **kw)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return sum(mpmath.fsum(mpmath.mpf(float(u)) * o for u, o in zip(c.reshape(-1), np.asarray(out).reshape(-1)))
               for c, out in zip(cots, outs))


@pytest.mark.parametrize("master_input", ["su", "paper"])
def test_exact_vjps_match_central_differences(rng, master_input):
    a_f, a_i = mp(rng.standard_normal((2, 3))), mp(rng.standard_normal((2, 3)))
    u, w = rng.standard_normal((2, 6)), rng.standard_normal((2, 6))
    g = T.master_gates_grad(a_f, a_i, {"f_master": u, "i_master": w}, master_input=master_input, chunk=2)
    h = mpmath.mpf(10) ** -15
    for name, arr in (("a_f", a_f), ("a_i", a_i)):
        for idx in np.ndindex(arr.shape):
            orig = arr[idx]
            arr[idx] = orig + h
            fp = _phi(T.master_gates, (a_f, a_i), (u, w), master_input=master_input, chunk=2)
            arr[idx] = orig - h
            fm = _phi(T.master_gates, (a_f, a_i), (u, w), master_input=master_input, chunk=2)
            arr[idx] = orig
            assert abs((fp - fm) / (2 * h) - g[name][idx]) < 1e-25
    a = mp(rng.standard_normal((3, 4)))
    u = rng.standard_normal((3, 4))
    g = T.cumax_grad(a, {"out": u}, axis=0)["a"]
    for idx in np.ndindex(a.shape):
        orig = a[idx]
        a[idx] = orig + h
        fp = _phi(T.cumax, (a,), (u,), axis=0)
        a[idx] = orig - h
        fm = _phi(T.cumax, (a,), (u,), axis=0)
        a[idx] = orig
        assert abs((fp - fm) / (2 * h) - g[idx]) < 1e-25


def test_saturated_vjp_keeps_the_tiny_entries():
    # p = softmax([−50, 40, −30]) ≈ (e^{−90}, 1, e^{−70}); ∂φ/∂a_0 = p_0 Σ_j p_j (G_0 − G_j)
    a = mp([[-50.0, 40.0, -30.0]])
    u = np.array([[1.0, 0.0, 0.0]])                       # φ = f̃_0 = p_0, ∂p_0/∂a_0 = p_0 (1 − p_0)
    g = T.cumax_grad(a, {"out": u})["a"]
    p0 = mpmath.exp(-90) / (mpmath.exp(-90) + 1 + mpmath.exp(-70))
    assert abs(g[0, 0] / (p0 * (1 - p0)) - 1) < mpmath.mpf(10) ** -40


# ---------------------------------------------------------------------------
# Certification rejects a wrong table
# ---------------------------------------------------------------------------

def _certify(op, case_name, change=None):
    from kexue_ref.certify import certify_record
    spec = registry.get_op(op)
    case = next(c for c in registry.cases(spec, ("quick", "full", "edge")) if c.defn.name == case_name)
    rec = tables.case_record(case)
    if change:
        change(rec)
    return certify_record(case, rec)


def _bump(key, index, ulps=8):
    def change(rec):
        a = rec[key].copy()
        v = a[index]
        a[index] = v + ulps * np.spacing(max(abs(v), np.max(np.abs(a))))
        rec[key] = a
    return change


@pytest.mark.parametrize("op, case, member, index", [
    ("on_lstm.master_gates", "su-B2-L5", "output.f_master", (0, 1)),
    ("on_lstm.master_gates", "paper-B2-L5", "grad.a_i", (1, 2)),
    ("on_lstm.cell_update", "B2-N6-L3", "output.out", (1, 3)),
    ("on_lstm.cell", "su-B2-N4-L2", "output.h", (0, 1)),
    ("on_lstm.layer_official", "paper-T1", "output.distance", (1, 0)),
    ("on_lstm.soft_level", "B3-L5", "output.out", (2,)),
])
def test_certification_accepts_the_oracle_and_rejects_a_bump(op, case, member, index):
    good = _certify(op, case)
    assert all(c.passed for c in good.values()), [c.line() for c in good.values() if not c.passed]
    bad = _certify(op, case, _bump(member, index))
    assert not bad[member].passed


def test_certification_rejects_a_wrong_tree_and_a_wrong_f1():
    def swap(rec):
        s = rec["output.spans"].copy()
        s[0, 1] += 1
        rec["output.spans"] = s
    assert not _certify("on_lstm.induced_tree", "post-apple", swap)["output.spans"].passed
    assert not _certify("on_lstm.tree_f1", "T8-random", _bump("output.f1", ()))["output.f1"].passed


def test_certification_rejects_a_layer_gradient_off_by_a_few_ulps():
    bad = _certify("on_lstm.layer", "su-T1", _bump("grad.W", (1, 3), ulps=64))
    assert not bad["grad.W"].passed
