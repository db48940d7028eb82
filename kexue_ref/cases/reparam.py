"""Registry rows for reparameterization (``kexue_ref.reparam``, https://kexue.fm/archives/6705).

Every random quantity is a table input (decision D2): the uniforms ``u``, the Exponential
draws ``e``, the Gumbel noise ``g`` and the Normal noise ``eps`` are stored with the case, so a
framework can be fed the same noise. Edge cases are those of ``docs/reparam.md`` ("Gumbel
noise: conventions of the public implementations"): u = 0 and u → 1 in every mode, small and
large τ, zero-probability categories; error cases: τ ≤ 0, probabilities that do not sum to 1,
uniforms outside each mode's domain, σ < 0.
"""
import numpy as onp

from kexue_ref import reparam as rp
from kexue_ref.cases._gen import distinct, normal, probs, unit
from kexue_ref.registry import CaseDef, OpSpec, grid

POST = "https://kexue.fm/archives/6705"
P4 = onp.array([0.1, 0.2, 0.3, 0.4])          # the running example of docs/reparam.md
LOGP4 = onp.log(P4)
BOUNDARY = "u sits on the boundary of the mode's domain: central differences would step outside it"


def _gumbel(rng, *shape):
    """Gumbel noise made from uniforms in (0, 1), as the tables store it."""
    return -onp.log(-onp.log(unit(rng, *shape, low=1e-3, high=1 - 1e-3)))


def _uniform_cases():
    u8 = lambda rng: {"u": unit(rng, 8)}          # noqa: E731
    return [
        CaseDef("exact-n8", u8),
        CaseDef("keras-n8", u8, {"mode": "keras"}),
        CaseDef("clip-n8", u8, {"mode": "clip"}),
        CaseDef("tiny-n8", u8, {"mode": "tiny"}),
        CaseDef("keras-eps1e-20-n8", u8, {"mode": "keras", "eps": 1e-20}, tier="full",
                note="the Jang et al. notebook's constant"),
        CaseDef("clip-eps1e-3-B3-K5", lambda rng: {"u": unit(rng, 3, 5)}, {"mode": "clip", "eps": 1e-3},
                tier="full"),
        CaseDef("exact-B3-K5", lambda rng: {"u": unit(rng, 3, 5)}, tier="full"),
        CaseDef("keras-u0", {"u": onp.array([0.0, 0.5, 0.999])}, {"mode": "keras"}, tier="edge",
                gradcheck=False, note="u = 0 gives -log(-log 1e-7 + 1e-7) ≈ -2.78; " + BOUNDARY),
        CaseDef("keras-eps1e-20-u0", {"u": onp.array([0.0, 0.5, 0.999])},
                {"mode": "keras", "eps": 1e-20}, tier="edge", gradcheck=False,
                note="u = 0 gives -log(-log 1e-20) ≈ -3.83; " + BOUNDARY),
        CaseDef("clip-u0-u1", {"u": onp.array([0.0, 1e-30, 0.5, 1.0])}, {"mode": "clip", "eps": 2.0 ** -23},
                tier="edge", gradcheck=False,
                note="torch.distributions' float32 clamp [eps, 1 - eps], eps = 2^-23: g ≈ -2.77 and "
                     "+15.94 at the ends (given explicitly, so float32 and float64 agree); " + BOUNDARY),
        CaseDef("tiny-u0", {"u": onp.array([0.0, 2.0 ** -130, 0.5, 1 - 2.0 ** -24])},
                {"mode": "tiny", "eps": 2.0 ** -126}, tier="edge", gradcheck=False,
                note="the TFP/JAX float32 lower bound finfo(float32).tiny = 2^-126: g ≈ -4.47 at u = 0; "
                     + BOUNDARY),
        CaseDef("exact-near-ends", {"u": onp.array([1e-30, 2.0 ** -24, 0.5, 1 - 2.0 ** -24])}, tier="edge",
                gradcheck=False, note="g from -4.24 to +16.64 (the ends of float32's (0, 1)); dg/du ~ "
                                      "1e28 at u = 1e-30 and a step of 1e-6 would leave (0, 1)"),
        CaseDef("exact-u0", {"u": onp.array([0.3, 0.0])}, tier="error",
                raises=(ValueError, r"u must lie in \(0, 1\) for mode='exact'")),
        CaseDef("exact-u1", {"u": onp.array([1.0, 0.3])}, tier="error",
                raises=(ValueError, r"u must lie in \(0, 1\) for mode='exact'")),
        CaseDef("keras-u1", {"u": onp.array([1.0])}, {"mode": "keras"}, tier="error",
                raises=(ValueError, r"u must lie in \[0, 1\) for mode='keras'")),
        CaseDef("clip-negative", {"u": onp.array([-0.1, 0.5])}, {"mode": "clip"}, tier="error",
                raises=(ValueError, r"u must lie in \[0, 1\] for mode='clip'")),
        CaseDef("tiny-u1", {"u": onp.array([0.5, 1.0])}, {"mode": "tiny"}, tier="error",
                raises=(ValueError, r"u must lie in \[0, 1\) for mode='tiny'")),
        CaseDef("clip-eps-too-small", {"u": onp.array([0.5])}, {"mode": "clip", "eps": 1e-17}, tier="error",
                raises=(ValueError, "eps = 1e-17 is too small for mode='clip'")),
        CaseDef("exact-with-eps", {"u": onp.array([0.5])}, {"eps": 1e-7}, tier="error",
                raises=(ValueError, "eps is not used by mode='exact'")),
        CaseDef("bad-mode", {"u": onp.array([0.5])}, {"mode": "torch"}, tier="error",
                raises=(ValueError, "mode must be one of")),
        CaseDef("nan", {"u": onp.array([onp.nan])}, tier="error", raises=(ValueError, "u contains NaN")),
    ]


