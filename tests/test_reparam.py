"""Reparameterization (https://kexue.fm/archives/6705): the post's claims and those of ``docs/reparam.md``.

Known values come from the mathematics (inverse CDFs, closed-form moments, quadrature, the
change of variables for K = 2) or from the Monte-Carlo values of ``docs/reparam.md``
("Gumbel-Softmax"). Statistical tests use a fixed
``numpy.random.Generator`` seed, a stated sample size S and either a tolerance of 4 standard
errors (SE estimated from the same sample) or a stated significance level α for a
chi-square / Kolmogorov-Smirnov test.
"""
import math
from fractions import Fraction

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp
from scipy import integrate, special, stats

from kexue_ref import reparam as rp

P4 = np.array([0.1, 0.2, 0.3, 0.4])
LOGP4 = np.log(P4)
ALPHA = 1e-3          # significance level of the goodness-of-fit tests
Z = 4.0               # tolerance of the mean tests, in standard errors


def _rng(tag):
    """A fresh Generator with the recorded seed of one test's sample."""
    return np.random.default_rng(_SEEDS[tag])


_SEEDS = {name: i + 20190610 for i, name in enumerate([
    "gumbel-moments", "gumbel-ks", "max-chi2", "max-conditional", "gs-mean", "gs-ks", "cat-sf",
    "normal-example", "gs-pathwise", "misc", "cat-sf-var", "st"])}


def _onehot(index, K):
    return np.eye(K)[index]


def _within(mean, target, se, z=Z, extra=0.0):
    """|mean − target| ≤ z·SE + extra, elementwise, with a readable failure."""
    mean, target, se = np.broadcast_arrays(np.asarray(mean, float), np.asarray(target, float),
                                           np.asarray(se, float))
    bad = np.abs(mean - target) > z * se + extra
    assert not bad.any(), f"mean {mean} vs {target}: |Δ| {np.abs(mean - target)} > {z}·SE {se} + {extra}"


# ---------------------------------------------------------------------------
# Normal reparameterization
# ---------------------------------------------------------------------------

def test_normal_reparam_matches_gauss_hermite_moments():
    """E_{N(μ,σ²)}[z²] = μ² + σ² and E[z³] = μ³ + 3μσ², summed exactly over Hermite nodes of ε."""
    x, w = np.polynomial.hermite_e.hermegauss(10)      # ∫ f(x) e^{−x²/2} dx; normalise by √(2π)
    w = w / math.sqrt(2 * math.pi)
    mu, sigma = 1.0, 2.0
    z = rp.normal_reparam(np.array(mu), np.array(sigma), x)
    assert abs(np.sum(w * z ** 2) - (mu ** 2 + sigma ** 2)) < 1e-12
    assert abs(np.sum(w * z ** 3) - (mu ** 3 + 3 * mu * sigma ** 2)) < 1e-11


def test_normal_reparam_broadcasts_and_keeps_float32():
    eps = np.arange(6, dtype=np.float32).reshape(3, 2)
    z = rp.normal_reparam(np.float32([1, -1]), np.float32(0.5), eps)
    assert z.dtype == np.float32 and z.shape == (3, 2)
    np.testing.assert_array_equal(z, np.float32([1, -1]) + np.float32(0.5) * eps)


# ---------------------------------------------------------------------------
# Gumbel noise from uniforms: modes and their boundaries
# ---------------------------------------------------------------------------

def test_exact_mode_inverts_the_gumbel_cdf():
    """u = F(x) = exp(−e^{−x}) maps back to x."""
    x = np.linspace(-2.0, 8.0, 41)
    u = np.exp(-np.exp(-x))
    np.testing.assert_allclose(rp.gumbel_from_uniform(u), x, rtol=0, atol=1e-9)


def test_keras_mode_values_at_the_ends():
    """u = 0 gives −log(−log(1e-7) + 1e-7) (bojone/vae vae_keras_cnn_gs.py, K.epsilon()); ε = 1e-20
    (the Jang et al. notebook) gives −log(−log 1e-20)."""
    got = rp.gumbel_from_uniform(np.array([0.0]), mode="keras")[0]
    assert got == pytest.approx(-math.log(-math.log(1e-7) + 1e-7), rel=1e-15)
    got = rp.gumbel_from_uniform(np.array([0.0]), mode="keras", eps=1e-20)[0]
    assert got == pytest.approx(-math.log(-math.log(1e-20) + 1e-20), rel=1e-15)
    # inside (0, 1) the +1e-7 only nudges the value (|Δg| ≲ 1e-7 / (u·|log u|) + 1e-7/|log u|)
    u = np.linspace(0.05, 0.95, 19)
    d = rp.gumbel_from_uniform(u, mode="keras") - rp.gumbel_from_uniform(u)
    assert np.abs(d).max() < 1e-5


