"""Function smoothing (https://kexue.fm/archives/6620): the post's known values, the bounds
and limits stated in docs/smoothing.md, and the documented quirk of soft-k-max. Expected
values come from the math (hand calculations, identities, the post's numbers), never from the
code under test."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from kexue_ref import smoothing as sm

X = np.array([2.0, 1.0, 4.0, 5.0, 3.0])  # the post's example vector


# --- smooth max / min -------------------------------------------------------------------

@pytest.mark.parametrize("K, value, tol", [(1.0, 5.451914, 1e-6), (10.0, 5.0000045, 1e-7), (100.0, 5.0, 1e-7)])
def test_smooth_max_known_values(K, value, tol):
    # 5.451914 = log(e^2 + e + e^4 + e^5 + e^3) by hand
    assert np.log(np.exp(X).sum()) == pytest.approx(5.451914, abs=1e-6)
    assert float(sm.smooth_max(X, scale=K)) == pytest.approx(value, abs=tol)


@pytest.mark.parametrize("K", [0.01, 0.3, 1.0, 7.0, 1e3])
def test_smooth_max_bounds(rng, K):
    x = rng.normal(scale=4, size=(20, 9))
    s = sm.smooth_max(x, scale=K)
    # max(x) ≤ (1/K) LSE(Kx) ≤ max(x) + log(n)/K
    assert np.all(s >= x.max(-1) - 1e-12 * np.abs(x).max())
    assert np.all(s <= x.max(-1) + np.log(9) / K + 1e-12 * np.abs(x).max())


def test_smooth_max_limit_and_smooth_min_mirror(rng):
    x = rng.normal(size=6)
    errs = [abs(float(sm.smooth_max(x, scale=K)) - x.max()) for K in (1, 10, 100, 1000)]
    assert all(a >= b for a, b in zip(errs, errs[1:])) and errs[0] > errs[1] and errs[-1] < 1e-2
    np.testing.assert_allclose(sm.smooth_min(x, scale=3.0), -sm.smooth_max(-x, scale=3.0), rtol=1e-15)
    assert x.min() - np.log(6) / 3.0 <= float(sm.smooth_min(x, scale=3.0)) <= x.min()


def test_gradient_of_smooth_max_is_soft_onehot(rng):
    x = rng.normal(size=(3, 5))
    g = grad(lambda z: anp.sum(sm.smooth_max(z, scale=2.5)))(x)
    np.testing.assert_allclose(g, sm.soft_onehot(x, scale=2.5), rtol=1e-14)
    # and against a central difference on one entry
    e = np.zeros_like(x)
    e[1, 2] = 1e-6
    fd = (sm.smooth_max(x + e, 2.5).sum() - sm.smooth_max(x - e, 2.5).sum()) / 2e-6
    assert fd == pytest.approx(g[1, 2], rel=1e-7)


def test_neginf_entries_and_all_neginf_rows():
    x = np.array([[2.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    s = sm.smooth_max(x, scale=2.0)
    assert s[0] == pytest.approx(np.log(np.exp(4.0) + np.exp(2.0)) / 2, rel=1e-15)
    assert s[1] == -np.inf
    g = grad(lambda z: anp.sum(sm.smooth_max(z, 2.0) * np.array([1.0, 3.0])))(x)
    assert np.all(np.isfinite(g)) and np.all(g[1] == 0)
    assert np.all(sm.soft_onehot(x)[1] == 0)


def test_extreme_scores_do_not_overflow():
    x = np.array([1e4, -1e4, 1e4 - 1.0])
    assert float(sm.smooth_max(x)) == pytest.approx(1e4 + np.log1p(np.exp(-1.0)), rel=1e-15)
    np.testing.assert_allclose(sm.soft_onehot(x), [1 / (1 + np.exp(-1)), 0, np.exp(-1) / (1 + np.exp(-1))],
                               rtol=1e-14)


# --- soft one-hot and soft argmax --------------------------------------------------------

def test_soft_onehot_limit_is_onehot_of_argmax():
    np.testing.assert_allclose(sm.soft_onehot(X, scale=60.0), [0, 0, 0, 1, 0], atol=1e-25)
    assert sm.soft_onehot(X, scale=1.0).sum() == pytest.approx(1.0, rel=1e-15)


def test_soft_onehot_ties_split_evenly():
    p = sm.soft_onehot(np.array([1.0, 3.0, 3.0]), scale=100.0)
    np.testing.assert_allclose(p, [0, 0.5, 0.5], atol=1e-80)


def test_soft_argmax_post_value_both_bases():
    # Σ_i i·e^{x_i}/Σ e^{x} with 1-based positions, by hand: (2e^2 ... ) -> 3.733640
    w = np.exp(X) / np.exp(X).sum()
    assert float(np.dot(np.arange(1, 6), w)) == pytest.approx(3.733640, abs=1e-6)
    assert float(sm.soft_argmax(X, base=1)) == pytest.approx(3.733640, abs=1e-6)
    assert float(sm.soft_argmax(X, base=0)) == pytest.approx(2.733640, abs=1e-6)


def test_soft_argmax_limits(rng):
    assert float(sm.soft_argmax(X, scale=80.0, base=1)) == pytest.approx(4.0, abs=1e-12)
    assert float(sm.soft_argmax(X, scale=80.0)) == pytest.approx(3.0, abs=1e-12)
    # constant x -> the mean position (n - 1)/2 + base
    assert float(sm.soft_argmax(np.full(7, 2.5))) == pytest.approx(3.0, rel=1e-15)
    assert float(sm.soft_argmax(np.full(7, 2.5), base=1)) == pytest.approx(4.0, rel=1e-15)


def test_soft_argmax_axis0():
    x = np.stack([X, X[::-1]], axis=1)  # (5, 2): column 0 peaks at 3, column 1 at 1
    np.testing.assert_allclose(sm.soft_argmax(x, scale=80.0, axis=0), [3.0, 1.0], atol=1e-12)


# --- accuracy, F1, precision, recall ------------------------------------------------------

def test_smooth_accuracy_equals_hard_for_onehot_p(rng):
    y = rng.integers(0, 4, size=30)
    pred = rng.integers(0, 4, size=30)
    p = np.eye(4)[pred]
    assert float(sm.smooth_accuracy(p, y)) == pytest.approx(np.mean(pred == y), rel=1e-15)


def test_smooth_accuracy_is_mean_true_class_probability():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert float(sm.smooth_accuracy(p, np.array([1, 2]))) == pytest.approx((0.2 + 0.8) / 2, rel=1e-15)


def test_smooth_f1_equals_hard_f1_at_binary_p(rng):
    p = (rng.random(40) < 0.5).astype(float)
    t = (rng.random(40) < 0.5).astype(float)
    tp, fp, fn = np.sum(p * t), np.sum(p * (1 - t)), np.sum((1 - p) * t)
    assert float(sm.smooth_f1(p, t, eps=0.0)) == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-15)
    assert float(sm.smooth_precision(p, t, eps=0.0)) == pytest.approx(tp / (tp + fp), rel=1e-15)
    assert float(sm.smooth_recall(p, t, eps=0.0)) == pytest.approx(tp / (tp + fn), rel=1e-15)


def test_smooth_f1_is_harmonic_mean_of_soft_precision_and_recall(rng):
    p, t = rng.random(25), (rng.random(25) < 0.4).astype(float)
    P, R = sm.smooth_precision(p, t, eps=0.0), sm.smooth_recall(p, t, eps=0.0)
    assert float(sm.smooth_f1(p, t, eps=0.0)) == pytest.approx(2 * P * R / (P + R), rel=1e-14)


def test_macro_f1_is_mean_of_per_label_f1(rng):
    p, t = rng.random((10, 3)), (rng.random((10, 3)) < 0.5).astype(float)
    t[0] = 1.0
    per_label = [float(sm.smooth_f1(p[:, k], t[:, k], eps=1e-7)) for k in range(3)]
    assert float(sm.smooth_f1(p, t, average="macro")) == pytest.approx(np.mean(per_label), rel=1e-14)
    # micro over a 2-D array is the same as over its flattening
    assert float(sm.smooth_f1(p, t)) == pytest.approx(float(sm.smooth_f1(p.ravel(), t.ravel())), rel=1e-15)


def test_smooth_f1_is_not_a_per_sample_loss(rng):
    p, t = rng.random(8), np.array([1, 0, 1, 1, 0, 0, 1, 0.0])
    halves = 0.5 * (sm.smooth_f1(p[:4], t[:4]) + sm.smooth_f1(p[4:], t[4:]))
    assert abs(float(halves) - float(sm.smooth_f1(p, t))) > 1e-3


def test_f1_eps_zero_with_empty_denominator_is_an_error():
    with pytest.raises(ValueError, match="pass eps > 0"):
        sm.smooth_f1(np.zeros(3), np.zeros(3), eps=0.0)
    assert float(sm.smooth_f1(np.zeros(3), np.zeros(3))) == 0.0


# --- soft-k-max --------------------------------------------------------------------------

def test_soft_kmax_counterexample_exceeds_one():
    p = sm.soft_kmax(np.array([4.5, 2.8, 2.3]), 2)
    # by hand: step 1 q = softmax([2.2, 0.5, 0]); step 2 softmax((1 - q) ⊙ [2.2, 0.5, 0]) added
    z = np.array([2.2, 0.5, 0.0])
    q = np.exp(z) / np.exp(z).sum()
    z2 = (1 - q) * z
    expect = q + np.exp(z2) / np.exp(z2).sum()
    np.testing.assert_allclose(p, expect, rtol=1e-14)
    np.testing.assert_allclose(p, [1.166863, 0.508450, 0.324687], atol=1e-6)
    assert p[0] > 1  # the quirk is kept, not hidden


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_soft_kmax_sums_to_k(rng, k):
    x = rng.normal(scale=3, size=(4, 6))
    np.testing.assert_allclose(sm.soft_kmax(x, k).sum(-1), k, rtol=1e-14)


def test_soft_kmax_k1_is_softmax_and_shift_invariant(rng):
    x = rng.normal(size=7)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(sm.soft_kmax(x, 1), e / e.sum(), rtol=1e-14)
    np.testing.assert_allclose(sm.soft_kmax(x + 11.0, 3), sm.soft_kmax(x, 3), rtol=1e-12)
    # not scale invariant
    assert np.max(np.abs(sm.soft_kmax(2 * x, 3) - sm.soft_kmax(x, 3))) > 1e-3


def test_soft_kmax_tau_to_zero_gives_multihot_of_topk():
    # unit gaps, τ = 0.01: the top 2 (positions 3 and 2) are 1 to 6 decimals (docs/smoothing.md § Top-k)
    np.testing.assert_allclose(sm.soft_kmax(X / 0.01, 2), [0, 0, 1, 1, 0], atol=1e-6)


# --- smooth abs and soft relu ---------------------------------------------------------------

def test_smooth_abs_bounds_and_limit(rng):
    x = rng.normal(scale=3, size=50)
    for K in (0.5, 3.0, 100.0):
        a = sm.smooth_abs(x, scale=K)
        assert np.all(a >= np.abs(x) * (1 - 1e-15)) and np.all(a <= np.abs(x) + np.log(2) / K + 1e-12)
    assert float(sm.smooth_abs(0.0, scale=4.0)) == pytest.approx(np.log(2) / 4, rel=1e-15)


def test_soft_relu_is_scaled_softplus_with_known_gap(rng):
    x = rng.normal(scale=3, size=50)
    for K in (1.0, 5.0):
        gap = sm.soft_relu(x, scale=K) - np.maximum(x, 0)
        np.testing.assert_allclose(gap, np.log1p(np.exp(-K * np.abs(x))) / K, rtol=1e-9, atol=1e-15)


# --- dtype and bad input --------------------------------------------------------------------

def test_float32_preserved():
    x32 = X.astype(np.float32)
    for f in (sm.smooth_max, sm.smooth_min, sm.soft_onehot, sm.soft_argmax, sm.smooth_abs, sm.soft_relu):
        assert np.asarray(f(x32)).dtype == np.float32, f.__name__
    assert sm.soft_kmax(x32, 2).dtype == np.float32


@pytest.mark.parametrize("call, err, msg", [
    (lambda: sm.smooth_max(X, scale=0.0), ValueError, "scale must be a finite positive number"),
    (lambda: sm.smooth_max(X, scale="2"), TypeError, "scale must be a positive real number"),
    (lambda: sm.soft_onehot(np.zeros((2, 0))), ValueError, "empty axis"),
    (lambda: sm.soft_argmax(X, base=-1), ValueError, "base must be one of"),
    (lambda: sm.smooth_f1(np.ones(3) * 0.5, np.ones(2)), ValueError, "same shape"),
    (lambda: sm.smooth_f1(np.ones(3) * 0.5, np.ones(3), average="macro"), ValueError, r"\(B, K\)"),
    (lambda: sm.smooth_accuracy(np.ones((2, 2)) * 0.5, np.array([0, 2])), ValueError, r"labels in \[0, 2\)"),
    (lambda: sm.soft_kmax(X, 0), ValueError, "k must be >= 1"),
    (lambda: sm.smooth_max(np.array([1.0, np.nan])), ValueError, "x contains NaN"),
])
def test_bad_input(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


# --- accuracy of the float64 forms (closed forms by hand) -----------------------------------

def test_soft_argmax_gradient_keeps_relative_precision_near_a_one_hot():
    # P = softmax(−30, 0): d E[i]/dx = P_i (i − E[i]) = (−P_0 P_1, P_0 P_1); the form
    # i − Σ_j j P_j at i = 1 subtracts two numbers ≈ 1 and kept ~3 digits of the result
    x = np.array([-30.0, 0.0])
    p0 = np.exp(-30.0) / (1 + np.exp(-30.0))
    for base in (0, 1):
        g = grad(lambda z: sm.soft_argmax(z, base=base))(x)
        np.testing.assert_allclose(g, [-p0 * (1 - p0), p0 * (1 - p0)], rtol=1e-14)
    assert float(sm.soft_argmax(x, base=1)) == 2 - p0


def test_soft_argmax_base_is_added_only_where_there_is_mass():
    x = np.array([[NEG_INF, NEG_INF], [0.0, NEG_INF]])
    np.testing.assert_array_equal(sm.soft_argmax(x, base=1), [0.0, 1.0])
    # the gradient through −inf entries and the empty row is 0 (D4)
    g = grad(lambda z: anp.sum(sm.soft_argmax(z, base=1)))(x)
    assert np.all(g == 0)


NEG_INF = -np.inf


def test_precision_gradient_near_one_is_not_a_cancellation():
    # P = p/(p + ε) for one positive: dP/dp = ε/(p + ε)², while 1/(p + ε) − p/(p + ε)²
    # subtracts two numbers ~5.75 to get ~3e−6 and kept only ~10 digits
    p, t, eps = np.array([0.173796602926513]), np.array([1.0]), 1e-7
    g = grad(lambda q: sm.smooth_precision(q, t, eps=eps))(p)
    np.testing.assert_allclose(g, eps / (p + eps) ** 2, rtol=1e-15)
    # with a false positive too: dP/dp_0 = (FP + ε)/(TP + FP + ε)², dP/dp_1 = −TP/(…)²
    p2, t2 = np.array([0.75, 0.5]), np.array([1.0, 0.0])
    g2 = grad(lambda q: sm.smooth_precision(q, t2, eps=eps))(p2)
    np.testing.assert_allclose(g2, [(0.5 + eps) / (1.25 + eps) ** 2, -0.75 / (1.25 + eps) ** 2], rtol=1e-15)


def test_soft_counts_are_summed_exactly():
    # Σ p = 1 + 2^-52 exactly; a left-to-right sum rounds 1 + 2^-53 back to 1 twice
    h = 2.0 ** -53
    p, t = np.array([1.0, h, h]), np.array([1.0, 0.0, 0.0])
    assert float(sm.smooth_precision(p, t, eps=0.0)) == 1 - 2.0 ** -52      # 1/(1 + 2^-52), rounded
    assert float(sm.smooth_f1(p, t, eps=0.0)) == 2 / (2 + 2.0 ** -52)