def _exponential_cases():
    return [
        CaseDef("n8", lambda rng: {"e": rng.exponential(size=8) + 1e-3}),
        CaseDef("B3-K5", lambda rng: {"e": rng.exponential(size=(3, 5)) + 1e-3}, tier="full"),
        CaseDef("extreme", {"e": onp.array([1e-30, 1.0, 700.0])}, tier="edge", gradcheck=False,
                note="g from +69.08 to -6.55; dg/de = -1/e ~ -1e30 and a step of 1e-6 would make e < 0"),
        CaseDef("e0", {"e": onp.array([1.0, 0.0])}, tier="error",
                raises=(ValueError, "e must hold Exponential draws > 0")),
        CaseDef("e-negative", {"e": onp.array([-1.0])}, tier="error",
                raises=(ValueError, "e must hold Exponential draws > 0")),
        CaseDef("inf", {"e": onp.array([onp.inf])}, tier="error", raises=(ValueError, r"e contains \+inf")),
    ]


def _normal_cases():
    return [
        CaseDef("post-mu1-sigma2-S8", lambda rng: {"mu": onp.array(1.0), "sigma": onp.array(2.0),
                                                   "eps": normal(rng, 8)}),
        CaseDef("S3-D4", lambda rng: {"mu": normal(rng, 4), "sigma": unit(rng, 4, low=0.5, high=2.0),
                                      "eps": normal(rng, 3, 4)}),
        CaseDef("S5-B2-D3", lambda rng: {"mu": normal(rng, 2, 3), "sigma": unit(rng, 2, 3, low=0.1, high=3.0),
                                         "eps": normal(rng, 5, 2, 3)}, tier="full"),
        CaseDef("sigma0", {"mu": onp.array([1.0, -2.0]), "sigma": onp.array([0.0, 1.0]),
                           "eps": onp.array([[0.5, -0.5], [2.0, 1.0]])}, tier="edge", gradcheck=False,
                note="σ = 0 gives z = μ; a step of 1e-6 would make σ < 0"),
        CaseDef("sigma-negative", {"mu": onp.array(0.0), "sigma": onp.array(-1.0), "eps": onp.zeros(3)},
                tier="error", raises=(ValueError, "sigma must be >= 0")),
        CaseDef("mu-too-large", {"mu": onp.zeros(4), "sigma": onp.array(1.0), "eps": onp.zeros((3, 2))},
                tier="error", raises=(ValueError, r"mu of shape \(4,\) must broadcast to the shape \(3, 2\)")),
        CaseDef("eps-nan", {"mu": onp.array(0.0), "sigma": onp.array(1.0), "eps": onp.array([onp.nan])},
                tier="error", raises=(ValueError, "eps contains NaN")),
    ]