def test_clip_and_tiny_modes_equal_exact_at_their_bounds():
    for dt in (np.float64, np.float32):
        eps, tiny = np.finfo(dt).eps, np.finfo(dt).tiny
        g = rp.gumbel_from_uniform(np.array([0.0, 1.0], dt), mode="clip")
        want = rp.gumbel_from_uniform(np.array([eps, 1 - eps], dt))
        np.testing.assert_array_equal(g, want)
        assert g.dtype == dt and np.isfinite(g).all()
        g = rp.gumbel_from_uniform(np.array([0.0], dt), mode="tiny")
        np.testing.assert_array_equal(g, rp.gumbel_from_uniform(np.array([tiny], dt)))
    # torch.distributions' float32 ends: −log(−log eps32) and −log(eps32)-ish
    g32 = rp.gumbel_from_uniform(np.array([0.0, 1.0], np.float32), mode="clip")
    e = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(g32, [-math.log(-math.log(e)), -math.log(-math.log1p(-e))], rtol=1e-6)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("mode", rp.GUMBEL_MODES)
def test_every_mode_is_finite_on_its_whole_domain(mode, dt):
    """The largest representable u below 1 and, where allowed, u = 0 and u = 1: finite g, no NaN."""
    below1 = np.nextafter(dt(1), dt(0))
    u = [np.finfo(dt).smallest_subnormal, 1e-30, 0.5, below1]
    if mode != "exact":
        u.append(0.0)
    if mode == "clip":
        u.append(1.0)
    g = rp.gumbel_from_uniform(np.array(u, dt), mode=mode)
    assert g.dtype == dt and np.isfinite(g).all()
    assert (np.diff(g[:4]) >= 0).all()           # non-decreasing in u (clamps saturate)


def test_keras_mode_refuses_u1_which_is_nan_in_float32():
    """In float32, 1 + 1e-7 rounds up, so −log(1 + ε) + ε < 0 and the author's formula is NaN."""
    one, e = np.float32(1.0), np.float32(1e-7)
    assert -np.log(one + e) + e < 0
    with pytest.raises(ValueError, match=r"u must lie in \[0, 1\) for mode='keras'"):
        rp.gumbel_from_uniform(np.array([1.0], np.float32), mode="keras")


def test_exponential_route_equals_exact_mode():
    u = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(rp.gumbel_from_exponential(-np.log(u)), rp.gumbel_from_uniform(u),
                               rtol=0, atol=1e-13)


def test_gumbel_mean_and_variance():
    """Standard Gumbel: mean γ (Euler), variance π²/6; S = 2·10⁵, 4 SE."""
    S = 200_000
    g = rp.sample_gumbel(_rng("gumbel-moments"), S)
    se_mean = g.std() / math.sqrt(S)
    _within(g.mean(), np.euler_gamma, se_mean)
    c2 = (g - g.mean()) ** 2
    se_var = c2.std() / math.sqrt(S)             # SE of the sample variance
    _within(c2.mean(), math.pi ** 2 / 6, se_var)


@pytest.mark.parametrize("mode", rp.GUMBEL_MODES)
def test_every_mode_gives_gumbel_noise(mode):
    """Kolmogorov-Smirnov against scipy's gumbel_r at level α = 1e-3, S = 2·10⁴."""
    u = rp.sample_uniform(_rng("gumbel-ks"), 20_000)
    g = rp.gumbel_from_uniform(u, mode=mode)
    assert stats.kstest(g, stats.gumbel_r.cdf).pvalue > ALPHA


def test_samplers_take_only_a_generator():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        rp.sample_gumbel(0, 3)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        rp.sample_normal(np.random.RandomState(0), 3)
    u = rp.sample_uniform(_rng("misc"), (4, 5), np.float32)
    assert u.dtype == np.float32 and u.shape == (4, 5) and (u > 0).all() and (u < 1).all()
    assert rp.sample_gumbel(_rng("misc"), 3, np.float32).dtype == np.float32


