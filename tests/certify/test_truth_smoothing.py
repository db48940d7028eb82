"""The multiprecision truth of function smoothing (``kexue_ref/certify/truth_smoothing.py``).

Expected values come from the post (https://kexue.fm/archives/6620: 3.7336, the soft-k-max
counterexample), from exact small cases and from the bounds and identities of
``docs/smoothing.md``, never from the float64 code; the last tests check that certification
rejects wrong tables.
"""
import numpy as onp
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import tables  # noqa: E402
from ._util import EPS, mp, case_named as _case  # noqa: E402
from kexue_ref.certify import truth_smoothing as ts  # noqa: E402

X_POST = [2.0, 1.0, 4.0, 5.0, 3.0]


def close(a, b, rel=mpmath.mpf(10) ** -50):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), mpmath.mpf(10) ** -300)


def test_every_op_has_a_truth():
    from kexue_ref.cases import smoothing
    assert set(ts.TRUTH) == {spec.name for spec in smoothing.OPS}


def test_post_numbers():
    x = mp(X_POST)
    # the post's smooth max for K = 1, 10 and its 1-based soft argmax 3.7336
    assert round(float(ts.smooth_max(x)[()]), 7) == 5.4519144
    assert round(float(ts.smooth_max(x, scale=10.0)[()]), 7) == 5.0000045
    assert round(float(ts.soft_argmax(x, base=1)), 4) == 3.7336
    assert close(ts.soft_argmax(x, base=1), ts.soft_argmax(x) + 1)
    # the counterexample of posts 6620 / 10373: the first component exceeds 1
    p = ts.soft_kmax(mp([4.5, 2.8, 2.3]), 2)
    assert [round(float(v), 6) for v in p] == [1.166863, 0.50845, 0.324687]
    assert close(mpmath.fsum(p), 2)


def test_smooth_max_min_bounds_and_mirror():
    x = mp([[0.3, -1.7, 2.2, 0.9], [5.0, 5.0, 5.0, 5.0]])
    for K in (0.5, 3.0):
        sm = ts.smooth_max(x, scale=K)
        for b in range(2):
            hi = max(x[b])
            # max ≤ (1/K) LSE(Kx) ≤ max + log(n)/K; equality on the right for constant rows
            assert hi <= sm[b] <= hi + mpmath.log(4) / K
        assert close(sm[1], 5 + mpmath.log(4) / K)
        mn = ts.smooth_min(x, scale=K)
        assert all(close(a, -b) for a, b in zip(mn, ts.smooth_max(-x, scale=K)))
    # −inf entries carry no mass; an all −inf row is −inf (D4); +inf is ignored by the min
    y = mp([[2.0, -onp.inf, 1.0], [-onp.inf, -onp.inf, -onp.inf]])
    s = ts.smooth_max(y, scale=2.0)
    assert close(s[0], mpmath.log(mpmath.exp(4) + mpmath.exp(2)) / 2) and s[1] == mpmath.ninf
    assert close(ts.smooth_min(mp([[2.0, onp.inf, 1.0]]), scale=2.0)[0],
                 -mpmath.log(mpmath.exp(-4) + mpmath.exp(-2)) / 2)


def test_soft_onehot_and_argmax():
    x = mp([[0.1, 0.7, -0.4], [1.0, 1.0, 1.0]])
    p = ts.soft_onehot(x, scale=3.0)
    assert close(mpmath.fsum(p[0]), 1) and close(p[0, 1] / p[0, 0], mpmath.exp(3 * (x[0, 1] - x[0, 0])))
    # constant rows: uniform weights, argmax (n − 1)/2 + base
    assert close(ts.soft_argmax(x, scale=3.0)[1], 1) and close(ts.soft_argmax(x, base=1)[1], 2)
    # an all −inf slice: one-hot 0 and argmax 0, with either base (D4)
    y = mp([[-onp.inf, -onp.inf], [0.0, -onp.inf]])
    assert all(v == 0 for v in ts.soft_onehot(y)[0])
    assert ts.soft_argmax(y, base=1)[0] == 0 and close(ts.soft_argmax(y, base=1)[1], 1)