def _categorical_errors(extra=None):
    """Error cases shared by gumbel_max and gumbel_softmax (params ``extra`` added)."""
    ep = dict(extra or {})
    g4 = onp.array([[0.1, -0.2, 0.3, 0.0]])
    return [
        CaseDef("probs-not-summing-to-1", {"logits": onp.array([0.5, 0.6, 0.1, 0.1]), "g": g4},
                {"given": "probs", **ep}, tier="error",
                raises=(ValueError, r"given='probs'\) must sum to 1")),
        CaseDef("probs-negative", {"logits": onp.array([1.1, -0.1, 0.0, 0.0]), "g": g4},
                {"given": "probs", **ep}, tier="error", raises=(ValueError, r"must lie in \[0, 1\]")),
        CaseDef("all-neginf-logits", {"logits": onp.full(4, -onp.inf), "g": g4}, dict(ep), tier="error",
                raises=(ValueError, "all -inf")),
        CaseDef("K-mismatch", {"logits": onp.zeros(3), "g": g4}, dict(ep), tier="error",
                raises=(ValueError, "must broadcast to the shape")),
        CaseDef("g-inf", {"logits": LOGP4, "g": onp.array([[0.0, onp.inf, 0.0, 0.0]])}, dict(ep), tier="error",
                raises=(ValueError, r"g contains \+inf")),
        CaseDef("bad-given", {"logits": LOGP4, "g": g4}, {"given": "log_probs", **ep}, tier="error",
                raises=(ValueError, "given must be one of")),
    ]


def _gumbel_max_cases():
    return [
        CaseDef("p4-S6", lambda rng: {"logits": LOGP4, "g": _gumbel(rng, 6, 4)}),
        CaseDef("p4-S6-onehot", lambda rng: {"logits": LOGP4, "g": _gumbel(rng, 6, 4)}, {"onehot": True}),
        CaseDef("p4-S6-probs", lambda rng: {"logits": P4, "g": _gumbel(rng, 6, 4)}, {"given": "probs"}),
        CaseDef("B2-K5-S3", lambda rng: {"logits": normal(rng, 2, 5), "g": _gumbel(rng, 3, 2, 5)}, tier="full"),
        CaseDef("axis0-K5-S4", lambda rng: {"logits": normal(rng, 5, 1), "g": _gumbel(rng, 5, 4)},
                {"axis": 0, "onehot": True}, tier="full"),
        CaseDef("zero-prob-category", lambda rng: {"logits": onp.array([0.0, -onp.inf, 0.5, 1.0]),
                                                   "g": _gumbel(rng, 6, 4) + onp.array([0, 50.0, 0, 0])},
                tier="edge", note="a -inf logit is never chosen, even under a huge noise"),
        CaseDef("probs-with-zero", lambda rng: {"logits": onp.array([0.5, 0.0, 0.5]), "g": _gumbel(rng, 6, 3)},
                {"given": "probs", "onehot": True}, tier="edge", note="p = 0: log p = -inf without a warning"),
        *_categorical_errors(),
        CaseDef("onehot-not-bool", {"logits": LOGP4, "g": onp.zeros(4)}, {"onehot": 1}, tier="error",
                raises=(TypeError, "onehot must be True or False")),
    ]