def test_sample_uniform_redraws_exact_zeros():
    """rng.random draws [0, 1); a zero would make g = -inf, so it is drawn again."""
    class ZerosFirst(np.random.Generator):
        calls = 0

        def random(self, size=None, dtype=np.float64, out=None):
            ZerosFirst.calls += 1
            r = super().random(size, dtype=dtype)
            return np.where(np.arange(r.size).reshape(r.shape) % 2 == 0, 0.0, r).astype(dtype) \
                if ZerosFirst.calls == 1 else r
    u = rp.sample_uniform(ZerosFirst(np.random.PCG64(1)), (3, 4))
    assert ZerosFirst.calls == 2 and (u > 0).all() and (u < 1).all()


# ---------------------------------------------------------------------------
# Gumbel-Max: the distribution and the post's proof
# ---------------------------------------------------------------------------

def test_gumbel_max_frequencies_chi_square():
    """Frequencies for p = [.1, .2, .3, .4], S = 2·10⁵: chi-square passes at α = 1e-3, each
    frequency is within 4 SE of p, and the same counts reject the uniform distribution."""
    S = 200_000
    g = rp.sample_gumbel(_rng("max-chi2"), (S, 4))
    y = rp.gumbel_max(LOGP4, g)
    counts = np.bincount(y, minlength=4)
    assert stats.chisquare(counts, S * P4).pvalue > ALPHA
    _within(counts / S, P4, np.sqrt(P4 * (1 - P4) / S))
    assert stats.chisquare(counts, np.full(4, S / 4)).pvalue < 1e-100


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_gumbel_max_proof_integral(p):
    """The post's last step: ∫₀¹ u^{1/p − 1} du = p (quadrature)."""
    value, _ = integrate.quad(lambda u: u ** (1 / p - 1), 0.0, 1.0)
    assert abs(value - p) < 1e-6


def test_gumbel_max_proof_events_and_conditional_probability():
    """Given u₁, category 1 beats j iff u_j < u₁^{p_j/p₁}, and P(1 wins | u₁) = u₁^{1/p₁ − 1}."""
    rng = _rng("max-conditional")
    S, u1 = 100_000, 0.7
    u = rng.random((S, 4))
    u[:, 3] = u1                                # category "1" of the proof is index 3, p = 0.4
    wins = rp.gumbel_max(LOGP4, rp.gumbel_from_uniform(u)) == 3
    beats = (u[:, :3] < u1 ** (P4[:3] / P4[3])).all(axis=1)
    np.testing.assert_array_equal(wins, beats)
    target = u1 ** (1 / P4[3] - 1)
    _within(wins.mean(), target, math.sqrt(target * (1 - target) / S))


def test_gumbel_max_logits_log_probs_and_probs_agree():
    g = rp.sample_gumbel(_rng("misc"), (50, 4))
    o = np.array([2.0, 2.7, 3.1, 3.4])            # any logits; log p = log_softmax(o)
    logp = o - special.logsumexp(o)
    a = rp.gumbel_max(o, g)
    np.testing.assert_array_equal(a, rp.gumbel_max(logp, g))
    np.testing.assert_array_equal(a, rp.gumbel_max(np.exp(logp), g, given="probs"))
    np.testing.assert_array_equal(rp.gumbel_max(o, g, onehot=True), _onehot(a, 4))
    # a zero-probability category is never drawn
    y = rp.gumbel_max(np.array([0.3, 0.0, 0.7]), rp.sample_gumbel(_rng("misc"), (200, 3)), given="probs")
    assert not (y == 1).any()


# ---------------------------------------------------------------------------
# Gumbel-Softmax: exact properties
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [0.05, 1.0, 7.0])
def test_gumbel_softmax_shift_invariance(tau):
    """The post's tip: logits o and log p = log_softmax(o) (or o + c) give the same sample."""
    rng = _rng("misc")
    o = rng.normal(size=(3, 5)) * 3
    g = rp.sample_gumbel(rng, (3, 5))
    y = rp.gumbel_softmax(o, g, tau)
    logp = o - special.logsumexp(o, axis=-1, keepdims=True)
    np.testing.assert_allclose(rp.gumbel_softmax(logp, g, tau), y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rp.gumbel_softmax(o + 123.0, g, tau), y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rp.gumbel_softmax(np.exp(logp), g, tau, given="probs"), y,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=0, atol=1e-15)


