"""The multiprecision truth of reparameterization (``kexue_ref/certify/truth_reparam.py``).

Expected values come from the mathematics of https://kexue.fm/archives/6705 and of the papers
it cites (inverse CDFs, closed forms for K = 2, limits, identities such as Σ ỹ = 1 and
∇E[f] = Σ f p (e − p), exact small cases, numerical derivatives of the formulas at high
precision), never from the float64 code; the last tests check that certification rejects
wrong tables.
"""
import numpy as onp
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import tables  # noqa: E402
from ._util import mp, case_named as _case, assert_bump_is_rejected, close, all_close  # noqa: E402
from kexue_ref.certify import truth_reparam as tr  # noqa: E402



def test_every_op_has_a_truth():
    from kexue_ref.cases import reparam
    assert set(tr.TRUTH) == {spec.name for spec in reparam.OPS}
    assert set(tr.GRADS) <= set(tr.TRUTH)
    for key in tr.BOUNDS:
        assert key.split("[")[0] in tr.TRUTH and tr.BOUNDS[key]["reason"]


# ---------------------------------------------------------------------------
# Normal reparameterization and Gumbel noise
# ---------------------------------------------------------------------------

def test_normal_reparam_exact_cases():
    # z = μ + σε: μ = 1, σ = 2, ε = (−1, 0, 0.5) → (−1, 1, 2); σ = 0 gives μ; broadcasting
    assert all_close(tr.normal_reparam(mp(1.0), mp(2.0), mp([-1.0, 0.0, 0.5])), [-1, 1, 2])
    z = tr.normal_reparam(mp([1.0, -2.0]), mp([0.0, 1.0]), mp([[0.5, -0.5], [2.0, 1.0]]))
    assert z.shape == (2, 2) and all_close(z, [1, -2.5, 1, -1])


def test_gumbel_exact_mode_inverts_the_cdf():
    # P(g ≤ x) = exp(−e^{−x}): the noise of u is the u-quantile, also at the ends of float32's (0, 1)
    u = mp([1e-30, 2.0 ** -24, 0.5, 0.9, 1 - 2.0 ** -24])
    g = tr.gumbel_from_uniform(u)
    for gi, ui in zip(g, u):
        assert close(mpmath.exp(-mpmath.exp(-gi)), ui, rel=mpmath.mpf(10) ** -55)
    # −log(log 2) = 0.36651292058166432701...
    assert close(g[2], -mpmath.log(mpmath.log(2)))


def test_gumbel_modes_at_the_ends():
    one = mp([0.0, 1.0])
    # keras, u = 0: −log(−log ε + ε) with ε = 1e-7 (the float64 constant)
    e7 = mpmath.mpf(1e-7)
    assert close(tr.gumbel_from_uniform(mp([0.0]), mode="keras")[0], -mpmath.log(-mpmath.log(e7) + e7))
    assert abs(tr.gumbel_from_uniform(mp([0.0]), mode="keras")[0] + mpmath.mpf("2.7799")) < 1e-4
    # clip, ε = 2^-52: u = 0 → −log(52 log 2); u = 1 → −log(−log(1 − 2^-52)) ≈ 52 log 2 − 2^-53
    g = tr.gumbel_from_uniform(one, mode="clip")
    assert close(g[0], -mpmath.log(52 * mpmath.log(2)))
    assert close(g[1], -mpmath.log(-mpmath.log1p(-mpmath.mpf(2) ** -52)))
    assert abs(g[1] - 52 * mpmath.log(2)) < 1e-15
    # tiny, ε = 2^-1022: u = 0 → −log(1022 log 2) ≈ −6.563; inside (0, 1) every mode is the exact one
    assert close(tr.gumbel_from_uniform(mp([0.0]), mode="tiny")[0], -mpmath.log(1022 * mpmath.log(2)))
    u = mp([0.3, 0.7])
    for mode in ("clip", "tiny"):
        assert all_close(tr.gumbel_from_uniform(u, mode=mode), tr.gumbel_from_uniform(u))
    # explicit ε: clip(·, 1e-3, 1 − 1e-3)
    e3 = mpmath.mpf(1e-3)
    assert close(tr.gumbel_from_uniform(mp([0.9999]), mode="clip", eps=1e-3)[0],
                 -mpmath.log(-mpmath.log(1 - e3)))