def _gumbel_softmax_cases():
    def p4(rng, S=3):
        return {"logits": LOGP4, "g": _gumbel(rng, S, 4)}
    return [
        CaseDef("p4-S3-tau1", p4, {"tau": 1.0}),
        CaseDef("p4-S3-tau10", p4, {"tau": 10.0}),
        CaseDef("logits-S3-K5-tau0.5", lambda rng: {"logits": distinct(rng, 5), "g": _gumbel(rng, 3, 5)},
                {"tau": 0.5}),
        CaseDef("p4-S3-tau1-probs", lambda rng: {"logits": P4, "g": _gumbel(rng, 3, 4)},
                {"tau": 1.0, "given": "probs"}, note="log p from p; identical to passing log p"),
        CaseDef("p4-S3-tau1-hard", p4, {"tau": 1.0, "hard": True}, gradcheck=False,
                note="straight-through (extension): the forward value is piecewise constant, while "
                     "the VJP is by design that of the soft sample; tests/test_reparam.py checks it "
                     "equals the soft VJP"),
        *grid("p4-S4-tau{tau}", lambda rng, tau: p4(rng, 4), tier="full", params=lambda tau: {"tau": tau},
              tau=[0.1, 0.3, 3.0]),
        CaseDef("B2-K6-axis0-tau0.7", lambda rng: {"logits": normal(rng, 6, 2), "g": _gumbel(rng, 6, 2)},
                {"tau": 0.7, "axis": 0}, tier="full"),
        CaseDef("K2-S5-tau2", lambda rng: {"logits": normal(rng, 2), "g": _gumbel(rng, 5, 2)},
                {"tau": 2.0}, tier="full"),
        CaseDef("p4-S4-tau0.1-hard", lambda rng: p4(rng, 4), {"tau": 0.1, "hard": True}, tier="full",
                gradcheck=False, note="straight-through: see p4-S3-tau1-hard"),
        CaseDef("tau1e-3", lambda rng: {"logits": distinct(rng, 5), "g": _gumbel(rng, 4, 5)}, {"tau": 1e-3},
                tier="edge", gradcheck=False,
                note="τ = 1e-3: one-hot to rounding; the curvature ~1/τ² = 1e6 defeats central "
                     "differences with a step of 1e-6"),
        CaseDef("tau1e3", p4, {"tau": 1e3}, tier="edge", note="τ → ∞: ỹ → 1/K"),
        CaseDef("zero-prob-category", lambda rng: {"logits": onp.array([0.0, -onp.inf, 0.5, 1.0]),
                                                   "g": _gumbel(rng, 3, 4)}, {"tau": 0.5}, tier="edge",
                note="a -inf logit gets weight 0 and gradient 0"),
        CaseDef("probs-with-zero", lambda rng: {"logits": onp.array([0.5, 0.0, 0.5]), "g": _gumbel(rng, 3, 3)},
                {"tau": 1.0, "given": "probs"}, tier="edge", gradcheck=False,
                note="p = 0 sits on the boundary of the simplex: a step of 1e-6 would make p < 0"),
        *_categorical_errors({"tau": 1.0}),
        CaseDef("tau0", p4, {"tau": 0.0}, tier="error",
                raises=(ValueError, "tau must be a finite positive number")),
        CaseDef("tau-negative", p4, {"tau": -1.0}, tier="error",
                raises=(ValueError, "tau must be a finite positive number")),
        CaseDef("tau-inf", p4, {"tau": onp.inf}, tier="error",
                raises=(ValueError, "tau must be a finite positive number")),
    ]