def test_gumbel_softmax_limits():
    """τ → 0: onehot(argmax(o + g)); τ → ∞: 1/K, with |ỹ − 1/K| ≤ (max − min)(o + g)/(Kτ)·e."""
    rng = _rng("misc")
    o = rng.normal(size=(20, 6))
    g = rp.sample_gumbel(rng, (20, 6))
    s = o + g
    gaps = np.sort(s, axis=-1)[:, -1] - np.sort(s, axis=-1)[:, -2]
    tau = gaps.min() / 50                         # e^{−gap/τ} ≤ e^{−50}
    np.testing.assert_allclose(rp.gumbel_softmax(o, g, tau), _onehot(np.argmax(s, -1), 6), rtol=0, atol=1e-20)
    big = 1e6
    spread = (s.max(-1) - s.min(-1))[:, None]
    dev = np.abs(rp.gumbel_softmax(o, g, big) - 1 / 6)
    assert (dev <= math.e * spread / (6 * big)).all()


def test_hard_is_exactly_onehot_with_the_soft_gradient():
    """Straight-through: forward exactly onehot(argmax(o + g)), gradient equal to the soft one."""
    rng = _rng("st")
    o = rng.normal(size=(4, 5))
    g = rp.sample_gumbel(rng, (4, 5))
    w = rng.normal(size=(4, 5))
    for tau in (0.1, 1.0):
        for dt in (np.float64, np.float32):
            y = rp.gumbel_softmax(o.astype(dt), g.astype(dt), tau, hard=True)
            assert y.dtype == dt
            np.testing.assert_array_equal(y, _onehot(np.argmax((o + g).astype(dt), -1), 5))

        def loss(oo, gg, hard):
            return anp.sum(w * rp.gumbel_softmax(oo, gg, tau, hard=hard))
        for argnum in (0, 1):
            gh = grad(loss, argnum)(o, g, True)
            gs = grad(loss, argnum)(o, g, False)
            np.testing.assert_allclose(gh, gs, rtol=1e-14, atol=1e-15)
            assert np.abs(gs).max() > 1e-3          # the gradient is not trivially zero


def test_gumbel_softmax_axis_and_broadcasting():
    rng = _rng("misc")
    o = rng.normal(size=4)
    g = rp.sample_gumbel(rng, (6, 4))
    y = rp.gumbel_softmax(o, g, 0.7)               # logits broadcast to the noise's (S, K)
    for s in range(6):
        np.testing.assert_allclose(y[s], rp.gumbel_softmax(o, g[s], 0.7), rtol=1e-15)
    np.testing.assert_allclose(rp.gumbel_softmax(o[:, None], g.T, 0.7, axis=0), y.T, rtol=1e-15)
    # a zero-probability category keeps weight 0
    y0 = rp.gumbel_softmax(np.array([0.5, 0.0, 0.5]), g[:, :3], 0.3, given="probs")
    assert (y0[:, 1] == 0).all()


# ---------------------------------------------------------------------------
# Accuracy at small τ (docs/reparam.md, "Accuracy of the softmax gradients and at small τ")
# ---------------------------------------------------------------------------

def _saturated_vjp(y, c):
    """The dominant entry of ỹ ⊙ (c − <c, ỹ>) as −ỹ_r Σ_{i≠r} ỹ_i (c_i − c_r): no cancellation."""
    r = int(np.argmax(y))
    return -y[r] * sum(y[i] * (c[i] - c[r]) for i in range(len(y)) if i != r)


def test_softmax_gradients_keep_the_dominant_entry_at_small_tau():
    """At τ = 10⁻² the dominant ỹ_r = 1 − e⁻¹⁰⁰: its VJP entry is ~e⁻¹⁰⁰/τ, not 0.

    The closed form −ỹ_r Σ_{i≠r} ỹ_i (c_i − c_r) = ỹ_r (c_r − <c, ỹ>) (Σ ỹ = 1) is evaluated
    from the exact weights e^{(o_i − o_r)/τ}; the naive product rounds <c, ỹ> to c_r and gives 0.
    """
    o, g, c, tau = np.array([0.0, 1.0, 2.0]), np.zeros(3), np.array([1.0, -1.0, 0.5]), 1e-2
    w = np.exp((o - 2.0) / tau)                          # e^{-200}, e^{-100}, 1
    y = w / w.sum()
    exact = _saturated_vjp(y, c) / tau
    assert exact != 0 and abs(exact) < 1e-40
    vjp = grad(lambda x: anp.sum(rp.gumbel_softmax(x, g, tau) * c))(o)
    assert vjp[2] == pytest.approx(exact, rel=1e-12, abs=0)
    # ...also with hard=True (the same gradient) and w.r.t. the noise
    vjp_hard = grad(lambda x: anp.sum(rp.gumbel_softmax(o, x, tau, hard=True) * c))(g)
    assert vjp_hard[2] == pytest.approx(exact, rel=1e-12, abs=0)
    # the pathwise estimate is the same product with c as ∇f
    pw = rp.gumbel_softmax_pathwise_grad(o, g[None, :], c, tau)
    assert pw[0, 2] == pytest.approx(exact, rel=1e-12, abs=0)
    # the JVP of the softmax (the Jacobian is symmetric) agrees with the VJP
    jvp = make_jvp(lambda x: rp.gumbel_softmax(x, g, tau))(o)(c)[1]
    assert jvp[2] == pytest.approx(exact, rel=1e-12, abs=0)