def test_metrics_exact_cases():
    # one-hot p equals the hard accuracy: 3 of 5
    p = mp(onp.eye(4)[[0, 2, 1, 3, 3]])
    assert ts.smooth_accuracy(p, onp.array([0, 1, 1, 3, 2])) == mpmath.mpf(3) / 5
    # hard p, eps = 0: TP = 2, FP = 1, FN = 1 → F1 = 4/6, precision = recall = 2/3
    ph, th = mp([1.0, 1.0, 0.0, 0.0, 1.0]), mp([1.0, 0.0, 1.0, 0.0, 1.0])
    for fn in (ts.smooth_f1, ts.smooth_precision, ts.smooth_recall):
        assert close(fn(ph, th, eps=0.0), mpmath.mpf(2) / 3)
    # eps is the stored double 1e-7, added exactly
    e = mpmath.mpf(1e-7)
    assert close(ts.smooth_precision(mp([0.25]), mp([1.0])), mpmath.mpf(0.25) / (mpmath.mpf(0.25) + e))
    # macro: the mean of the per-column scores
    P, T = mp([[0.5, 1.0], [0.25, 0.0]]), mp([[1.0, 1.0], [0.0, 1.0]])
    col0 = 2 * mpmath.mpf(0.5) / (1 + mpmath.mpf(0.75) + e)
    col1 = 2 * mpmath.mpf(1) / (2 + 1 + e)
    assert close(ts.smooth_f1(P, T, average="macro"), (col0 + col1) / 2)


def test_elementwise_smoothings():
    x = mp([-3.0, 0.0, 0.5, 40.0])
    K = 2.0
    a, r = ts.smooth_abs(x, scale=K), ts.soft_relu(x, scale=K)
    assert close(a[1], mpmath.log(2) / K) and close(r[1], mpmath.log(2) / K)
    for i in range(4):
        t = mpmath.log1p(mpmath.exp(-K * abs(x[i]))) / K
        # |x| ≈ |x| + log(1 + e^{−2K|x|})/K; relu ≈ max(x, 0) + log(1 + e^{−K|x|})/K
        assert close(a[i], abs(x[i]) + mpmath.log1p(mpmath.exp(-2 * K * abs(x[i]))) / K)
        assert close(r[i], max(x[i], 0) + t)


def test_soft_kmax_properties():
    x = mp([[0.3, -1.2, 2.0, 0.9, 0.0, 1.4]])
    for k in (1, 3, 6):
        p = ts.soft_kmax(x, k)
        assert close(mpmath.fsum(p[0]), k)
    # k = 1 is the softmax of x − min x = softmax of x
    assert all(close(a, b) for a, b in zip(ts.soft_kmax(x, 1)[0], ts.soft_onehot(x)[0]))
    # shift invariance (through the min), along axis 0 as well
    assert all(close(a, b, rel=mpmath.mpf(10) ** -45)
               for a, b in zip(ts.soft_kmax(x + 7, 3)[0], ts.soft_kmax(x, 3)[0]))
    assert all(close(a, b) for a, b in zip(ts.soft_kmax(x.T, 2, axis=0)[:, 0], ts.soft_kmax(x, 2)[0]))