def _log_prob_cases():
    return [
        CaseDef("K3-tau0.5", lambda rng: {"y": probs(rng, 3), "logits": normal(rng, 3)}, {"tau": 0.5}),
        CaseDef("B4-K4-tau1", lambda rng: {"y": probs(rng, 4, 4), "logits": LOGP4}, {"tau": 1.0}),
        CaseDef("B4-K4-tau1-log", lambda rng: {"y": onp.log(probs(rng, 4, 4)), "logits": LOGP4},
                {"tau": 1.0, "log_space": True}, note="the ExpConcrete density of x = log ỹ"),
        CaseDef("K2-tau2", lambda rng: {"y": probs(rng, 2), "logits": normal(rng, 2)}, {"tau": 2.0}, tier="full"),
        CaseDef("axis0-K5-tau0.3", lambda rng: {"y": probs(rng, 2, 5).T, "logits": normal(rng, 5, 1)},
                {"tau": 0.3, "axis": 0}, tier="full"),
        CaseDef("near-vertex", {"y": onp.array([1 - 2e-8, 1e-8, 1e-8]), "logits": onp.array([0.0, 1.0, -1.0])},
                {"tau": 0.5}, tier="edge", gradcheck=False,
                note="ỹ within 1e-8 of a vertex; a step of 1e-6 would leave the simplex"),
        CaseDef("tau0.05-log", lambda rng: {"y": onp.log(probs(rng, 2, 3)), "logits": normal(rng, 3)},
                {"tau": 0.05, "log_space": True}, tier="edge", note="small τ in log space"),
        CaseDef("y-not-summing-to-1", {"y": onp.array([0.2, 0.2, 0.2]), "logits": onp.zeros(3)}, {"tau": 1.0},
                tier="error", raises=(ValueError, "y must sum to 1")),
        CaseDef("y-zero", {"y": onp.array([0.0, 0.5, 0.5]), "logits": onp.zeros(3)}, {"tau": 1.0},
                tier="error", raises=(ValueError, r"y must lie in the open simplex \(entries > 0\)")),
        CaseDef("log-y-positive", {"y": onp.array([0.1, -1.0]), "logits": onp.zeros(2)},
                {"tau": 1.0, "log_space": True}, tier="error",
                raises=(ValueError, "must hold log-probabilities < 0")),
        CaseDef("tau0", {"y": onp.array([0.5, 0.5]), "logits": onp.zeros(2)}, {"tau": 0.0}, tier="error",
                raises=(ValueError, "tau must be a finite positive number")),
        CaseDef("K-mismatch", {"y": onp.array([0.5, 0.5]), "logits": onp.zeros(3)}, {"tau": 1.0}, tier="error",
                raises=(ValueError, "must broadcast to the shape")),
    ]


def _expectation_cases():
    return [
        CaseDef("p4", {"logits": LOGP4, "f_values": onp.array([1.0, 2.0, 3.0, 4.0])},
                note="E f = 3 for f = [1, 2, 3, 4]"),
        CaseDef("B3-K5", lambda rng: {"logits": normal(rng, 3, 5), "f_values": normal(rng, 5)}),
        CaseDef("B2-K7-f-per-row", lambda rng: {"logits": normal(rng, 2, 7), "f_values": normal(rng, 2, 7)},
                tier="full"),
        CaseDef("K1", {"logits": onp.array([0.3]), "f_values": onp.array([2.0])}, tier="edge",
                note="one category: E f = f, gradient 0"),
        CaseDef("extreme-logits", {"logits": onp.array([1e3, -1e3, 999.0]), "f_values": onp.array([1.0, 5.0, -1.0])},
                tier="edge", note="unshifted softmax overflows"),
        CaseDef("f-wrong-K", {"logits": onp.zeros(4), "f_values": onp.zeros(3)}, tier="error",
                raises=(ValueError, "does not broadcast")),
        CaseDef("logits-nan", {"logits": onp.array([0.0, onp.nan]), "f_values": onp.zeros(2)}, tier="error",
                raises=(ValueError, "logits contains NaN")),
    ]


def _baseline_errors(inputs):
    return [
        CaseDef("bad-baseline", inputs, {"baseline": "mean"}, tier="error",
                raises=(ValueError, "baseline must be one of")),
        CaseDef("baseline-nan", inputs, {"baseline": float("nan")}, tier="error",
                raises=(ValueError, "baseline must be finite")),
    ]