def test_exact_categorical_gradient_keeps_the_dominant_entry():
    """p ⊙ (f − L) at p_r = 1 − O(e⁻⁶⁰): the dominant entry is ~e⁻⁶⁰, computed without cancellation."""
    o, f = np.array([0.0, 30.0, 90.0]), np.array([2.0, -1.0, 0.5])
    w = np.exp(o - 90.0)
    p = w / w.sum()
    exact = _saturated_vjp(p, f)
    got = rp.categorical_exact_grad(o, f)
    assert exact != 0
    assert got[2] == pytest.approx(exact, rel=1e-12, abs=0)
    assert got[:2] == pytest.approx(p[:2] * (f[:2] - np.dot(p, f)), rel=1e-12)


def test_small_tau_weights_follow_the_exact_sum_of_logits_and_noise():
    """ỹ_i/ỹ_r = e^{(o_i + g_i − o_r − g_r)/τ} with the sum taken exactly (fractions), τ = 10⁻³.

    Rounding o + g to float64 before dividing by τ moves the exponent by up to ~|o + g|·eps/τ
    (relative errors ~5·10⁻¹³ in these ratios); the compensated scores leave only the rounding
    of the exponent itself (|d/τ| ≤ 700 ⇒ ≤ 1.6·10⁻¹³).
    """
    rng = _rng("misc")
    tau = 1e-3
    checked = 0
    for _ in range(200):
        o, g = 3 * rng.standard_normal(2), rng.standard_normal(2)
        s = [Fraction(o[i]) + Fraction(g[i]) for i in range(2)]
        r = 0 if s[0] > s[1] else 1
        d = (s[1 - r] - s[r]) / Fraction(tau)
        if d < -700:
            continue
        y = rp.gumbel_softmax(o, g, tau)
        assert y[1 - r] / y[r] == pytest.approx(math.exp(float(d)), rel=2e-13, abs=0)
        checked += 1
    assert checked > 10


# ---------------------------------------------------------------------------
# Gumbel-Softmax: E[ỹ] (the known values of docs/reparam.md, "Gumbel-Softmax")
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gs_noise():
    """S = 4·10⁵ Gumbel draws for p = [.1, .2, .3, .4] (the sample size of docs/reparam.md)."""
    return rp.sample_gumbel(_rng("gs-mean"), (400_000, 4))


@pytest.mark.parametrize("tau, known", [(10.0, [0.231, 0.247, 0.257, 0.265]),
                                        (1.0, [0.133, 0.219, 0.292, 0.356])])
def test_gumbel_softmax_mean_known_values(gs_noise, tau, known):
    """E[ỹ] ≠ p for moderate τ; the values of docs/reparam.md are rounded to 3 decimals (± 5e-4)."""
    y = rp.gumbel_softmax(LOGP4, gs_noise, tau)
    se = y.std(0) / math.sqrt(len(y))
    _within(y.mean(0), known, se, extra=5e-4)
    assert (np.abs(y.mean(0) - P4) > 10 * se).any()       # and it is not p


@pytest.mark.parametrize("tau", [0.1, 0.01])
def test_gumbel_softmax_mean_is_p_for_small_tau(gs_noise, tau):
    """docs/reparam.md: τ = 0.1 (and 0.01) give E[ỹ] within 0.002 of p. Since E[onehot(argmax(o + g))] = p
    exactly (Gumbel-Max), E[ỹ] − p = E[ỹ − y_hard], estimated with a small SE."""
    d = rp.gumbel_softmax(LOGP4, gs_noise, tau) - rp.gumbel_softmax(LOGP4, gs_noise, tau, hard=True)
    se = d.std(0) / math.sqrt(len(d))
    assert (np.abs(d.mean(0)) + Z * se <= 0.002).all(), (d.mean(0), se)


# ---------------------------------------------------------------------------
# The Concrete (relaxed one-hot) log-density
# ---------------------------------------------------------------------------