@pytest.mark.parametrize("op, params", [
    ("smoothing.smooth_max", {"scale": 1.5}), ("smoothing.smooth_min", {"scale": 0.5}),
    ("smoothing.soft_onehot", {"scale": 2.0}), ("smoothing.soft_argmax", {"scale": 2.0, "base": 1}),
    ("smoothing.soft_kmax", {"k": 2}), ("smoothing.soft_kmax", {"k": 4}),
])
def test_exact_gradients_match_differences_of_the_truth(op, params):
    x = mp([[0.4, -1.1, 2.3, 0.05], [1.5, 0.2, -0.7, 1.1]])
    u = onp.array([[0.3, -1.0, 0.8, 0.1], [1.2, 0.5, -0.4, -0.9]])
    fn = ts.TRUTH[op]
    reduces = op in ("smoothing.smooth_max", "smoothing.smooth_min", "smoothing.soft_argmax")
    cot = u[:, 0] if reduces else u
    g = ts.GRADS[op](x, cotangents={"out": cot}, **params)["x"]
    for idx in onp.ndindex(x.shape):
        def phi(h, idx=idx):
            y = x.copy()
            y[idx] = y[idx] + h
            out = onp.asarray(fn(y, **params), dtype=object)
            return mpmath.fsum(a * b for a, b in zip(out.reshape(-1), cot.reshape(-1)))
        assert close(g[idx], mpmath.diff(phi, 0), rel=mpmath.mpf(10) ** -30)


def test_soft_kmax_gradient_resolves_tiny_entries():
    # sharp scores: entries of size e^{−100}·… must keep their relative digits
    x = mp([200.0, 100.0, 400.0, 500.0, 300.0])
    u = onp.array([1.0, 1.0, 0.0, 0.0, 0.0])
    g = ts.GRADS["smoothing.soft_kmax"](x, cotangents={"out": u}, k=1)["x"]
    # k = 1: p = softmax(x − 200 + ...) and d(p_0 + p_1)/dx_0 = p_0 (1 − p_0 − p_1)
    p = ts.soft_onehot(x)
    assert close(g[0], p[0] * (1 - p[0] - p[1]), rel=mpmath.mpf(10) ** -40)
    assert g[0] > 0 and g[0] < mpmath.mpf(10) ** -80


# ---------------------------------------------------------------------------
# Certification rejects wrong tables
# ---------------------------------------------------------------------------

certify = pytest.importorskip("kexue_ref.certify")


@pytest.mark.parametrize("op, name, member, idx", [
    ("smoothing.smooth_max", "post-x-K1", "output.out", ()),
    ("smoothing.smooth_min", "posinf-entries", "grad.x", (0, 0)),
    ("smoothing.soft_onehot", "neginf-entries", "output.out", (0, 2)),
    ("smoothing.soft_argmax", "post-x-K1-base1", "output.out", ()),
    ("smoothing.smooth_accuracy", "B4-K3", "grad.p", (1, 1)),
    ("smoothing.smooth_f1", "macro-B6-K3", "output.out", ()),
    ("smoothing.smooth_precision", "micro-B8", "grad.p", (3,)),
    ("smoothing.smooth_recall", "micro-2d", "output.out", ()),
    ("smoothing.soft_kmax", "counterexample-k2", "grad.x", (1,)),
    ("smoothing.smooth_abs", "extreme", "output.out", (2,)),
    ("smoothing.soft_relu", "n7-K1", "grad.x", (4,)),
])
def test_certifier_rejects_a_few_ulps(op, name, member, idx):
    case = _case(op, name)
    rec = tables.case_record(case)
    assert all(c.passed for c in certify.certify_record(case, rec).values())
    scale = tables.natural_scales(case, rec)[member]["scale"]
    bad = dict(rec)
    bad[member] = onp.array(rec[member], dtype=float, copy=True)
    bad[member][idx] += 6 * EPS * scale
    certs = certify.certify_record(case, bad)
    assert not certs[member].passed
    assert all(c.passed for k, c in certs.items() if k != member)


def test_certifier_rejects_the_wrong_formula():
    # a soft argmax computed 1-based where the case asks for 0-based positions
    case = _case("smoothing.soft_argmax", "post-x-K1")
    rec = tables.case_record(case)
    bad = dict(rec)
    bad["output.out"] = rec["output.out"] + 1.0
    assert not certify.certify_record(case, bad)["output.out"].passed