def _sf_cases():
    inp = lambda rng: {"f_values": normal(rng, 6), "score": normal(rng, 6, 3)}   # noqa: E731
    return [
        CaseDef("S6-P3", inp),
        CaseDef("S6-P3-b1.5", inp, {"baseline": 1.5}),
        CaseDef("S6-P3-loo", inp, {"baseline": "loo"}),
        CaseDef("S4-B2-P3-loo", lambda rng: {"f_values": normal(rng, 4), "score": normal(rng, 4, 2, 3)},
                {"baseline": "loo"}, tier="full"),
        CaseDef("S2-loo", {"f_values": onp.array([1.0, 3.0]), "score": onp.array([[1.0], [-1.0]])},
                {"baseline": "loo"}, tier="edge", note="the smallest S for a leave-one-out baseline"),
        CaseDef("S-mismatch", {"f_values": onp.zeros(3), "score": onp.zeros((4, 2))}, tier="error",
                raises=(ValueError, r"f_values must have shape \(S,\) and score \(S, ...\)")),
        CaseDef("loo-S1", {"f_values": onp.zeros(1), "score": onp.zeros((1, 2))}, {"baseline": "loo"},
                tier="error", raises=(ValueError, "baseline='loo' needs at least 2 samples")),
        *_baseline_errors(inp),
    ]


def _categorical_sf_cases():
    def inp(rng, S=8, K=4):
        return {"logits": LOGP4 if K == 4 else normal(rng, K), "f_values": normal(rng, K),
                "g": _gumbel(rng, S, K)}
    return [
        CaseDef("p4-S8", inp),
        CaseDef("p4-S8-b0.5", inp, {"baseline": 0.5}),
        CaseDef("p4-S8-loo", inp, {"baseline": "loo"}),
        CaseDef("K6-S10-loo", lambda rng: inp(rng, 10, 6), {"baseline": "loo"}, tier="full"),
        CaseDef("K1-S3", {"logits": onp.array([0.0]), "f_values": onp.array([2.0]), "g": onp.zeros((3, 1))},
                tier="edge", note="one category: the score e_y - p is 0"),
        CaseDef("g-not-S-by-K", {"logits": LOGP4, "f_values": onp.zeros(4), "g": onp.zeros(4)}, tier="error",
                raises=(ValueError, r"g must have shape \(S, K\) = \(S, 4\)")),
        CaseDef("f-wrong-K", {"logits": LOGP4, "f_values": onp.zeros(3), "g": onp.zeros((2, 4))}, tier="error",
                raises=(ValueError, r"logits and f_values must both have shape \(K,\)")),
        *_baseline_errors(inp),
    ]


def _gs_pathwise_cases():
    def inp(rng, S=5, per_sample=True):
        return {"logits": LOGP4, "g": _gumbel(rng, S, 4),
                "df_dy": normal(rng, S, 4) if per_sample else onp.array([1.0, 2.0, 3.0, 4.0])}
    return [
        CaseDef("p4-S5-tau1", inp, {"tau": 1.0}),
        CaseDef("p4-S5-tau0.5-linear-f", lambda rng: inp(rng, per_sample=False), {"tau": 0.5},
                note="f(y) = <[1, 2, 3, 4], y>: df/dy is the table"),
        CaseDef("p4-S5-tau0.1", inp, {"tau": 0.1}, tier="full"),
        CaseDef("p4-S5-tau5", inp, {"tau": 5.0}, tier="full"),
        CaseDef("tau1e-3", lambda rng: {"logits": distinct(rng, 4), "g": _gumbel(rng, 3, 4),
                                        "df_dy": normal(rng, 3, 4)}, {"tau": 1e-3}, tier="edge",
                gradcheck=False,
                note="τ = 1e-3: the softmax saturates, so the estimate is tiny (entries ~1e-239, "
                     "kept to full relative accuracy) and its curvature ~1/τ³ defeats central "
                     "differences in float64"),
        CaseDef("tau0", inp, {"tau": 0.0}, tier="error", raises=(ValueError, "tau must be a finite positive number")),
        CaseDef("df-wrong-shape", {"logits": LOGP4, "g": onp.zeros((2, 4)), "df_dy": onp.zeros((3, 4))},
                {"tau": 1.0}, tier="error", raises=(ValueError, r"df_dy must have shape \(S, K\)")),
        CaseDef("logits-2d", {"logits": onp.zeros((2, 4)), "g": onp.zeros((2, 4)), "df_dy": onp.zeros(4)},
                {"tau": 1.0}, tier="error", raises=(ValueError, r"logits must have shape \(K,\)")),
    ]