def _k2_density(y1, d, tau):
    """Change of variables: y₁ = σ((d + L)/τ), L = g₁ − g₂ ~ Logistic(0, 1), d = o₁ − o₂."""
    t = tau * special.logit(y1) - d
    return tau * special.expit(t) * special.expit(-t) / (y1 * (1 - y1))


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_concrete_density_k2_change_of_variables_and_normalisation(tau):
    o = np.array([0.4, -0.8])
    y1 = np.linspace(0.01, 0.99, 41)
    y = np.stack([y1, 1 - y1], axis=-1)
    got = np.exp(rp.relaxed_onehot_log_prob(y, o, tau))
    np.testing.assert_allclose(got, _k2_density(y1, o[0] - o[1], tau), rtol=1e-11)
    total, _ = integrate.quad(lambda a: math.exp(rp.relaxed_onehot_log_prob(np.array([a, 1 - a]), o, tau)),
                              0, 1, limit=200)
    assert abs(total - 1) < 1e-6


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_concrete_density_k3_integrates_to_one(tau):
    """∫ over the triangle a, b > 0, a + b < 1 of p(a, b, 1 − a − b) = 1: Duffy map a = s,
    b = (1 − s) t (Jacobian 1 − s), then s, t = m(x) with m(x) = x³(10 − 15x + 6x²), which
    flattens the edge behaviour, and an 80-point Gauss-Legendre rule in each x."""
    o = np.array([0.3, -0.2, 0.5])
    x, w = np.polynomial.legendre.leggauss(80)
    x, w = (x + 1) / 2, w / 2                    # nodes and weights on [0, 1]
    m, dm = x ** 3 * (10 - 15 * x + 6 * x ** 2), 30 * x ** 2 * (1 - x) ** 2
    s, t = np.meshgrid(m, m, indexing="ij")
    a, b = s, (1 - s) * t
    y = np.stack([a, b, 1 - a - b], axis=-1)
    dens = np.exp(rp.relaxed_onehot_log_prob(y, o, tau))
    total = np.einsum("i,j,ij->", w * dm, w * dm, dens * (1 - s))
    assert abs(total - 1) < 1e-6


def test_gumbel_softmax_samples_follow_the_concrete_law():
    """K = 2: ỹ₁ of gumbel_softmax has CDF σ(τ logit(y) − d) (KS at α = 1e-3, S = 2·10⁴)."""
    o, tau = np.array([0.4, -0.8]), 0.6
    y1 = rp.gumbel_softmax(o, rp.sample_gumbel(_rng("gs-ks"), (20_000, 2)), tau)[:, 0]
    cdf = lambda y: special.expit(tau * special.logit(y) - (o[0] - o[1]))      # noqa: E731
    assert stats.kstest(y1, cdf).pvalue > ALPHA


def test_compensated_sum_value_and_gradient():
    """Neumaier's sum is exact where the plain sum loses everything; its gradient is all ones."""
    t = np.array([[1e16, 1.0, -1e16, 3.0], [0.1, 0.2, 0.3, -0.6]])
    assert np.sum(t[0]) != 4.0                                   # the plain sum loses the 1
    got = rp._compensated_sum(t, -1, (0.5,))
    assert got[0] == 4.5
    assert got[1] == float(sum(Fraction(v) for v in t[1]) + Fraction(0.5))   # exact to rounding
    g = grad(lambda x: anp.sum(rp._compensated_sum(x, 0, (2.0,))))(t)
    np.testing.assert_array_equal(g, np.ones_like(t))
    assert rp._compensated_sum(t.astype(np.float32), 1).dtype == np.float32


