"""Registry rows for ``kexue_ref.smoothing`` (post https://kexue.fm/archives/6620).

The post's example vector x = [2, 1, 4, 5, 3] is a case of every op that takes scores; edge
cases are those of ``docs/smoothing.md`` § "Registry and tables" (extreme scores, -inf entries,
length 1, large K); error cases refuse K <= 0, an empty axis, a shape mismatch and NaN.
"""
import numpy as onp

from kexue_ref import smoothing as sm
from kexue_ref.cases._gen import binary, distinct, normal, probs, unit
from kexue_ref.registry import CaseDef, OpSpec, grid

POST = "https://kexue.fm/archives/6620"
X_POST = onp.array([2.0, 1.0, 4.0, 5.0, 3.0])
NEG = -onp.inf


def _score_cases(extra_params=None, allow_neg_inf=True):
    """Cases shared by smooth_max, soft_onehot, soft_argmax (scores along the last axis)."""
    ep = extra_params or {}
    rows = [CaseDef(f"post-x-K{k:g}", {"x": X_POST}, {"scale": k, **ep}) for k in (1.0, 10.0)]
    rows += grid("n{n}-K{K:g}", lambda rng, n, K: {"x": distinct(rng, 3, n)},
                 params=lambda n, K: {"scale": K, **ep}, n=[1, 4, 9], K=[0.5, 3.0], tier="full")
    rows += [
        CaseDef("B2-n6-axis0", lambda rng: {"x": distinct(rng, 6, 2, axis=0)}, {"axis": 0, **ep}, tier="full"),
        CaseDef("extreme-1e4", {"x": onp.array([[1e4, -1e4, 9999.0], [-1e4, -9999.5, -1e4 + 3]])},
                {"scale": 1.0, **ep}, tier="edge", note="the unshifted exponential overflows"),
        CaseDef("large-K-1e3", {"x": X_POST}, {"scale": 1e3, **ep}, tier="edge",
                note="K·x = 5000: hard limit reached to rounding"),
        CaseDef("n1", {"x": onp.array([[0.7], [-3.0]])}, {"scale": 2.0, **ep}, tier="edge"),
        CaseDef("scale-zero", {"x": X_POST}, {"scale": 0.0, **ep}, tier="error",
                raises=(ValueError, "scale must be a finite positive number")),
        CaseDef("scale-negative", {"x": X_POST}, {"scale": -1.0, **ep}, tier="error",
                raises=(ValueError, "scale must be a finite positive number")),
        CaseDef("empty-axis", {"x": onp.zeros((3, 0))}, dict(ep), tier="error", raises=(ValueError, "empty axis")),
        CaseDef("nan", {"x": onp.array([1.0, onp.nan, 2.0])}, dict(ep), tier="error",
                raises=(ValueError, "x contains NaN")),
    ]
    if allow_neg_inf:
        rows.append(CaseDef("neginf-entries", {"x": onp.array([[2.0, NEG, 1.0], [NEG, NEG, NEG]])},
                            {"scale": 2.0, **ep}, tier="edge",
                            note="-inf entries carry no mass; an all -inf row is defined (D4)"))
    return rows


def _min_cases():
    rows = [CaseDef("post-x-K1", {"x": X_POST}, {"scale": 1.0}),
            CaseDef("n7-K4", lambda rng: {"x": distinct(rng, 2, 7)}, {"scale": 4.0}, tier="full"),
            CaseDef("posinf-entries", {"x": onp.array([[2.0, onp.inf, 1.0]])}, {"scale": 2.0}, tier="edge",
                    note="+inf entries are ignored by the minimum"),
            CaseDef("extreme-1e4", {"x": onp.array([1e4, -1e4, -9999.0])}, tier="edge"),
            CaseDef("scale-zero", {"x": X_POST}, {"scale": 0.0}, tier="error",
                    raises=(ValueError, "scale must be a finite positive number")),
            CaseDef("neginf", {"x": onp.array([1.0, NEG])}, tier="error", raises=(ValueError, "x contains -inf"))]
    return rows