def _post_normal(rng, S):
    """The post's example: μ = 1, σ = 2, f(z) = z² (f' = 2z) at z = μ + σε."""
    eps = normal(rng, S)
    z = 1.0 + 2.0 * eps
    return eps, z


def _normal_sf_cases():
    def post(rng):
        eps, z = _post_normal(rng, 8)
        return {"f_values": z ** 2, "sigma": onp.array(2.0), "eps": eps}
    return [
        CaseDef("post-f-z2-S8", post, note="f(z) = z², μ = 1, σ = 2"),
        CaseDef("post-f-z2-S8-loo", post, {"baseline": "loo"}),
        CaseDef("S6-D3", lambda rng: {"f_values": normal(rng, 6), "sigma": unit(rng, 3, low=0.5, high=2.0),
                                      "eps": normal(rng, 6, 3)}, {"baseline": 0.25}, tier="full"),
        CaseDef("tails", {"f_values": (1 + 2 * onp.array([-6.0, 0.0, 6.0])) ** 2, "sigma": onp.array(2.0),
                          "eps": onp.array([-6.0, 0.0, 6.0])}, tier="edge",
                note="ε = ±6: the score-function terms z²ε/σ reach ~500, the heavy tails behind its variance"),
        CaseDef("sigma0", {"f_values": onp.zeros(2), "sigma": onp.array(0.0), "eps": onp.zeros(2)}, tier="error",
                raises=(ValueError, "sigma must be > 0")),
        CaseDef("f-wrong-S", {"f_values": onp.zeros(3), "sigma": onp.array(1.0), "eps": onp.zeros(2)},
                tier="error", raises=(ValueError, r"f_values must have shape \(S,\)")),
        *_baseline_errors(post),
    ]


def _normal_pathwise_cases():
    def post(rng):
        eps, z = _post_normal(rng, 8)
        return {"df_dz": 2 * z, "eps": eps}
    return [
        CaseDef("post-f-z2-S8", post, note="f(z) = z², μ = 1, σ = 2: f' = 2z"),
        CaseDef("S6-D3", lambda rng: {"df_dz": normal(rng, 6, 3), "eps": normal(rng, 6, 3)}, tier="full"),
        CaseDef("tails", {"df_dz": 2 * (1 + 2 * onp.array([-6.0, 0.0, 6.0])), "eps": onp.array([-6.0, 0.0, 6.0])},
                tier="edge", note="ε = ±6: the pathwise terms stay linear in ε (2z and 2zε)"),
        CaseDef("shape-mismatch", {"df_dz": onp.zeros(3), "eps": onp.zeros(4)}, tier="error",
                raises=(ValueError, "df_dz and eps must have the same shape")),
        CaseDef("eps-inf", {"df_dz": onp.zeros(1), "eps": onp.array([onp.inf])}, tier="error",
                raises=(ValueError, r"eps contains \+inf")),
    ]