def test_concrete_log_space_and_shift_invariance():
    """log_space=True is the torch/TFP ExpRelaxed log-density: log p(ỹ) + Σ_k log ỹ_k."""
    rng = _rng("misc")
    y = rng.dirichlet(np.ones(5), size=3)
    o = rng.normal(size=5)
    lp = rp.relaxed_onehot_log_prob(y, o, 0.7)
    np.testing.assert_allclose(rp.relaxed_onehot_log_prob(np.log(y), o, 0.7, log_space=True),
                               lp + np.log(y).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(rp.relaxed_onehot_log_prob(y, o + 5.0, 0.7), lp, rtol=1e-12)
    np.testing.assert_allclose(rp.relaxed_onehot_log_prob(y.T, o[:, None], 0.7, axis=0), lp, rtol=1e-13)


# ---------------------------------------------------------------------------
# Gradient estimators
# ---------------------------------------------------------------------------

F4 = np.array([1.0, -2.0, 3.0, 0.5])


def test_exact_categorical_gradient_is_the_autograd_gradient():
    """Autograd through Σ_y f(y) p(y) equals Σ_y f(y) p(y) ∇log p(y) (the score-function identity of
    https://kexue.fm/archives/6705)."""
    rng = _rng("misc")
    for _ in range(3):
        o, f = rng.normal(size=6), rng.normal(size=6)
        g_auto = grad(lambda oo: rp.categorical_expectation(oo, f))(o)
        np.testing.assert_allclose(rp.categorical_exact_grad(o, f), g_auto, rtol=1e-12, atol=1e-15)
    # K = 2 by hand: ∂L/∂o₁ = p₁ p₂ (f₁ − f₂)
    p1 = special.expit(0.3)
    np.testing.assert_allclose(rp.categorical_exact_grad(np.array([0.3, 0.0]), np.array([2.0, -1.0])),
                               [p1 * (1 - p1) * 3, -p1 * (1 - p1) * 3], rtol=1e-14)


def _exact_sf_variance(o, f, b):
    """Var of (f(y) − b)(e_y − p) per coordinate, by enumeration over y (constant b)."""
    p = special.softmax(o)
    terms = (f - b)[:, None] * (np.eye(len(o)) - p)          # row y: the estimate when y is drawn
    mean = p @ terms
    return p @ terms ** 2 - mean ** 2


@pytest.mark.parametrize("baseline", [0.0, 2.0, "loo"])
def test_categorical_score_function_is_unbiased(baseline):
    """Mean of S = 10⁵ per-sample estimates within 4 SE of the exact gradient; with a constant
    baseline the sample variance also matches the enumerated variance within 4 SE."""
    S = 100_000
    g = rp.sample_gumbel(_rng("cat-sf"), (S, 4))
    est = rp.categorical_score_function_grad(LOGP4, F4, g, baseline=baseline)
    assert est.shape == (S, 4)
    exact = rp.categorical_exact_grad(LOGP4, F4)
    _within(est.mean(0), exact, est.std(0) / math.sqrt(S))
    if not isinstance(baseline, str):
        c2 = (est - est.mean(0)) ** 2
        _within(c2.mean(0), _exact_sf_variance(LOGP4, F4, baseline), c2.std(0) / math.sqrt(S))


def test_baselines_reduce_score_function_variance():
    """With f shifted by 10 (same gradient), the plain estimator's variance grows; a baseline near
    E f removes the growth (exact variances by enumeration; LOO measured)."""
    f = F4 + 10.0
    v0 = _exact_sf_variance(LOGP4, f, 0.0)
    vb = _exact_sf_variance(LOGP4, f, float(P4 @ f))
    assert (vb < v0 / 10).all()
    g = rp.sample_gumbel(_rng("cat-sf-var"), (50_000, 4))
    loo = rp.categorical_score_function_grad(LOGP4, f, g, baseline="loo").var(0)
    assert (loo < v0 / 10).all()


def test_gumbel_softmax_pathwise_closed_form_is_the_autograd_jacobian():
    rng = _rng("gs-pathwise")
    g = rp.sample_gumbel(rng, (3, 4))
    df = rng.normal(size=(3, 4))
    est = rp.gumbel_softmax_pathwise_grad(LOGP4, g, df, 0.4)
    for s in range(3):
        want = grad(lambda o: anp.sum(df[s] * rp.gumbel_softmax(o, g[s], 0.4)))(LOGP4)
        np.testing.assert_allclose(est[s], want, rtol=1e-12, atol=1e-15)


def test_straight_through_gradient_is_pathwise_with_df_at_the_hard_sample():
    """ST-Gumbel for a nonlinear f: ∇_o f(y_hard) through hard=True equals the pathwise estimate
    with ∇f evaluated at the one-hot sample."""
    rng = _rng("st")
    g = rp.sample_gumbel(rng, (5, 4))
    c = rng.normal(size=4)

    def f(y):                                      # f(y) = Σ_k c_k y_k², ∇f = 2 c ⊙ y
        return anp.sum(c * y ** 2, axis=-1)
    tau = 0.5
    auto = np.stack([grad(lambda o: f(rp.gumbel_softmax(o, g[s], tau, hard=True)))(LOGP4) for s in range(5)])
    y_hard = rp.gumbel_softmax(LOGP4, g, tau, hard=True)
    np.testing.assert_allclose(auto, rp.gumbel_softmax_pathwise_grad(LOGP4, g, 2 * c * y_hard, tau),
                               rtol=1e-12, atol=1e-15)


def _relaxed_k2_gradient(o, f, tau):
    """∇_o E[<f, ỹ>] for K = 2 by quadrature over L ~ Logistic: (f₁ − f₂) m'(d) (1, −1),
    m'(d) = E[σ'((d + L)/τ)]/τ."""
    d = o[0] - o[1]

    def integrand(l):
        s = special.expit((d + l) / tau)
        return s * (1 - s) / tau * stats.logistic.pdf(l)
    m1, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)
    return (f[0] - f[1]) * m1 * np.array([1.0, -1.0])


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_gumbel_softmax_pathwise_is_unbiased_for_the_relaxed_objective(tau):
    """K = 2, f linear, S = 10⁵: the mean matches ∇E[<f, ỹ>] (quadrature) within 4 SE, and at
    τ = 1 it is significantly far from the exact ∇E[f(y)] (the relaxation's bias)."""
    S = 100_000
    o, f = np.array([0.4, -0.8]), np.array([1.0, -2.0])
    est = rp.gumbel_softmax_pathwise_grad(o, rp.sample_gumbel(_rng("gs-pathwise"), (S, 2)), f, tau)
    se = est.std(0) / math.sqrt(S)
    _within(est.mean(0), _relaxed_k2_gradient(o, f, tau), se)
    if tau == 1.0:
        bias = np.abs(est.mean(0) - rp.categorical_exact_grad(o, f))
        assert (bias > 10 * se).all()