def _accuracy_cases():
    def inputs(rng, B, K):
        return {"p": probs(rng, B, K), "y": rng.integers(0, K, size=B)}
    return (grid("B{B}-K{K}", inputs, B=[4], K=[3]) + grid("B{B}-K{K}", inputs, tier="full", B=[1, 16], K=[2, 10])
            + [CaseDef("onehot-p", {"p": onp.eye(4)[[0, 2, 1, 3, 3]], "y": onp.array([0, 1, 1, 3, 2])}, tier="edge",
                       note="one-hot p: equals the hard accuracy 3/5; p sits on the boundary of [0, 1], "
                            "so finite differences would leave the domain", gradcheck=False),
               CaseDef("label-out-of-range", {"p": onp.full((2, 3), 1 / 3), "y": onp.array([0, 3])}, tier="error",
                       raises=(ValueError, r"y must hold labels in \[0, 3\)")),
               CaseDef("float-labels", {"p": onp.full((2, 3), 1 / 3), "y": onp.array([0.0, 1.0])}, tier="error",
                       raises=(TypeError, "y must hold integer class labels")),
               CaseDef("p-not-2d", {"p": onp.full(3, 1 / 3), "y": onp.array([0])}, tier="error",
                       raises=(ValueError, r"p must have shape \(B, K\)")),
               CaseDef("y-wrong-length", {"p": onp.full((2, 3), 1 / 3), "y": onp.array([0, 1, 2])}, tier="error",
                       raises=(ValueError, r"y must have shape \(B,\)")),
               CaseDef("p-out-of-range", {"p": onp.array([[1.5, -0.5]]), "y": onp.array([0])}, tier="error",
                       raises=(ValueError, r"p must hold probabilities in \[0, 1\]"))])


def _prf_cases():
    def micro(rng, B):
        return {"p": unit(rng, B), "t": binary(rng, B)}

    def macro(rng, B, K):
        t = binary(rng, B, K)
        t[0] = 1.0  # every label has a positive
        return {"p": unit(rng, B, K), "t": t}
    return (grid("micro-B{B}", micro, B=[8]) + grid("micro-B{B}", micro, tier="full", B=[1, 64])
            + grid("macro-B{B}-K{K}", macro, params=lambda B, K: {"average": "macro"}, B=[6], K=[3])
            + [CaseDef("hard-p-eps0", {"p": onp.array([1.0, 1.0, 0.0, 0.0, 1.0]), "t": onp.array([1.0, 0.0, 1.0, 0.0, 1.0])},
                       {"eps": 0.0}, tier="edge", gradcheck=False,
                       note="p in {0,1}: the hard score; finite differences would leave [0, 1]"),
               CaseDef("no-positives", {"p": onp.array([1e-9, 0.0, 2e-9]), "t": onp.zeros(3)}, tier="edge",
                       gradcheck=False, note="the denominator is ~0; eps keeps it defined; t = 0 "
                                             "and p = 0 sit on the boundary of [0, 1]"),
               CaseDef("micro-2d", lambda rng: {"p": unit(rng, 4, 3), "t": binary(rng, 4, 3)}, tier="edge",
                       note="micro sums every entry of a multi-label array"),
               CaseDef("shape-mismatch", {"p": onp.full(3, 0.5), "t": onp.ones(4)}, tier="error",
                       raises=(ValueError, "p and t must have the same shape")),
               CaseDef("bad-average", {"p": onp.full(3, 0.5), "t": onp.ones(3)}, {"average": "weighted"},
                       tier="error", raises=(ValueError, "average must be one of")),
               CaseDef("negative-eps", {"p": onp.full(3, 0.5), "t": onp.ones(3)}, {"eps": -1.0}, tier="error",
                       raises=(ValueError, "eps must be a finite number >= 0")),
               CaseDef("nan-p", {"p": onp.array([0.5, onp.nan]), "t": onp.ones(2)}, tier="error",
                       raises=(ValueError, "p contains NaN"))])


def _kmax_cases():
    return ([CaseDef("counterexample-k2", {"x": onp.array([4.5, 2.8, 2.3])}, {"k": 2},
                     note="docs/smoothing.md § Top-k: the first component exceeds 1"),
             CaseDef("post-x-k2", {"x": X_POST}, {"k": 2})]
            + grid("n{n}-k{k}", lambda rng, n, k: {"x": distinct(rng, 2, n)}, params=lambda n, k: {"k": k},
                   tier="full", n=[6], k=[1, 3, 6])
            + [CaseDef("axis0", lambda rng: {"x": distinct(rng, 5, 2, axis=0)}, {"k": 2, "axis": 0}, tier="full"),
               CaseDef("n1-k1", {"x": onp.array([[0.3]])}, {"k": 1}, tier="edge"),
               CaseDef("sharp-tau0.01", {"x": X_POST / 0.01}, {"k": 2}, tier="edge",
                       note="x/τ with τ = 0.01 and unit gaps: multi-hot of the top 2 to rounding"),
               CaseDef("k-too-large", {"x": X_POST}, {"k": 6}, tier="error", raises=(ValueError, "k must be <= 5")),
               CaseDef("k-zero", {"x": X_POST}, {"k": 0}, tier="error", raises=(ValueError, "k must be >= 1")),
               CaseDef("k-float", {"x": X_POST}, {"k": 2.0}, tier="error", raises=(TypeError, "k must be an integer")),
               CaseDef("inf", {"x": onp.array([1.0, onp.inf])}, {"k": 1}, tier="error",
                       raises=(ValueError, r"x contains \+inf"))])