OPS = [
    OpSpec("reparam.normal_reparam", rp.normal_reparam, ("mu", "sigma", "eps"), ("mu", "sigma"),
           _normal_cases(), f"{POST} (z = μ + σε, the continuous case)"),
    OpSpec("reparam.gumbel_from_uniform", rp.gumbel_from_uniform, ("u",), ("u",), _uniform_cases(),
           f"{POST} (Gumbel Max: g = −log(−log u)); modes: docs/reparam.md (Gumbel noise)",
           quirks={"mode": ("keras", "clip", "tiny")},
           flags={"mode": "exact default (the post); keras (bojone/vae, eps 1e-7; Jang notebook 1e-20); "
                           "clip (torch.distributions); tiny (TFP/JAX)"}),
    OpSpec("reparam.gumbel_from_exponential", rp.gumbel_from_exponential, ("e",), ("e",), _exponential_cases(),
           "pytorch/pytorch torch/nn/functional.py gumbel_softmax (g = −log Exp(1))"),
    OpSpec("reparam.gumbel_max", rp.gumbel_max, ("logits", "g"), (), _gumbel_max_cases(),
           f"{POST} (Gumbel Max: argmax(log p − log(−log u)))", outputs=("sample",),
           flags={"given": "logits default; probs"}),
    OpSpec("reparam.gumbel_softmax", rp.gumbel_softmax, ("logits", "g"), ("logits", "g"),
           _gumbel_softmax_cases(), f"{POST} (Gumbel Softmax: softmax((o + g)/τ)); hard: extension",
           flags={"hard": "False default (the post); True straight-through (extension)",
                  "given": "logits default; probs"}),
    OpSpec("reparam.relaxed_onehot_log_prob", rp.relaxed_onehot_log_prob, ("y", "logits"), ("y", "logits"),
           _log_prob_cases(), "Maddison, Mnih & Teh arXiv 1611.00712 (Concrete density); extension of " + POST,
           flags={"log_space": "False: density of ỹ; True: ExpConcrete density of log ỹ"}),
    OpSpec("reparam.categorical_expectation", rp.categorical_expectation, ("logits", "f_values"),
           ("logits", "f_values"), _expectation_cases(), f"{POST} (L = Σ_y p_θ(y) f(y))"),
    OpSpec("reparam.categorical_exact_grad", rp.categorical_exact_grad, ("logits", "f_values"),
           ("logits", "f_values"), _expectation_cases(), f"{POST} (∇L = Σ_y f(y) p(y) ∇log p(y))"),
    OpSpec("reparam.score_function_grad", rp.score_function_grad, ("f_values", "score"), ("f_values", "score"),
           _sf_cases(), f"{POST} (score function: ∇E[f] = E[f ∇log p])",
           flags={"baseline": "0 default; a constant; 'loo' leave-one-out"}),
    OpSpec("reparam.categorical_score_function_grad", rp.categorical_score_function_grad,
           ("logits", "f_values", "g"), ("logits", "f_values"), _categorical_sf_cases(),
           f"{POST} (score function, discrete case, Gumbel-Max sampling)",
           flags={"baseline": "0 default; a constant; 'loo' leave-one-out"}),
    OpSpec("reparam.gumbel_softmax_pathwise_grad", rp.gumbel_softmax_pathwise_grad, ("logits", "g", "df_dy"),
           ("logits", "g", "df_dy"), _gs_pathwise_cases(), f"{POST} (Gumbel Softmax reparameterized gradient)"),
    OpSpec("reparam.normal_score_function_grad", rp.normal_score_function_grad, ("f_values", "sigma", "eps"),
           ("f_values", "sigma", "eps"), _normal_sf_cases(), f"{POST} (score function for N(μ, σ²))",
           outputs=("d_mu", "d_sigma"), flags={"baseline": "0 default; a constant; 'loo' leave-one-out"}),
    OpSpec("reparam.normal_pathwise_grad", rp.normal_pathwise_grad, ("df_dz", "eps"), ("df_dz", "eps"),
           _normal_pathwise_cases(), f"{POST} (pathwise: E_ε[(∂f/∂g)(∂g_θ/∂θ)])", outputs=("d_mu", "d_sigma")),
]