def test_gumbel_from_exponential_is_the_exact_mode():
    # E = −log u  ⇒  −log E = −log(−log u)
    u = mpmath.mpf(0.37)
    assert close(tr.gumbel_from_exponential(onp.array([-mpmath.log(u)], dtype=object))[0],
                 tr.gumbel_from_uniform(onp.array([u], dtype=object))[0])
    assert all_close(tr.gumbel_from_exponential(mp([1.0, 1e-30])), [0, 30 * mpmath.log(10)], rel=1e-15)


def test_gumbel_uniform_gradient_formula():
    # interior: the exact derivative equals a numerical derivative of the formula at 60 digits
    for mode, kw in (("exact", {}), ("keras", {}), ("clip", {"eps": 1e-3}), ("tiny", {})):
        for u in (0.05, 0.5, 0.93):
            d = tr.GRADS["reparam.gumbel_from_uniform"](mp([u]), cotangents={"out": onp.array([1.0])},
                                                         mode=mode, **kw)["u"][0]
            f = lambda v: tr.gumbel_from_uniform(onp.array([v], dtype=object), mode=mode, **kw)[0]  # noqa: E731
            assert close(d, mpmath.diff(f, mpmath.mpf(u)), rel=mpmath.mpf(10) ** -30)
    # keras at u = 0: 1/(ε(−log ε + ε)); clamped entries (clip u = 0 and 1, tiny u = 0) have derivative 0
    c = onp.array([2.0])
    e7 = mpmath.mpf(1e-7)
    d = tr.GRADS["reparam.gumbel_from_uniform"](mp([0.0]), cotangents={"out": c}, mode="keras")["u"][0]
    assert close(d, 2 / (e7 * (-mpmath.log(e7) + e7)))
    for mode, u in (("clip", 0.0), ("clip", 1.0), ("tiny", 0.0), ("tiny", 2.0 ** -1030)):
        assert tr.GRADS["reparam.gumbel_from_uniform"](mp([u]), cotangents={"out": c}, mode=mode)["u"][0] == 0


# ---------------------------------------------------------------------------
# Gumbel-Max and Gumbel-Softmax
# ---------------------------------------------------------------------------

def test_gumbel_max_exact_cases():
    o = mp(onp.log([0.1, 0.2, 0.3, 0.4]))
    # log 0.1 + 2 > log 0.4 + 0; zero noise picks the largest p; an exact tie goes to the first index
    assert tr.gumbel_max(o, mp([[2.0, 0, 0, 0], [0, 0, 0, 0]])).tolist() == [0, 3]
    assert tr.gumbel_max(mp([0.0, 1.0, 1.0]), mp([1.0, 0.0, 0.0])).tolist() == 0
    assert tr.gumbel_max(mp([0.0, 0.5, 0.5]), mp([0.0, 0.0, 0.0])).tolist() == 1
    # −inf (or p = 0) is never chosen, whatever the noise
    assert tr.gumbel_max(mp([0.0, -onp.inf]), mp([0.0, 1e300])).tolist() == 0
    assert tr.gumbel_max(mp([0.5, 0.0, 0.5]), mp([0.0, 50.0, 0.1]), given="probs").tolist() == 2
    # one-hot, along axis 0
    hot = tr.gumbel_max(mp([[0.0], [1.0]]), mp([[0.0, 2.0], [0.0, 0.0]]), axis=0, onehot=True)
    assert hot.tolist() == [[0, 1], [1, 0]]