def _elementwise_cases():
    return [CaseDef("n7-K1", lambda rng: {"x": normal(rng, 7, scale=2.0)}, {"scale": 1.0}),
            CaseDef("n7-K20", lambda rng: {"x": normal(rng, 7)}, {"scale": 20.0}, tier="full"),
            CaseDef("extreme", {"x": onp.array([-1e4, -40.0, 0.0, 40.0, 1e4])}, {"scale": 3.0}, tier="edge",
                    note="e^{Kx} overflows unless computed by logaddexp"),
            CaseDef("scale-inf", {"x": onp.array([1.0])}, {"scale": onp.inf}, tier="error",
                    raises=(ValueError, "scale must be a finite positive number")),
            CaseDef("nan", {"x": onp.array([onp.nan])}, tier="error", raises=(ValueError, "x contains NaN"))]


OPS = [
    OpSpec("smoothing.smooth_max", sm.smooth_max, ("x",), ("x",), _score_cases(),
           f"{POST} (max ≈ (1/K)·logsumexp(Kx)); https://kexue.fm/archives/3290"),
    OpSpec("smoothing.smooth_min", sm.smooth_min, ("x",), ("x",), _min_cases(), f"{POST} (min = −max(−x))"),
    OpSpec("smoothing.soft_onehot", sm.soft_onehot, ("x",), ("x",), _score_cases(),
           f"{POST} (softmax ≈ onehot(argmax))"),
    OpSpec("smoothing.soft_argmax", sm.soft_argmax, ("x",), ("x",),
           _score_cases() + [CaseDef("post-x-K1-base1", {"x": X_POST}, {"scale": 1.0, "base": 1},
                                     note="the post's 1-based value 3.7336"),
                             CaseDef("base2", {"x": X_POST}, {"base": 2}, tier="error",
                                     raises=(ValueError, "base must be one of"))],
           f"{POST} (argmax ≈ Σ i·softmax(x)_i)", flags={"base": "0 default; 1 reproduces the post (D6)"}),
    OpSpec("smoothing.smooth_accuracy", sm.smooth_accuracy, ("p", "y"), ("p",), _accuracy_cases(),
           f"{POST} (accuracy ≈ mean <onehot(y), p>)"),
    OpSpec("smoothing.smooth_f1", sm.smooth_f1, ("p", "t"), ("p",), _prf_cases(),
           f"{POST} (F1 ≈ 2Σtp / Σ(t + p))", flags={"average": "micro default (the post); macro per label"}),
    OpSpec("smoothing.smooth_precision", sm.smooth_precision, ("p", "t"), ("p",), _prf_cases(),
           f"{POST} ('similarly'); formula: a library decision, docs/smoothing.md § F1"),
    OpSpec("smoothing.smooth_recall", sm.smooth_recall, ("p", "t"), ("p",), _prf_cases(),
           f"{POST} ('similarly'); formula: a library decision, docs/smoothing.md § F1"),
    OpSpec("smoothing.soft_kmax", sm.soft_kmax, ("x",), ("x",), _kmax_cases(),
           f"{POST} (soft-k-max recursion); re-quoted in https://kexue.fm/archives/10373"),
    OpSpec("smoothing.smooth_abs", sm.smooth_abs, ("x",), ("x",), _elementwise_cases(),
           "https://kexue.fm/archives/3290 (|x| = lim (1/k) ln(e^{kx} + e^{-kx})), extension"),
    OpSpec("smoothing.soft_relu", sm.soft_relu, ("x",), ("x",), _elementwise_cases(),
           "derived from https://kexue.fm/archives/3290 (relu = max(x, 0) ≈ LSE(x, 0)), extension"),
]
