"""Registry rows for the shared stable primitives (``kexue_ref.numerics``).

Edge cases follow decision D4 of ``docs/conventions.md``: all ``-inf`` slices (where SciPy,
torch and JAX return NaN values or NaN gradients, ``docs/references.md`` § "Smoothing peers"),
fully masked rows, extreme scores, length 1.
"""
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref.cases._gen import normal
from kexue_ref.registry import CaseDef, OpSpec, grid

SRC = ("Blanchard, Higham & Higham 2021, doi:10.1093/imanum/draa038; "
       "https://kexue.fm/archives/6620 (max ≈ logsumexp)")
NEG = -onp.inf


def _axis_cases():
    return (grid("n{n}", lambda rng, n: {"x": normal(rng, n, scale=2.0)}, n=[1, 5])
            + [CaseDef("B3-n4-axis0", lambda rng: {"x": normal(rng, 3, 4)}, {"axis": 0}),
               CaseDef("B2-H3-n7", lambda rng: {"x": normal(rng, 2, 3, 7, scale=3.0)}, tier="full")])


def _reduction_edges():
    return [
        CaseDef("all-neginf-row", {"x": onp.array([[0.5, NEG, 2.0], [NEG, NEG, NEG]])}, tier="edge",
                note="an all -inf slice: no mass (value -inf / probabilities 0, gradient 0)"),
        CaseDef("extreme-1e4", {"x": onp.array([1e4, -1e4, 1e4 - 1.0, 0.0])}, tier="edge",
                note="unshifted exponentials overflow"),
        CaseDef("length1-rows", {"x": onp.array([[3.0], [-2.0]])}, tier="edge"),
        CaseDef("nan", {"x": onp.array([1.0, onp.nan])}, tier="error", raises=(ValueError, "x contains NaN")),
        CaseDef("posinf", {"x": onp.array([1.0, onp.inf])}, tier="error", raises=(ValueError, r"x contains \+inf")),
        CaseDef("empty-axis", {"x": onp.zeros((2, 0))}, tier="error", raises=(ValueError, "empty axis")),
        CaseDef("axis-out-of-range", {"x": onp.zeros((2, 3))}, {"axis": 2}, tier="error",
                raises=(ValueError, "axis 2 is out of range")),
    ]


def _elementwise_cases(extreme):
    return [
        CaseDef("n6", lambda rng: {"x": normal(rng, 6, scale=3.0)}),
        CaseDef("B2-n3", lambda rng: {"x": normal(rng, 2, 3)}, tier="full"),
        CaseDef("extreme", {"x": onp.array(extreme)}, tier="edge",
                note="naive exp(-x) or exp(x) overflows"),
        CaseDef("nan", {"x": onp.array([0.0, onp.nan])}, tier="error", raises=(ValueError, "x contains NaN")),
    ]


def _masked_cases():
    def inputs(rng, B, T):
        mask = rng.random((B, T, T)) < 0.6
        mask[:, 0, :] = False  # one fully masked row per batch
        mask[:, 1, :] = True
        return {"x": normal(rng, B, T, T, scale=2.0), "mask": mask}
    return [
        CaseDef("B1-T4", lambda rng: inputs(rng, 1, 4)),
        CaseDef("B2-T5-fill-1e9", lambda rng: inputs(rng, 2, 5), {"fill": -1e9},
                note="replacement masking: a fully masked row becomes uniform"),
        CaseDef("B2-T7", lambda rng: inputs(rng, 2, 7), tier="full"),
        CaseDef("all-masked", lambda rng: {"x": normal(rng, 2, 3), "mask": onp.zeros((2, 3), bool)}, tier="edge",
                note="D4: output 0 and gradient 0"),
        CaseDef("broadcast-mask", lambda rng: {"x": normal(rng, 2, 3, 4),
                                               "mask": onp.array([True, False, True, False])}, tier="edge"),
        CaseDef("mask-not-bool", lambda rng: {"x": normal(rng, 2, 3), "mask": onp.ones((2, 3))}, tier="error",
                raises=(TypeError, "mask must be a boolean array")),
        CaseDef("mask-wrong-shape", lambda rng: {"x": normal(rng, 2, 3), "mask": onp.ones((3, 2), bool)},
                tier="error", raises=(ValueError, "does not broadcast")),
    ]


OPS = [
    OpSpec("numerics.logsumexp", nx.logsumexp, ("x",), ("x",), _axis_cases() + _reduction_edges(), SRC),
    OpSpec("numerics.softmax", nx.softmax, ("x",), ("x",), _axis_cases() + _reduction_edges(), SRC),
    OpSpec("numerics.log_softmax", nx.log_softmax, ("x",), ("x",), _axis_cases() + _reduction_edges(), SRC),
    OpSpec("numerics.sigmoid", nx.sigmoid, ("x",), ("x",), _elementwise_cases([-800.0, -30.0, 0.0, 30.0, 800.0]),
           "SciPy expit; σ(x) = 1/(1 + e^{-x})"),
    OpSpec("numerics.log_sigmoid", nx.log_sigmoid, ("x",), ("x",), _elementwise_cases([-800.0, -40.0, 0.0, 40.0, 800.0]),
           "log σ(x) = −softplus(−x); SciPy log_expit"),
    OpSpec("numerics.softplus", nx.softplus, ("x",), ("x",), _elementwise_cases([-800.0, -40.0, 0.0, 40.0, 800.0]),
           "https://kexue.fm/archives/3290 (relu ≈ LSE(x, 0), derived)"),
    OpSpec("numerics.masked_softmax", nx.masked_softmax, ("x", "mask"), ("x",), _masked_cases(),
           "masked softmax, decision D4 of docs/conventions.md; https://kexue.fm/archives/6853",
           quirks={"fill": "*"}),
]