def test_gumbel_softmax_k2_closed_form_and_simplex():
    # K = 2: ỹ_1 = σ((o_1 + g_1 − o_2 − g_2)/τ)
    o, g, tau = mp([0.3, -0.4]), mp([[0.1, 0.5], [-1.0, 2.0]]), 0.7
    y = tr.gumbel_softmax(o, g, tau)
    for s in range(2):
        d = (o[0] + g[s, 0] - o[1] - g[s, 1]) / mpmath.mpf(tau)
        assert close(y[s, 0], 1 / (1 + mpmath.exp(-d))) and close(y[s, 0] + y[s, 1], 1)
    # shift invariance (the post's tip): log p instead of logits gives the same sample
    lo = mp([2.0, 2.7, 3.1, 3.4])
    lp = lo - mpmath.log(mpmath.fsum(mpmath.exp(v) for v in lo))
    gg = mp([0.5, -0.3, 1.2, 0.1])
    assert all_close(tr.gumbel_softmax(lo, gg, 0.5), tr.gumbel_softmax(lp, gg, 0.5), rel=mpmath.mpf(10) ** -55)


def test_gumbel_softmax_limits_and_hard():
    o, g = mp(onp.log([0.1, 0.2, 0.3, 0.4])), mp([0.5, -0.3, 1.2, 0.1])
    # τ → 0: the one-hot of argmax(o + g), here index 2, to e^{−(gap)/τ}
    y = tr.gumbel_softmax(o, g, 1e-3)
    assert abs(y[2] - 1) < mpmath.mpf(10) ** -100 and all(v < mpmath.mpf(10) ** -100 for v in y[[0, 1, 3]])
    # τ → ∞: 1/K
    assert all(abs(v - mpmath.mpf(1) / 4) < 1e-6 for v in tr.gumbel_softmax(o, g, 1e7))
    # hard: exactly the Gumbel-Max one-hot
    assert [float(v) for v in tr.gumbel_softmax(o, g, 1.0, hard=True)] == [0.0, 0.0, 1.0, 0.0]
    # p = 0 has weight exactly 0
    y0 = tr.gumbel_softmax(mp([0.5, 0.0, 0.5]), mp([[0.0, 9.0, 0.0]]), 1.0, given="probs")
    assert y0[0, 1] == 0 and close(y0[0, 0], 1 / (1 + mpmath.mpf(1)))


def test_gumbel_softmax_gradient_formula():
    grad_fn = tr.GRADS["reparam.gumbel_softmax"]
    o, g, c, tau = mp([0.2, -0.5, 1.0]), mp([[0.3, 0.1, -0.2], [1.1, -0.4, 0.0]]), \
        onp.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]), 0.6

    def phi(oo, gg, **kw):
        y = tr.gumbel_softmax(oo, gg, tau, **kw).reshape(-1)
        return mpmath.fsum(ci * yi for ci, yi in zip(c.reshape(-1), y))

    got = grad_fn(o, g, tau, cotangents={"out": c})
    for k in range(3):
        def f_o(v, k=k):
            oo = o.copy()
            oo[k] = v
            return phi(oo, g)
        assert close(got["logits"][k], mpmath.diff(f_o, o[k]), rel=mpmath.mpf(10) ** -30)
    for idx in [(0, 1), (1, 2)]:
        def f_g(v, idx=idx):
            gg = g.copy()
            gg[idx] = v
            return phi(o, gg)
        assert close(got["g"][idx], mpmath.diff(f_g, g[idx]), rel=mpmath.mpf(10) ** -30)
    # straight-through: the gradient of the soft sample (docs/reparam.md), not the zero of a step
    hard = grad_fn(o, g, tau, cotangents={"out": c}, hard=True)
    assert all_close(hard["logits"], got["logits"]) and all_close(hard["g"], got["g"])
    # probabilities: ∂/∂p = (∂/∂o)/p for p > 0 and 0 for p = 0
    p = mp([0.25, 0.0, 0.75])
    gp = grad_fn(p, g, tau, cotangents={"out": c}, given="probs")
    go = grad_fn(tr._log_weights(p, "probs"), g, tau, cotangents={"out": c})
    assert gp["logits"][1] == 0 and close(gp["logits"][0], go["logits"][0] / p[0])
    assert close(gp["logits"][2], go["logits"][2] / p[2])


