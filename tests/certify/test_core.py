"""The certifier is judged: exact error arithmetic, the pass rule in both directions, the
precision it picks, its gradients, and that it rejects wrong tables and wrong truths."""
import math

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")

import autograd.numpy as anp  # noqa: E402

from kexue_ref import certify, registry, tables  # noqa: E402
from kexue_ref.certify import _mp  # noqa: E402
from kexue_ref.registry import CaseDef, OpSpec  # noqa: E402

EPS = 2.0 ** -52


# ---------------------------------------------------------------------------
# measure: ulps and eps·S computed exactly
# ---------------------------------------------------------------------------

def test_one_ulp_is_one_ulp():
    with mpmath.workdps(60):
        truth = _mp.mpf_array(np.array([1.0])) + mpmath.mpf(2) ** -52     # 1 + 2^-52 exactly
        m = certify.measure(np.array([1.0]), truth, scale=1.0)
    # |1 − (1 + 2^-52)| = 2^-52 = one ulp of the truth (which is the float 1 + 2^-52)
    assert m["max_ulps"] == 1.0 and m["max_eps_scale"] == 1.0 and m["passed"]


def test_three_ulps_fail_unless_the_scale_covers_them():
    with mpmath.workdps(60):
        t = mpmath.mpf(3) / 7
        stored = float(t) + 3 * float(np.spacing(float(t)))
        m = certify.measure(np.array([stored]), np.array([t], dtype=object), scale=float(t))
        assert not m["passed"] and 2.5 < m["max_ulps"] < 3.5 and m["worst"] == (0,)
        # the same error against a natural scale 16x the value: 3 ulps of 3/7 < eps·S
        m = certify.measure(np.array([stored]), np.array([t], dtype=object), scale=16 * float(t))
        assert m["passed"] and m["max_eps_scale"] < 1


def test_noise_around_zero_is_judged_against_the_scale():
    with mpmath.workdps(60):
        truth = np.array([mpmath.mpf(0), mpmath.mpf("1e-40")], dtype=object)
        stored = np.array([1e-17, 0.0])
        # 1e-17 next to an exact zero: infinitely many ulps, 0.045 eps at S = 1 → passes
        m = certify.measure(stored, truth, scale=1.0)
        assert m["passed"] and m["max_eps_scale"] == pytest.approx(1e-17 / EPS, rel=1e-12)
        # the same numbers with a natural scale of 1e-3: 45 eps·S → fails at entry 0
        m = certify.measure(stored, truth, scale=1e-3)
        assert not m["passed"] and m["worst"] == (0,)


def test_infinities_and_nan():
    with mpmath.workdps(60):
        huge = mpmath.mpf("1e400")                                 # rounds to +inf in float64
        assert certify.measure(np.array([np.inf]), np.array([huge], dtype=object), 1.0)["passed"]
        assert not certify.measure(np.array([-np.inf]), np.array([huge], dtype=object), 1.0)["passed"]
        assert not certify.measure(np.array([1.7e308]), np.array([huge], dtype=object), 1.0)["passed"]
        assert not certify.measure(np.array([np.nan]), np.array([mpmath.mpf(1)], dtype=object), 1.0)["passed"]


def test_rational_truths_are_exact():
    from fractions import Fraction
    third = np.array([Fraction(1, 3)], dtype=object)
    assert certify.measure(np.array([1 / 3]), third, 1.0)["max_ulps"] <= 0.5     # correctly rounded
    assert not certify.measure(np.array([0.3333333333333333 + 2 ** -53 * 3]), third, 1.0)["passed"]


# ---------------------------------------------------------------------------
# Synthetic ops with known truths: precision, gradients, rejection of wrong tables
# ---------------------------------------------------------------------------

def _cube_ref(x):
    return anp.sum(x ** 3, axis=-1)


def _cube_truth(x):
    return np.sum(x ** 3, axis=-1)


def _cancel_ref(x, y):
    # (x + y) − x: exactly y in real arithmetic
    return (x + y) - x


def _cancel_truth(x, y):
    return (x + y) - x


CUBE = OpSpec("synthetic.cube", _cube_ref, ("x",), ("x",),
              (CaseDef("n4", {"x": np.array([[0.5, -1.25, 2.0, 3.0]])}),), source="test")
CANCEL = OpSpec("synthetic.cancel", _cancel_ref, ("x", "y"), ("x", "y"),
                (CaseDef("huge", {"x": np.array([1e300]), "y": np.array([1.0])}),), source="test")


@pytest.fixture
def synthetic(monkeypatch):
    truth, grads, bounds = certify._load()
    truth = dict(truth, **{"synthetic.cube": _cube_truth, "synthetic.cancel": _cancel_truth})
    monkeypatch.setattr(certify, "_TRUTH", (truth, grads, bounds))
    return {s.name: registry._build(s, s.cases[0]) for s in (CUBE, CANCEL)}


