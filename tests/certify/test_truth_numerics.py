"""The multiprecision truth of the stable primitives (``kexue_ref/certify/truth_numerics.py``).

Expected values come from the mathematics (exact small cases, identities, limits, series),
never from the float64 code; the last tests check that certification rejects wrong tables.
"""
import dataclasses

import numpy as onp
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import tables  # noqa: E402
from ._util import mp, case_named as _case, assert_bump_is_rejected  # noqa: E402
from kexue_ref.certify import truth_numerics as tn  # noqa: E402



def close(a, b, rel=mpmath.mpf(10) ** -50):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), mpmath.mpf(10) ** -300)


def test_every_op_has_a_truth():
    from kexue_ref.cases import numerics
    assert set(tn.TRUTH) == {spec.name for spec in numerics.OPS}


def test_logsumexp_exact_cases():
    # log(1 + 3) = log 4; log(2 e^1000) = 1000 + log 2 (no overflow in mpf)
    assert close(tn.logsumexp(mp([0.0, onp.log(3.0)]))[()], mpmath.log(1 + mpmath.exp(mpmath.mpf(onp.log(3.0)))))
    assert close(tn.logsumexp(mp([1000.0, 1000.0]))[()], 1000 + mpmath.log(2))
    # an all −inf slice has no mass (D4); keepdims keeps the axis
    out = tn.logsumexp(mp([[0.5, -onp.inf], [-onp.inf, -onp.inf]]), axis=-1, keepdims=True)
    assert out.shape == (2, 1) and out[1, 0] == mpmath.ninf
    assert close(out[0, 0], mpmath.mpf(0.5))


def test_logsumexp_tiny_tail_keeps_its_digits():
    # LSE(0, −200) = log(1 + e^{−200}) = e^{−200} − e^{−400}/2 + ...
    t = mpmath.exp(-200)
    assert close(tn.logsumexp(mp([0.0, -200.0]))[()], t - t ** 2 / 2 + t ** 3 / 3, rel=mpmath.mpf(10) ** -45)


def test_softmax_identities_and_d4():
    x = mp([[0.3, -1.2, 2.0, 0.0], [-onp.inf] * 4])
    p = tn.softmax(x)
    assert close(mpmath.fsum(p[0]), 1)
    assert all(v == 0 for v in p[1])
    # softmax(0, log 3) = (1/4, 3/4)
    q = tn.softmax(mp([0.0, onp.log(3.0)]))
    three = mpmath.exp(mpmath.mpf(onp.log(3.0)))
    assert close(q[0], 1 / (1 + three)) and close(q[1], three / (1 + three))
    # axis 0 equals the transpose along the last axis
    y = mp(onp.arange(6.0).reshape(2, 3) / 7)
    assert all(close(a, b) for a, b in zip(tn.softmax(y, axis=0).T.reshape(-1), tn.softmax(y.T).reshape(-1)))


def test_log_softmax_winner_is_tiny_not_zero():
    # log P_0 = −log(1 + e^{−140}) ≈ −e^{−140} ≈ −1.6e−61 (the float64 value must not be 0)
    out = tn.log_softmax(mp([0.0, -140.0]))
    t = mpmath.exp(-140)
    assert close(out[0], -(t - t ** 2 / 2), rel=mpmath.mpf(10) ** -45)
    assert close(out[1], -140 - mpmath.log1p(t))
    # exp(log softmax) = softmax; −inf entries stay −inf, an all −inf slice is all −inf
    x = mp([[1.0, -onp.inf, 0.25], [-onp.inf, -onp.inf, -onp.inf]])
    ls, p = tn.log_softmax(x), tn.softmax(x)
    assert close(mpmath.exp(ls[0, 0]), p[0, 0]) and ls[0, 1] == mpmath.ninf
    assert all(v == mpmath.ninf for v in ls[1])


def test_sigmoid_family_identities():
    x = mp([-800.0, -3.5, 0.0, 2.25, 800.0])
    s, ls, sp = tn.sigmoid(x), tn.log_sigmoid(x), tn.softplus(x)
    assert s[2] == mpmath.mpf(0.5) and close(sp[2], mpmath.log(2))
    for i in range(5):
        # σ(x) + σ(−x) = 1; softplus(x) − softplus(−x) = x; log σ(x) = −softplus(−x)
        assert close(s[i] + tn.sigmoid(-x)[i], 1)
        assert close(sp[i] - tn.softplus(-x)[i], x[i], rel=mpmath.mpf(10) ** -45)
        assert close(ls[i], -tn.softplus(-x)[i])
    # softplus(−800) = log(1 + e^{−800}) ≈ e^{−800} to relative e^{−800}
    assert close(sp[0], mpmath.exp(-800))