def test_gumbel_softmax_gradient_at_small_tau_does_not_vanish():
    # ỹ = softmax((0, 1, 2)/τ) at τ = 10⁻³: the dominant entry of the VJP is −ỹ_2 Σ_{i≠2} ỹ_i (c_i − c_2)/τ
    o, g, c, tau = mp([0.0, 1.0, 2.0]), mp([0.0, 0.0, 0.0]), onp.array([1.0, -1.0, 0.5]), 1e-3
    t = mpmath.mpf(tau)
    w = [mpmath.exp((v - 2) / t) for v in o]
    y = [v / mpmath.fsum(w) for v in w]
    expect = -y[2] * (y[0] * (mpmath.mpf(1) - mpmath.mpf(0.5)) + y[1] * (-1 - mpmath.mpf(0.5))) / t
    got = tr.GRADS["reparam.gumbel_softmax"](o, g, tau, cotangents={"out": c})["g"][2]
    assert abs(expect) > 0 and close(got, expect, rel=mpmath.mpf(10) ** -50)


def test_concrete_density_k2_closed_form():
    # K = 2: y₁ = σ((d + L)/τ), L logistic ⇒ p(y₁) = τ e^{t}/(1 + e^{t})²/(y₁(1 − y₁)), t = τ logit(y₁) − d
    d, tau = mpmath.mpf(0.4) - mpmath.mpf(-0.8), mpmath.mpf(0.6)
    for y1 in (0.3, 0.01, 0.95):
        y1 = mpmath.mpf(y1)
        t = tau * mpmath.log(y1 / (1 - y1)) - d
        dens = tau * mpmath.exp(t) / (1 + mpmath.exp(t)) ** 2 / (y1 * (1 - y1))
        y = onp.array([y1, 1 - y1], dtype=object)
        got = tr.relaxed_onehot_log_prob(y, mp([0.4, -0.8]), 0.6)
        assert close(got[()], mpmath.log(dens))
        # log space: the density of x = log ỹ adds the Jacobian Σ_k x_k
        x = onp.array([mpmath.log(y1), mpmath.log(1 - y1)], dtype=object)
        got_x = tr.relaxed_onehot_log_prob(x, mp([0.4, -0.8]), 0.6, log_space=True)
        assert close(got_x[()], mpmath.log(dens) + x[0] + x[1])