def test_a_correct_table_passes_and_the_gradient_is_exact(synthetic):
    case = synthetic["synthetic.cube"]
    rec = tables.case_record(case)
    certs = certify.certify_record(case, rec)
    assert all(c.passed for c in certs.values()), [c.line() for c in certs.values()]
    # the differenced gradient of Σ x³ is u·3x², which the float64 VJP gets to within 1 ulp
    g, est = certify.truth_grads(case, rec, _cube_truth, 60)
    u = float(rec["cotangent.out"][0])
    with mpmath.workdps(60):
        for xi, gi in zip(rec["input.x"][0], g["x"][0]):
            exact = mpmath.mpf(u) * 3 * mpmath.mpf(xi) ** 2
            assert abs(gi - exact) <= mpmath.mpf(10) ** -30 * abs(exact)
    assert est < 1e-30


@pytest.mark.parametrize("member", ["output.out", "grad.x"])
def test_a_wrong_table_is_rejected_in_each_member(synthetic, member):
    case = synthetic["synthetic.cube"]
    rec = tables.case_record(case)
    scales = {k: v["scale"] for k, v in tables.natural_scales(case, rec).items()}
    rec[member] = rec[member].copy()
    rec[member].reshape(-1)[-1] += 4 * EPS * scales[member]        # 4 eps·S: over both bounds
    certs = certify.certify_record(case, rec, scales)
    assert not certs[member].passed and certs[member].max_eps_scale == pytest.approx(4, rel=0.3)
    others = [k for k in certs if k != member]
    assert all(certs[k].passed for k in others)


def test_a_wrong_truth_is_caught(synthetic, monkeypatch):
    case = synthetic["synthetic.cube"]
    rec = tables.case_record(case)
    truth, grads, bounds = certify._load()
    monkeypatch.setattr(certify, "_TRUTH", (dict(truth, **{"synthetic.cube": lambda x: np.sum(x ** 3, -1)
                                                            * (1 + mpmath.mpf(10) ** -14)}), grads, bounds))
    certs = certify.certify_record(case, rec)
    assert not certs["output.out"].passed and not certs["grad.x"].passed


def test_precision_grows_with_the_span_of_the_inputs(synthetic):
    """(1e300 + 1) − 1e300 = 1 needs ~300 digits; the certifier works at ≥ 350 and reports the
    float64 reference's 0 (it loses y entirely) as wrong."""
    case = synthetic["synthetic.cancel"]
    rec = tables.case_record(case)
    assert certify.working_precision(case, rec) >= 350
    outs, dps, digits = certify.truth_outputs(case, rec, _cancel_truth, certify.working_precision(case, rec))
    assert outs[0][0] == 1 and digits >= certify.BASE_DPS - 10
    assert float(rec["output.out"][0]) == 0.0           # float64 loses y entirely
    certs = certify.certify_record(case, rec)
    assert not certs["output.out"].passed               # and the certificate says so


def test_a_bound_override_applies_with_its_reason(synthetic, monkeypatch):
    case = synthetic["synthetic.cube"]
    truth, grads, bounds = certify._load()
    monkeypatch.setattr(certify, "_TRUTH", (truth, grads, dict(bounds, **{
        "synthetic.cube": {"ulps": 8, "eps_scale": 4, "reason": "test", "members": ["grad.x"]}})))
    assert certify.bound_for(case, "grad.x") == (8.0, 4.0, "test")
    assert certify.bound_for(case, "output.out") == (2.0, 1.0, "")


def test_exact_members_compare_exactly(monkeypatch):
    spec = OpSpec("synthetic.mask", lambda T: np.tril(np.ones((T, T), bool)), (), (),
                  (CaseDef("T3", {}, {"T": 3}),), source="test")
    case = registry._build(spec, spec.cases[0])
    truth, grads, bounds = certify._load()

    def lower(T):
        return np.array([[j <= i for j in range(T)] for i in range(T)])

    monkeypatch.setattr(certify, "_TRUTH", (dict(truth, **{"synthetic.mask": lower}), grads, bounds))
    rec = tables.case_record(case)
    assert certify.certify_record(case, rec)["output.out"].passed
    rec["output.out"] = rec["output.out"].copy()
    rec["output.out"][0, 2] = True
    cert = certify.certify_record(case, rec)["output.out"]
    assert not cert.passed and cert.exact and "(0, 2)" in cert.message


def test_goal_bound_is_the_published_one():
    assert certify.GOAL == {"ulps": 2.0, "eps_scale": 1.0}
    assert math.isclose(certify.EPS, EPS)