def test_masked_softmax_exact_and_fill():
    x = mp([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = onp.array([[True, False, True], [False, False, False]])
    p = tn.masked_softmax(x, mask)
    e1, e3 = mpmath.e, mpmath.exp(3)
    assert close(p[0, 0], e1 / (e1 + e3)) and p[0, 1] == 0
    assert all(v == 0 for v in p[1])                                  # D4: no mass
    q = tn.masked_softmax(x, mask, fill=-1e9)
    assert all(close(v, mpmath.mpf(1) / 3) for v in q[1])             # replacement: uniform
    assert q[0, 1] > 0 and q[0, 1] < mpmath.mpf(10) ** -400000000     # e^{−1e9} relative weight
    # a mask that broadcasts along the rows
    r = tn.masked_softmax(mp(onp.ones((2, 4))), onp.array([True, False, True, False]))
    assert all(close(v, 0.5) for v in r[:, ::2].reshape(-1)) and all(v == 0 for v in r[:, 1::2].reshape(-1))


@pytest.mark.parametrize("op", ["numerics.logsumexp", "numerics.softmax", "numerics.log_softmax"])
def test_exact_gradients_match_differences_of_the_truth(op):
    x = mp([[0.4, -1.1, 2.3], [1.5, 0.2, -0.7]])
    u = onp.array([[0.3, -1.0, 0.8], [1.2, 0.5, -0.4]])
    fn = tn.TRUTH[op]
    cot = u[:, 0] if op == "numerics.logsumexp" else u
    g = tn.GRADS[op](x, cotangents={"out": cot})["x"]
    for idx in onp.ndindex(x.shape):
        def phi(h, idx=idx):
            y = x.copy()
            y[idx] = y[idx] + h
            return mpmath.fsum(a * b for a, b in zip(onp.asarray(fn(y)).reshape(-1), cot.reshape(-1)))
        assert close(g[idx], mpmath.diff(phi, 0), rel=mpmath.mpf(10) ** -30)


def test_gradients_follow_d4_on_neginf():
    x = mp([[0.5, -onp.inf, 2.0], [-onp.inf, -onp.inf, -onp.inf]])
    u = onp.array([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    for op in ("numerics.softmax", "numerics.log_softmax"):
        g = tn.GRADS[op](x, cotangents={"out": u})["x"]
        assert g[0, 1] == 0 and all(v == 0 for v in g[1])
    g = tn.GRADS["numerics.logsumexp"](x, cotangents={"out": onp.array([1.5, 0.0])})["x"]
    assert g[0, 1] == 0 and all(v == 0 for v in g[1]) and close(g[0, 0] + g[0, 2], 1.5)


# ---------------------------------------------------------------------------
# Certification rejects wrong tables
# ---------------------------------------------------------------------------

certify = pytest.importorskip("kexue_ref.certify")


@pytest.mark.parametrize("op, name, member, idx", [
    ("numerics.softmax", "n5", "output.out", (2,)),
    ("numerics.softmax", "B3-n4-axis0", "grad.x", (1, 2)),
    ("numerics.logsumexp", "B3-n4-axis0", "output.out", (3,)),
    ("numerics.log_softmax", "all-neginf-row", "grad.x", (0, 2)),
    ("numerics.sigmoid", "n6", "grad.x", (1,)),
    ("numerics.softplus", "extreme", "output.out", (2,)),
    ("numerics.masked_softmax", "B1-T4", "output.out", (0, 2, 2)),
])
def test_certifier_rejects_a_few_ulps(op, name, member, idx):
    assert_bump_is_rejected(op, name, member, idx)


def test_certificate_measures_the_zero_winner_of_log_softmax():
    # The old float64 form (x − m) − log Σ e^{x − m} returned exactly 0 for the winner, where
    # the truth is −e^{−140}·(1 + ...): within eps·S of the row (S ≈ 141), so the goal bound
    # accepts it, but the certificate records it as ~1e16 ulps; the current oracle is within 2.
    base = _case("numerics.log_softmax", "n5")
    case = dataclasses.replace(base, inputs={"x": onp.array([0.0, -140.0, -141.0])})
    rec = tables.case_record(case)
    assert rec["output.out"][0] < 0
    good = certify.certify_record(case, rec)["output.out"]
    assert good.passed and good.max_ulps <= 2
    bad = dict(rec)
    bad["output.out"] = rec["output.out"].copy()
    bad["output.out"][0] = 0.0
    cert = certify.certify_record(case, bad)["output.out"]
    assert cert.max_ulps > 1e15 and cert.worst == (0,)