def test_post_normal_example_variances():
    """f(z) = z², μ = 1, σ = 2 (S = 4·10⁵): both estimators have mean ∂_μ E f = 2μ = 2 and
    ∂_σ E f = 2σ = 4; the μ-variances are 16 (pathwise) and 74.25 (score function), which
    Gauss-Hermite quadrature (exact for polynomials) confirms."""
    mu, sigma, S = 1.0, 2.0, 400_000
    x, w = np.polynomial.hermite_e.hermegauss(20)
    w = w / math.sqrt(2 * math.pi)
    zq = mu + sigma * x
    assert np.sum(w * (2 * zq) ** 2) - 4.0 == pytest.approx(16.0, rel=1e-12)
    assert np.sum(w * (zq ** 2 * x / sigma) ** 2) - 4.0 == pytest.approx(74.25, rel=1e-12)

    eps = rp.sample_normal(_rng("normal-example"), S)
    z = rp.normal_reparam(np.array(mu), np.array(sigma), eps)
    pw_mu, pw_sigma = rp.normal_pathwise_grad(2 * z, eps)
    sf_mu, sf_sigma = rp.normal_score_function_grad(z ** 2, np.array(sigma), eps)
    for est, target in ((pw_mu, 2.0), (sf_mu, 2.0), (pw_sigma, 4.0), (sf_sigma, 4.0)):
        _within(est.mean(), target, est.std() / math.sqrt(S))
    for est, var in ((pw_mu, 16.0), (sf_mu, 74.25)):
        c2 = (est - est.mean()) ** 2
        _within(c2.mean(), var, c2.std() / math.sqrt(S))


def test_normal_pathwise_equals_autograd_through_the_reparameterization():
    rng = _rng("misc")
    eps = rng.normal(size=7)
    mu, sigma = 0.3, 1.7

    def f(z):
        return anp.sin(z) + z ** 3
    d_mu, d_sigma = rp.normal_pathwise_grad(anp.cos(mu + sigma * eps) + 3 * (mu + sigma * eps) ** 2, eps)
    for s in range(7):
        gm = grad(lambda m: f(rp.normal_reparam(m, sigma, eps[s])))(mu)
        gs = grad(lambda sg: f(rp.normal_reparam(mu, sg, eps[s])))(sigma)
        assert d_mu[s] == pytest.approx(gm, rel=1e-13) and d_sigma[s] == pytest.approx(gs, rel=1e-13)


def test_score_function_grad_by_hand():
    f = np.array([1.0, 2.0, 6.0])
    score = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(rp.score_function_grad(f, score, baseline=1.0),
                                  [[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    # leave-one-out: b = [(2 + 6)/2, (1 + 6)/2, (1 + 2)/2] = [4, 3.5, 1.5]
    np.testing.assert_array_equal(rp.score_function_grad(f, score, baseline="loo"),
                                  [[-3.0, 0.0], [0.0, -1.5], [4.5, 4.5]])