def test_concrete_density_integrates_to_one_and_is_shift_invariant():
    # ∫₀¹ p(y₁) dy₁ = 1, with y₁ = σ(v) (dy₁ = y₁(1 − y₁) dv) to remove the y^{τ−1} end singularities
    o = mp([0.7, -0.2])

    def integrand(v):
        y1, y2 = 1 / (1 + mpmath.exp(-v)), 1 / (1 + mpmath.exp(v))
        dens = mpmath.exp(tr.relaxed_onehot_log_prob(onp.array([y1, y2], dtype=object), o, 0.5)[()])
        return dens * y1 * y2

    # the integrand decays like e^{−τ|v|}: beyond |v| = 300 it is below e^{−150}
    with mpmath.workdps(30):
        total = mpmath.quad(integrand, [-300, -30, 0, 30, 300])
    assert abs(total - 1) < 1e-20
    # at τ = 1, uniform logits, K = 2 the density is uniform on (0, 1): log p = 0
    flat = tr.relaxed_onehot_log_prob(mp([0.5, 0.5]), mp([0.0, 0.0]), 1.0)[()]
    assert close(flat, 0, abs_=mpmath.mpf(10) ** -55)
    # logits and logits + c give the same density; axis 0 equals the transpose
    y = mp([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    lo = mp([0.1, -0.3, 0.9])
    a = tr.relaxed_onehot_log_prob(y, lo, 0.4)
    assert all_close(a, tr.relaxed_onehot_log_prob(y, lo + 5, 0.4), rel=mpmath.mpf(10) ** -55)
    assert all_close(a, tr.relaxed_onehot_log_prob(y.T, lo[:, None], 0.4, axis=0))


# ---------------------------------------------------------------------------
# Gradient estimators
# ---------------------------------------------------------------------------

def test_categorical_expectation_and_exact_gradient():
    # uniform logits: L = mean f, ∇L = (f − mean f)/K
    f = mp([1.0, 2.0, 3.0, 4.0])
    assert close(tr.categorical_expectation(mp([0.0] * 4), f)[()], mpmath.mpf(5) / 2)
    assert all_close(tr.categorical_exact_grad(mp([0.0] * 4), f), [(v - mpmath.mpf(5) / 2) / 4 for v in f])
    # extreme logits (1000, −1000, 999): p ∝ (e, e^{−1999}, 1), L = tanh(1/2) + O(e^{−1999})
    assert close(tr.categorical_expectation(mp([1e3, -1e3, 999.0]), mp([1.0, 5.0, -1.0]))[()],
                 mpmath.tanh(mpmath.mpf(1) / 2))
    # ∇L is the derivative of L (numerically at 60 digits) and sums to 0 (shift invariance)
    o, fv = mp([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7]]), mp([1.5, -2.0, 0.25])
    gr = tr.categorical_exact_grad(o, fv)
    assert gr.shape == (2, 3)
    for r in range(2):
        assert abs(mpmath.fsum(gr[r])) < mpmath.mpf(10) ** -55
        for k in range(3):
            def f_o(v, r=r, k=k):
                oo = o[r].copy()
                oo[k] = v
                return tr.categorical_expectation(oo, fv)[()]
            assert close(gr[r, k], mpmath.diff(f_o, o[r, k]), rel=mpmath.mpf(10) ** -30)


def test_score_function_hand_cases():
    # (f − b)·score; leave-one-out b_s = mean of the others
    assert all_close(tr.score_function_grad(mp([1.0, 3.0]), mp([[1.0], [-1.0]])), [1, -3])
    assert all_close(tr.score_function_grad(mp([1.0, 3.0]), mp([[1.0], [-1.0]]), baseline="loo"), [-2, -2])
    # b = (4, 3.5, 1.5) for f = (1, 2, 6)
    assert all_close(tr.score_function_grad(mp([1.0, 2.0, 6.0]), mp([[1.0]] * 3), baseline="loo"),
                     [-3, mpmath.mpf(-3) / 2, mpmath.mpf(9) / 2])
    assert all_close(tr.score_function_grad(mp([1.0, 2.0]), mp([[2.0, 1.0], [1.0, 0.0]]), baseline=0.5),
                     [1, 0.5, 1.5, 0])


def test_categorical_score_function_hand_case_and_unbiasedness():
    # p = (½, ½), f = (0, 1): noise (0, 1) draws y = 1 → 1·(e_1 − p); noise (1, 0) draws y = 0 → 0
    est = tr.categorical_score_function_grad(mp([0.0, 0.0]), mp([0.0, 1.0]), mp([[0.0, 1.0], [1.0, 0.0]]))
    assert all_close(est, [-0.5, 0.5, 0, 0])
    # Σ_y p_y (f_y − b)(e_y − p) = ∇L for any constant b: weight one noise row per category
    o, f = mp([0.2, -0.3, 0.6]), mp([1.0, -2.0, 0.5])
    g = mp(onp.eye(3) * 100.0)                   # row y draws category y
    est = tr.categorical_score_function_grad(o, f, g, baseline=0.7)
    p = tr._softmax_rows(o[None, :])[0]
    mean = [mpmath.fsum(p[y] * est[y, k] for y in range(3)) for k in range(3)]
    assert all_close(mean, tr.categorical_exact_grad(o, f), rel=mpmath.mpf(10) ** -55)


def test_gumbel_softmax_pathwise_is_the_jacobian_product():
    # docstring example: o = 0, g = 0, τ = ½, ∇f = (0, 1): ỹ = (½, ½), ĝ = ½·½·(∓1)/½
    assert all_close(tr.gumbel_softmax_pathwise_grad(mp([0.0, 0.0]), mp([[0.0, 0.0]]), mp([0.0, 1.0]), 0.5),
                     [-0.5, 0.5])
    o, g, df, tau = mp([0.1, -0.4, 0.7]), mp([[0.3, 0.0, -0.5]]), mp([[1.0, -2.0, 0.5]]), 0.8
    est = tr.gumbel_softmax_pathwise_grad(o, g, df, tau)
    for k in range(3):
        def f_o(v, k=k):
            oo = o.copy()
            oo[k] = v
            y = tr.gumbel_softmax(oo, g, tau)[0]
            return mpmath.fsum(df[0, i] * y[i] for i in range(3))
        assert close(est[0, k], mpmath.diff(f_o, o[k]), rel=mpmath.mpf(10) ** -30)


def test_normal_estimators():
    # the docstring cases: z = 3 (μ = 1, σ = 2, ε = 1), f = z² = 9, f' = 6
    d_mu, d_sigma = tr.normal_score_function_grad(mp([9.0]), mp(2.0), mp([1.0]))
    assert all_close(d_mu, [4.5]) and all_close(d_sigma, [0])
    p_mu, p_sigma = tr.normal_pathwise_grad(mp([6.0]), mp([1.0]))
    assert all_close(p_mu, [6]) and all_close(p_sigma, [6])
    # the scores are ∂/∂μ and ∂/∂σ of log N(z; μ, σ²) at z = μ + σε
    mu, sigma, eps = mpmath.mpf(0.3), mpmath.mpf(1.7), mpmath.mpf(-0.9)
    z = mu + sigma * eps

    def logpdf(m, s):
        return -mpmath.log(s) - (z - m) ** 2 / (2 * s ** 2) - mpmath.log(2 * mpmath.pi) / 2

    d_mu, d_sigma = tr.normal_score_function_grad(onp.array([mpmath.mpf(1)], dtype=object),
                                                  onp.array(sigma, dtype=object),
                                                  onp.array([eps], dtype=object))
    assert close(d_mu[0], mpmath.diff(lambda m: logpdf(m, sigma), mu), rel=mpmath.mpf(10) ** -30)
    assert close(d_sigma[0], mpmath.diff(lambda s: logpdf(mu, s), sigma), rel=mpmath.mpf(10) ** -30)


# ---------------------------------------------------------------------------
# Certification rejects wrong tables
# ---------------------------------------------------------------------------

certify = pytest.importorskip("kexue_ref.certify")


@pytest.mark.parametrize("op, name, member, idx", [
    ("reparam.normal_reparam", "S3-D4", "output.out", (1, 2)),
    ("reparam.gumbel_from_uniform", "keras-n8", "grad.u", (3,)),
    ("reparam.gumbel_from_uniform", "exact-near-ends", "output.out", (3,)),
    ("reparam.gumbel_from_exponential", "n8", "output.out", (0,)),
    ("reparam.gumbel_max", "p4-S6-onehot", "output.sample", (2, 1)),
    ("reparam.gumbel_softmax", "p4-S3-tau1", "output.out", (1, 2)),
    ("reparam.gumbel_softmax", "p4-S3-tau1-hard", "grad.logits", (0,)),
    ("reparam.gumbel_softmax", "tau1e-3", "grad.g", (1, 1)),
    ("reparam.relaxed_onehot_log_prob", "B4-K4-tau1-log", "output.out", (2,)),
    ("reparam.relaxed_onehot_log_prob", "K3-tau0.5", "grad.y", (1,)),
    ("reparam.categorical_expectation", "extreme-logits", "grad.logits", (2,)),
    ("reparam.categorical_exact_grad", "B3-K5", "output.out", (1, 4)),
    ("reparam.score_function_grad", "S6-P3-loo", "grad.f_values", (2,)),
    ("reparam.categorical_score_function_grad", "p4-S8", "output.out", (5, 1)),
    ("reparam.gumbel_softmax_pathwise_grad", "p4-S5-tau1", "grad.df_dy", (4, 0)),
    ("reparam.normal_score_function_grad", "post-f-z2-S8", "output.d_sigma", (6,)),
    ("reparam.normal_pathwise_grad", "post-f-z2-S8", "output.d_sigma", (0,)),
])
def test_certifier_rejects_a_few_ulps(op, name, member, idx):
    assert_bump_is_rejected(op, name, member, idx)


def test_certifier_rejects_a_wrong_gumbel_max_index():
    case = _case("reparam.gumbel_max", "p4-S6")
    rec = tables.case_record(case)
    assert certify.certify_record(case, rec)["output.sample"].passed
    bad = dict(rec)
    bad["output.sample"] = rec["output.sample"].copy()
    bad["output.sample"][3] = (bad["output.sample"][3] + 1) % 4
    cert = certify.certify_record(case, bad)["output.sample"]
    assert cert.exact and not cert.passed


def test_certifier_rejects_a_step_function_gradient_for_straight_through():
    # differencing the one-hot would give a zero gradient; the convention is the soft VJP
    case = _case("reparam.gumbel_softmax", "p4-S3-tau1-hard")
    rec = tables.case_record(case)
    bad = dict(rec)
    bad["grad.g"] = onp.zeros_like(rec["grad.g"])
    assert not certify.certify_record(case, bad)["grad.g"].passed


def test_certifier_rejects_the_cancelled_dominant_entry_at_small_tau():
    # the naive product ỹ ⊙ (c − <c, ỹ>) gives exactly 0 for the dominant category at τ = 10⁻³
    case = _case("reparam.gumbel_softmax_pathwise_grad", "tau1e-3")
    rec = tables.case_record(case)
    assert certify.certify_record(case, rec)["output.out"].passed
    y = tr.gumbel_softmax(mp(rec["input.logits"]), mp(rec["input.g"]), float(rec["param.tau"]))
    r = [max(range(4), key=lambda k, s=s: y[s, k]) for s in range(3)]
    bad = dict(rec)
    bad["output.out"] = rec["output.out"].copy()
    nz = [s for s in range(3) if rec["output.out"][s, r[s]] != 0]
    assert nz, "the fixture needs a non-zero dominant entry"
    bad["output.out"][nz[0], r[nz[0]]] = 0.0
    assert not certify.certify_record(case, bad)["output.out"].passed


def test_certifier_rejects_an_unclamped_gradient():
    # tiny mode at u = 0: the clamp passes no gradient; a table with −1/(u log u) at ε would fail
    case = _case("reparam.gumbel_from_uniform", "tiny-u0")
    rec = tables.case_record(case)
    assert rec["grad.u"][0] == 0 and certify.certify_record(case, rec)["grad.u"].passed
    bad = dict(rec)
    bad["grad.u"] = rec["grad.u"].copy()
    bad["grad.u"][0] = 1.0
    assert not certify.certify_record(case, bad)["grad.u"].passed


def test_truth_is_independent_of_the_oracle():
    import ast
    import inspect
    src = inspect.getsource(tr)
    names = {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m.startswith("kexue_ref.reparam") or m.startswith("kexue_ref._numerics")
                          or m == "autograd" or m.startswith("autograd.")) for m in names)
