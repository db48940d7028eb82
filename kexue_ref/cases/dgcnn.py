"""Registry rows for kexue_ref.dgcnn (https://kexue.fm/archives/6671).

Weights are passed as named array inputs (every public function of the subpackage takes its
weights as arrays), so every row is tabled and gradient-checked with tiny sizes. Masks, token
ids, spans and triples are non-differentiable array inputs.
"""
import numpy as onp

from kexue_ref import dgcnn as dg
from kexue_ref.registry import CaseDef, OpSpec, Tol, grid

POST = "https://kexue.fm/archives/6671"
CODE = "bojone/kg-2019 kg_without_ds.py"


def _n(rng, *shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def _u(rng, *shape):
    return rng.uniform(0.05, 0.95, size=shape)


def _mask(lengths, T):
    """(B, T) validity mask from per-sample lengths (right padding)."""
    return onp.arange(T)[None, :] < onp.asarray(lengths)[:, None]


# ---------------------------------------------------------------------------
# Convolution, block, stack
# ---------------------------------------------------------------------------

def _conv_inputs(rng, B=2, T=7, Din=3, Dout=2, k=3):
    return {"x": _n(rng, B, T, Din), "w": _n(rng, k, Din, Dout, scale=0.5), "b": _n(rng, Dout, scale=0.1)}


def _conv_cases():
    return [
        CaseDef("B2-T7-k3-r1", lambda rng: _conv_inputs(rng), {"dilation": 1}),
        CaseDef("B2-T7-k3-r2", lambda rng: _conv_inputs(rng), {"dilation": 2}),
        *grid("T{T}-r{r}", lambda rng, T, r: _conv_inputs(rng, T=T), params=lambda T, r: {"dilation": r},
              tier="full", T=[1, 9], r=[1, 5]),
        CaseDef("even-k2-r3", lambda rng: _conv_inputs(rng, k=2), {"dilation": 3}, tier="edge",
                note="Keras 'same' with even k: TF pads floor((k-1)r/2) = 1 on the left, so the taps "
                     "are x_{t-1} and x_{t+2}"),
        CaseDef("T4-r5", lambda rng: _conv_inputs(rng, T=4), {"dilation": 5}, tier="edge",
                note="T < r: only the centre tap sees data"),
        CaseDef("bad-din", lambda rng: {"x": onp.zeros((1, 4, 3)), "w": onp.zeros((3, 2, 2)), "b": onp.zeros(2)},
                tier="error", raises=(ValueError, r"w must have shape \(k, D_in, D_out\) with D_in = 3")),
        CaseDef("dilation-0", lambda rng: _conv_inputs(rng), {"dilation": 0}, tier="error",
                raises=(ValueError, "dilation must be >= 1")),
        CaseDef("x-2d", {"x": onp.zeros((4, 3)), "w": onp.zeros((3, 3, 2)), "b": onp.zeros(2)}, tier="error",
                raises=(ValueError, r"x must have shape \(B, T, D\)")),
    ]


def _block_inputs(rng, B=2, T=6, D=3, lengths=None, drop=False):
    lengths = [T] * B if lengths is None else lengths
    return {"x": _n(rng, B, T, D), "mask": _mask(lengths, T), "w": _n(rng, 3, D, 2 * D, scale=0.5),
            "b": _n(rng, 2 * D, scale=0.1),
            "gate_keep": (rng.random((B, T, D)) > 0.3) if drop else onp.ones((B, T, D), bool)}


def _block_cases():
    pad = {"lengths": [6, 4]}
    return [
        CaseDef("post-r1-padded", lambda rng: _block_inputs(rng, **pad), {"dilation": 1, "rate": 0.0}),
        CaseDef("keras-r2-padded", lambda rng: _block_inputs(rng, **pad), {"dilation": 2, "gate": "keras", "rate": 0.0}),
        CaseDef("post-dropout", lambda rng: _block_inputs(rng, drop=True), {"dilation": 1, "rate": 0.1},
                note="explicit keep mask on the gate logits, kept logits / 0.9 (the code's training mode)"),
        CaseDef("keras-dropout", lambda rng: _block_inputs(rng, drop=True), {"dilation": 5, "gate": "keras", "rate": 0.1},
                tier="full"),
        *grid("post-T{T}-r{r}", lambda rng, T, r: _block_inputs(rng, T=T), params=lambda T, r: {"dilation": r, "rate": 0.0},
              tier="full", T=[1, 11], r=[2, 5]),
        CaseDef("fully-padded-sample", lambda rng: _block_inputs(rng, lengths=[6, 0]), {"dilation": 1, "rate": 0.0},
                tier="edge", note="a sample with no valid token gives 0"),
        CaseDef("mask-wrong-length", lambda rng: {**_block_inputs(rng), "mask": onp.ones((2, 5), bool)},
                tier="error", raises=(ValueError, r"mask must have shape \(B, T\) = \(2, 6\)")),
        CaseDef("mask-not-bool", lambda rng: {**_block_inputs(rng), "mask": onp.ones((2, 6))},
                tier="error", raises=(TypeError, "mask must be a boolean array")),
        CaseDef("bad-gate", lambda rng: _block_inputs(rng), {"gate": "torch"}, tier="error",
                raises=(ValueError, "gate must be one of")),
        CaseDef("rate-1", lambda rng: _block_inputs(rng), {"rate": 1.0}, tier="error",
                raises=(ValueError, r"rate must lie in \[0, 1\)")),
        CaseDef("w-not-fused", lambda rng: {**_block_inputs(rng), "w": onp.zeros((3, 3, 3))}, tier="error",
                raises=(ValueError, r"w must have shape \(k, D, 2D\)")),
    ]


def _stack_inputs(rng, L=6, B=2, T=9, D=2, lengths=(9, 6)):
    return {"x": _n(rng, B, T, D), "mask": _mask(list(lengths), T), "w": _n(rng, L, 3, D, 2 * D, scale=0.5),
            "b": _n(rng, L, 2 * D, scale=0.1)}


def _stack_cases():
    light, full = list(dg.STACK_6), list(dg.STACK_12)
    return [
        CaseDef("light-padded", lambda rng: _stack_inputs(rng), {"dilations": light}),
        CaseDef("light-keras", lambda rng: _stack_inputs(rng), {"dilations": light, "gate": "keras"}, tier="full"),
        CaseDef("full12-T8", lambda rng: _stack_inputs(rng, L=12, T=8, lengths=(8, 5)), {"dilations": full}, tier="full"),
        CaseDef("T1", lambda rng: _stack_inputs(rng, T=1, lengths=(1, 1)), {"dilations": light}, tier="edge"),
        CaseDef("dilations-mismatch", lambda rng: _stack_inputs(rng), {"dilations": full}, tier="error",
                raises=(ValueError, r"w must have shape \(L, k, D, 2D\) = \(12,")),
        CaseDef("mask-wrong-length", lambda rng: {**_stack_inputs(rng), "mask": onp.ones((2, 8), bool)},
                {"dilations": light}, tier="error", raises=(ValueError, r"mask must have shape \(B, T\)")),
    ]


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------

def _att_inputs(rng, B=2, T=5, Din=4, H=2, Dh=2, lengths=(5, 3)):
    return {"x": _n(rng, B, T, Din), "mask": _mask(list(lengths), T),
            **{n: _n(rng, Din, H * Dh, scale=0.7) for n in ("wq", "wk", "wv")}}


def _att_cases():
    return [
        CaseDef("H2-padded", lambda rng: _att_inputs(rng), {"heads": 2}),
        CaseDef("H2-padded-keras", lambda rng: _att_inputs(rng), {"heads": 2, "compat": "keras"},
                note="padded query rows keep an average of the valid values (the padding leak)"),
        CaseDef("H1-no-padding", lambda rng: _att_inputs(rng, lengths=(5, 5)), {"heads": 1}, tier="full"),
        CaseDef("H4-T9", lambda rng: _att_inputs(rng, T=9, H=4, lengths=(9, 2)), {"heads": 4}, tier="full"),
        CaseDef("fully-masked-sample", lambda rng: _att_inputs(rng, lengths=(5, 0)), {"heads": 2}, tier="edge",
                note="D4: a sample with no valid key gives output 0 and gradient 0"),
        CaseDef("fully-masked-keras", lambda rng: _att_inputs(rng, lengths=(5, 0)), {"heads": 2, "compat": "keras"},
                tier="edge",
                note="-1e10 on every key: the penalty is taken relative to its minimum over the keys, "
                     "so the rows are exactly the plain softmax average"),
        CaseDef("mask-wrong-length", lambda rng: {**_att_inputs(rng), "mask": onp.ones((2, 4), bool)},
                {"heads": 2}, tier="error", raises=(ValueError, r"mask must have shape \(B, T\) = \(2, 5\)")),
        CaseDef("heads-not-divisor", lambda rng: _att_inputs(rng), {"heads": 3}, tier="error",
                raises=(ValueError, "not a multiple of heads = 3")),
        CaseDef("bad-compat", lambda rng: _att_inputs(rng), {"heads": 2, "compat": "torch"}, tier="error",
                raises=(ValueError, "compat must be one of")),
    ]


# ---------------------------------------------------------------------------
# RNNs, heads, subject features
# ---------------------------------------------------------------------------

def _rnn_weights(rng, Din, N, cell, suffix=""):
    g = 3 if cell == "gru" else 4
    b = _n(rng, 2, g * N, scale=0.1) if cell == "gru" else _n(rng, g * N, scale=0.1)
    return {f"w{suffix}": _n(rng, Din, g * N, scale=0.5), f"u{suffix}": _n(rng, N, g * N, scale=0.5),
            f"b{suffix}": b}


def _rnn_cases(fn_cell):
    def inputs(rng, S=6, B=2, Din=3, N=2):
        return {"x": _n(rng, B, S, Din), **_rnn_weights(rng, Din, N, fn_cell)}
    return [
        CaseDef("B2-S6", lambda rng: inputs(rng)),
        CaseDef("S1", lambda rng: inputs(rng, S=1), tier="edge", note="one step from h0 = 0"),
        CaseDef("S9-N4", lambda rng: inputs(rng, S=9, N=4), tier="full"),
        CaseDef("u-not-square-gates", lambda rng: {**inputs(rng), "u": onp.zeros((2, 5))}, tier="error",
                raises=(ValueError, r"u must have shape \(N, [34]N\)")),
    ]


def _birnn_cases():
    def inputs(rng, cell, S=6, B=2, Din=3, N=2):
        return {"x": _n(rng, B, S, Din), **_rnn_weights(rng, Din, N, cell, "_f"), **_rnn_weights(rng, Din, N, cell, "_b")}
    return [
        CaseDef("gru", lambda rng: inputs(rng, "gru"), {"cell": "gru"}),
        CaseDef("lstm", lambda rng: inputs(rng, "lstm"), {"cell": "lstm"}),
        CaseDef("bad-cell", lambda rng: inputs(rng, "gru"), {"cell": "rnn"}, tier="error",
                raises=(ValueError, "cell must be one of")),
        CaseDef("lstm-with-gru-weights", lambda rng: inputs(rng, "gru"), {"cell": "lstm"}, tier="error",
                raises=(ValueError, r"u_f must have shape \(N, 4N\)")),
    ]


def _gate_cases():
    def inputs(rng, lead=(2, 5), D=3, M=4, K=1):
        return {"h": _n(rng, *lead, D), "w1": _n(rng, D, M, scale=0.7), "b1": _n(rng, M, scale=0.3),
                "w2": _n(rng, M, K, scale=0.7), "b2": _n(rng, K, scale=0.1)}
    return [
        CaseDef("pn-B2-T5", lambda rng: inputs(rng)),
        CaseDef("pc-B2-P3", lambda rng: inputs(rng, lead=(2,), K=3)),
        CaseDef("w2-wrong-rows", lambda rng: {**inputs(rng), "w2": onp.zeros((3, 1))}, tier="error",
                raises=(ValueError, r"w2 must have shape \(4, K\)")),
    ]


def _maxpool_cases():
    return [
        CaseDef("padded", lambda rng: {"h": _n(rng, 2, 5, 3), "mask": _mask([5, 2], 5)}),
        CaseDef("no-padding", lambda rng: {"h": _n(rng, 2, 4, 3), "mask": _mask([4, 4], 4)}, tier="full"),
        CaseDef("fully-padded-sample", lambda rng: {"h": _n(rng, 2, 4, 3), "mask": _mask([4, 0], 4)}, tier="edge",
                note="D4: no valid position gives 0 (the code's -1e10 would give about -1e10)"),
        CaseDef("mask-wrong-length", {"h": onp.zeros((2, 4, 3)), "mask": onp.ones((2, 3), bool)}, tier="error",
                raises=(ValueError, r"mask must have shape \(B, T\) = \(2, 4\)")),
    ]


def _subject_head_inputs(rng, B=2, T=5, D=3, Da=2, M=4):
    return {"h": _n(rng, B, T, D), "a": _n(rng, B, T, Da), "wc": _n(rng, 3, D + Da, M, scale=0.5),
            "bc": _n(rng, M, scale=0.2), "w1": _n(rng, M, 1), "b1": _n(rng, 1, scale=0.1), "w2": _n(rng, M, 1),
            "b2": _n(rng, 1, scale=0.1), "pn1": _u(rng, B, T), "pn2": _u(rng, B, T)}


def _subject_head_cases():
    return [
        CaseDef("B2-T5", lambda rng: _subject_head_inputs(rng)),
        CaseDef("T1", lambda rng: _subject_head_inputs(rng, T=1), tier="edge"),
        CaseDef("B3-T8-M6", lambda rng: _subject_head_inputs(rng, B=3, T=8, M=6), tier="full"),
        CaseDef("pn-out-of-range", lambda rng: {**_subject_head_inputs(rng), "pn1": onp.full((2, 5), 1.5)},
                tier="error", raises=(ValueError, r"pn1 must hold probabilities in \[0, 1\]")),
        CaseDef("a-wrong-length", lambda rng: {**_subject_head_inputs(rng), "a": onp.zeros((2, 4, 2))},
                tier="error", raises=(ValueError, r"a must have shape \(B, T, ·\) = \(2, 5, ·\)")),
    ]


def _subject_feature_inputs(rng, cell, B=2, T=7, D=3, N=2, k1=(1, 0), k2=(3, 6)):
    return {"h": _n(rng, B, T, D), "k1": onp.array(k1), "k2": onp.array(k2),
            **_rnn_weights(rng, D, N, cell, "_f"), **_rnn_weights(rng, D, N, cell, "_b"),
            "pos_table": _n(rng, 10, N, scale=0.3)}


def _subject_feature_cases():
    return [
        CaseDef("gru", lambda rng: _subject_feature_inputs(rng, "gru"), {"cell": "gru"}),
        CaseDef("lstm", lambda rng: _subject_feature_inputs(rng, "lstm"), {"cell": "lstm"}),
        CaseDef("single-char-span", lambda rng: _subject_feature_inputs(rng, "gru", k1=(4, 0), k2=(4, 0)),
                {"cell": "gru"}, tier="edge", note="k1 = k2: the six rows are one row repeated"),
        CaseDef("k2-before-k1", lambda rng: _subject_feature_inputs(rng, "gru", k1=(3, 0), k2=(2, 1)), tier="error",
                raises=(ValueError, "spans must satisfy 0 <= k1 <= k2 < T = 7")),
        CaseDef("k2-out-of-range", lambda rng: _subject_feature_inputs(rng, "gru", k1=(3, 0), k2=(7, 1)),
                tier="error", raises=(ValueError, "spans must satisfy 0 <= k1 <= k2 < T = 7")),
        CaseDef("pos-table-too-narrow", lambda rng: {**_subject_feature_inputs(rng, "gru"), "pos_table": onp.zeros((10, 3))},
                tier="error", raises=(ValueError, r"pos_table must have shape \(maxlen, N\) with N = 2")),
    ]


def _object_head_inputs(rng, B=2, T=5, D=3, Da=2, Ds=2, M=4, P=3):
    return {"h": _n(rng, B, T, D), "a": _n(rng, B, T, Da), "s": _n(rng, B, T, Ds),
            "wc": _n(rng, 3, D + Da + Ds, M, scale=0.5), "bc": _n(rng, M, scale=0.2), "wo": _n(rng, M, 1),
            "bo": _n(rng, 1, scale=0.1), "w1": _n(rng, M, P), "b1": _n(rng, P, scale=0.1), "w2": _n(rng, M, P),
            "b2": _n(rng, P, scale=0.1), "pc": _u(rng, B, P), "pn1": _u(rng, B, T), "pn2": _u(rng, B, T)}


def _object_head_cases():
    return [
        CaseDef("B2-T5-P3", lambda rng: _object_head_inputs(rng)),
        CaseDef("P1", lambda rng: _object_head_inputs(rng, P=1), tier="edge"),
        CaseDef("B3-T8-P5", lambda rng: _object_head_inputs(rng, B=3, T=8, P=5), tier="full"),
        CaseDef("pc-wrong-P", lambda rng: {**_object_head_inputs(rng), "pc": onp.full((2, 4), 0.5)}, tier="error",
                raises=(ValueError, r"pc must have shape \(B, P\) = \(2, 3\)")),
    ]


def _span_cases():
    return [
        CaseDef("post-examples", {"k1": onp.array([3, 2]), "k2": onp.array([4, 9])},
                note="docs/dgcnn.md §7: [4,4,4,3,3,3] and [9,8,6,5,3,2]"),
        CaseDef("single-char", {"k1": onp.array([5]), "k2": onp.array([5])}, tier="edge"),
        CaseDef("n3-halves", {"k1": onp.array([0, 0, 1]), "k2": onp.array([1, 3, 2])}, {"n": 3}, tier="edge",
                note="n = 3 hits exact halves: rounded half to even (0.5 → 0, 1.5 → 2)"),
        CaseDef("k2-before-k1", {"k1": onp.array([4]), "k2": onp.array([3])}, tier="error",
                raises=(ValueError, "0 <= k1 <= k2")),
        CaseDef("float-span", {"k1": onp.array([1.0]), "k2": onp.array([3.0])}, tier="error",
                raises=(TypeError, "k1 must be an integer")),
    ]


# ---------------------------------------------------------------------------
# Losses, decoding, metric, layouts
# ---------------------------------------------------------------------------

def _bce_cases():
    return [
        CaseDef("subject-B2-T5", lambda rng: {"p": _u(rng, 2, 5), "t": (rng.random((2, 5)) < 0.3) * 1.0,
                                              "mask": _mask([5, 3], 5)}),
        CaseDef("object-B2-T5-P4", lambda rng: {"p": _u(rng, 2, 5, 4), "t": (rng.random((2, 5, 4)) < 0.2) * 1.0,
                                                "mask": _mask([5, 3], 5)}),
        CaseDef("clipped", {"p": onp.array([[0.0, 1.0, 0.5]]), "t": onp.array([[1.0, 0.0, 1.0]]),
                            "mask": onp.ones((1, 3), bool)}, tier="edge", gradcheck=False,
                note="p = 0 and 1 with the wrong target: log is taken of the clipped 1e-7 (loss -log 1e-7); "
                     "finite differences would leave [0, 1]",
                tol=Tol(1e-2, 1e-6, "float32: the upper clip bound 1 - 1e-7 rounds to the float32 grid "
                        "(1 - 1.19e-7, as K.clip / torch.clamp compute it), so -log(1 - p̄) at p = 1 is "
                        "-log 1.19e-7, 0.18 above the float64 -log 1e-7: 5e-3 relative on the mean",
                        dtype="float32", kind="values")),
        CaseDef("empty-mask", {"p": onp.full((1, 3), 0.5), "t": onp.zeros((1, 3)), "mask": onp.zeros((1, 3), bool)},
                tier="error", raises=(ValueError, "mask has no valid position")),
        CaseDef("shape-mismatch", {"p": onp.full((1, 3), 0.5), "t": onp.zeros((1, 4)), "mask": onp.ones((1, 3), bool)},
                tier="error", raises=(ValueError, "p and t must have the same shape")),
        CaseDef("p-out-of-range", {"p": onp.full((1, 3), 1.5), "t": onp.zeros((1, 3)), "mask": onp.ones((1, 3), bool)},
                tier="error", raises=(ValueError, r"p must hold probabilities in \[0, 1\]")),
    ]


def _loss_inputs(rng, B=2, T=5, P=3, lengths=(5, 3)):
    return {"ps1": _u(rng, B, T), "ps2": _u(rng, B, T), "po1": _u(rng, B, T, P), "po2": _u(rng, B, T, P),
            "s1": (rng.random((B, T)) < 0.3) * 1.0, "s2": (rng.random((B, T)) < 0.3) * 1.0,
            "o1": (rng.random((B, T, P)) < 0.2) * 1.0, "o2": (rng.random((B, T, P)) < 0.2) * 1.0,
            "mask": _mask(list(lengths), T)}


def _loss_cases():
    return [
        CaseDef("B2-T5-P3", lambda rng: _loss_inputs(rng)),
        CaseDef("B3-T9-P7", lambda rng: _loss_inputs(rng, B=3, T=9, P=7, lengths=(9, 4, 1)), tier="full"),
        CaseDef("po-wrong-P", lambda rng: {**_loss_inputs(rng), "po2": onp.full((2, 5, 4), 0.5)}, tier="error",
                raises=(ValueError, r"po2 must have shape \(B, T, P\)")),
        CaseDef("mask-wrong-length", lambda rng: {**_loss_inputs(rng), "mask": onp.ones((2, 4), bool)}, tier="error",
                raises=(ValueError, r"mask must have shape \(B, T\) = \(2, 5\)")),
    ]


# Hand-built probabilities: "AB fans sang CD" style overlaps, read in docs/dgcnn.md.
_PS1 = onp.array([0.9, 0.1, 0.1, 0.7, 0.1, 0.2, 0.6, 0.1])
_PS2 = onp.array([0.1, 0.5, 0.1, 0.1, 0.45, 0.1, 0.1, 0.1])


def _decode_subject_cases():
    return [
        CaseDef("nearest-end", {"ps1": _PS1, "ps2": _PS2},
                note="starts 0, 3, 6; ends 1, 4: spans (0,1), (3,4); start 6 has no end"),
        CaseDef("thresholds-0.6-0.5", {"ps1": _PS1, "ps2": _PS2}, {"start": 0.6, "end": 0.5}, tier="full",
                note="the strict > drops 0.6 and 0.45"),
        CaseDef("nested-starts", {"ps1": onp.array([0.8, 0.1, 0.9, 0.1]), "ps2": onp.array([0.1, 0.1, 0.1, 0.9])},
                tier="edge", note="two starts share one end: overlapping subjects (0,3), (2,3)"),
        CaseDef("nothing", {"ps1": onp.full(4, 0.2), "ps2": onp.full(4, 0.9)}, tier="edge",
                note="no start above 0.5: shape (0, 2)"),
        CaseDef("threshold-1", {"ps1": _PS1, "ps2": _PS2}, {"start": 1.0}, tier="error",
                raises=(ValueError, r"start must lie in \(0.0, 1.0\)")),
        CaseDef("threshold-0", {"ps1": _PS1, "ps2": _PS2}, {"end": 0.0}, tier="error",
                raises=(ValueError, r"end must lie in \(0.0, 1.0\)")),
        CaseDef("length-mismatch", {"ps1": _PS1, "ps2": _PS2[:5]}, tier="error",
                raises=(ValueError, "ps1 and ps2 must have the same shape")),
    ]


def _decode_object_inputs():
    T, P = 7, 3
    po1, po2 = onp.full((T, P), 0.05), onp.full((T, P), 0.05)
    po1[2, 0] = po1[2, 2] = 0.9          # one (s, o) with two predicates, object 2..3
    po2[3, 0] = po2[3, 2] = 0.8
    po1[5, 1] = 0.7                      # another object 5..6 of predicate 1
    po2[6, 1] = 0.6
    po2[4, 1] = 0.3                      # below the end threshold: skipped
    po1[0, 1] = 0.6                      # object 0..? of class 1: first end of class 1 is 6
    return {"po1": po1, "po2": po2}


def _decode_object_cases():
    return [
        CaseDef("several-p-one-o", _decode_object_inputs(),
                note="rows (0,6,1), (2,3,0), (2,3,2), (5,6,1): first end of the same class at or after the start"),
        CaseDef("no-end", {"po1": onp.array([[0.9, 0.1]]), "po2": onp.array([[0.1, 0.9]])}, tier="edge",
                note="a start whose class has no end: nothing decoded"),
        CaseDef("not-2d", {"po1": onp.full(4, 0.5), "po2": onp.full(4, 0.5)}, tier="error",
                raises=(ValueError, r"po1 must have shape \(T, P\)")),
        CaseDef("threshold-above-1", _decode_object_inputs(), {"end": 1.2}, tier="error",
                raises=(ValueError, r"end must lie in \(0.0, 1.0\)")),
    ]


def _prf_cases():
    gold = onp.array([[0, 0, 1], [0, 1, 2], [3, 0, 1], [4, 2, 5]])
    pred = onp.array([[0, 0, 1], [0, 1, 2], [3, 0, 2], [0, 0, 1]])
    empty = onp.zeros((0, 3), dtype=onp.int64)
    return [
        CaseDef("hand-built", {"pred": pred, "gold": gold},
                note="|pred| = 3 (one duplicate), |gold| = 4, 2 shared: P = 2/3, R = 1/2, F1 = 4/7"),
        CaseDef("empty-empty", {"pred": empty, "gold": empty}, tier="edge", note="1.0 by the code's 1e-10 limits"),
        CaseDef("empty-pred", {"pred": empty, "gold": gold}, tier="edge", note="P = 1 (nothing wrong), R = 0, F1 = 0"),
        CaseDef("pred-1d", {"pred": onp.array([1, 2, 3]), "gold": gold}, tier="error",
                raises=(ValueError, r"pred as an array must have shape \(N, K\)")),
    ]


def _f1_cases():
    return [
        CaseDef("post-numbers", {"precision": onp.array(0.8939), "recall": onp.array(0.8679)},
                note="the post: P 0.8939, R 0.8679, F1 0.8807 (0.880708)"),
        CaseDef("vector", lambda rng: {"precision": _u(rng, 4), "recall": _u(rng, 4)}, tier="full"),
        CaseDef("both-zero", {"precision": onp.array(0.0), "recall": onp.array(0.0)}, tier="error",
                raises=(ValueError, "precision and recall are both 0")),
        CaseDef("above-one", {"precision": onp.array(1.2), "recall": onp.array(0.5)}, tier="error",
                raises=(ValueError, r"precision must lie in \[0, 1\]")),
    ]


def _layout_cases(shape, legend):
    return [
        CaseDef("small", lambda rng: {"w": _n(rng, *shape)}),
        CaseDef("wrong-ndim", {"w": onp.zeros(shape[:-1])}, tier="error", raises=(ValueError, f"w must have shape {legend}")),
    ]


def _torch_conv_cases():
    def inputs(rng, k=3, T=6):
        return {"x": _n(rng, 2, 3, T), "weight": _n(rng, 2, 3, k, scale=0.5), "bias": _n(rng, 2, scale=0.1)}
    return [
        CaseDef("k3-r2", lambda rng: inputs(rng), {"dilation": 2}),
        CaseDef("even-k2", lambda rng: inputs(rng, k=2), tier="edge",
                note="padding (k // 2)·r = 1 on both sides: T + 1 outputs (Keras 'same' keeps T)"),
        CaseDef("channels-mismatch", lambda rng: {**inputs(rng), "weight": onp.zeros((2, 4, 3))}, tier="error",
                raises=(ValueError, r"weight must have shape \(D_out, D_in, k\) with D_in = 3")),
    ]


def _gru_layout_cases():
    return [
        CaseDef("Din3-N2", lambda rng: _rnn_weights(rng, 3, 2, "gru")),
        CaseDef("lstm-shaped", lambda rng: _rnn_weights(rng, 3, 2, "lstm"), tier="error",
                raises=(ValueError, r"u must have shape|GRU weights must be|b must have shape")),
    ]


def _flip_cases():
    return [
        CaseDef("k3-D2", lambda rng: {"w": _n(rng, 3, 2, 4), "b": _n(rng, 4)}),
        CaseDef("stacked-L2", lambda rng: {"w": _n(rng, 2, 3, 2, 4), "b": _n(rng, 2, 4)}, tier="full"),
        CaseDef("odd-fused-axis", {"w": onp.zeros((3, 2, 3)), "b": onp.zeros(3)}, tier="error",
                raises=(ValueError, "even fused axis")),
    ]


_GATE_W = ("w1", "b1", "w2", "b2")
_RNN_FB = ("w_f", "u_f", "b_f", "w_b", "u_b", "b_b")

OPS = [
    OpSpec("dgcnn.dilated_conv1d", dg.dilated_conv1d, ("x", "w", "b"), ("x", "w", "b"), _conv_cases(),
           f"https://kexue.fm/archives/5409 (dilated conv); {CODE} (Conv1D 'same', dilation_rate)"),
    OpSpec("dgcnn.dgcnn_block", dg.dgcnn_block, ("x", "mask", "w", "b", "gate_keep"), ("x", "w", "b"),
           _block_cases(), f"{POST} (Y = X(1-σ) + Conv1(X)σ); {CODE} dilated_gated_conv1d",
           quirks={"gate": ("keras",)},
           flags={"gate": "post default (D1); keras = the code's gate on the identity branch",
                  "gate_keep": "explicit dropout mask on the gate logits (D2); all True with rate 0 = inference"}),
    OpSpec("dgcnn.dgcnn_stack", dg.dgcnn_stack, ("x", "mask", "w", "b"), ("x", "w", "b"), _stack_cases(),
           f"{POST} (12 blocks [1,2,5,1,2,5,1,2,5,1,1,1], light 6 blocks)",
           quirks={"gate": ("keras",)}),
    OpSpec("dgcnn.multihead_attention", dg.multihead_attention, ("x", "mask", "wq", "wk", "wv"),
           ("x", "wq", "wk", "wv"), _att_cases(), f"{POST} (self attention); {CODE} Attention(8, 16)",
           quirks={"compat": ("keras",)},
           flags={"compat": "None: exact key mask, padded query rows zeroed (D4); keras: -1e10, rows not zeroed"}),
    OpSpec("dgcnn.gru", dg.gru, ("x", "w", "u", "b"), ("x", "w", "u", "b"), _rnn_cases("gru"),
           f"{CODE} (CuDNNGRU); Cho et al. 2014"),
    OpSpec("dgcnn.lstm", dg.lstm, ("x", "w", "u", "b"), ("x", "w", "u", "b"), _rnn_cases("lstm"),
           f"{POST} (BiLSTM subject encoder)"),
    OpSpec("dgcnn.birnn", dg.birnn, ("x",) + _RNN_FB, ("x",) + _RNN_FB, _birnn_cases(),
           f"{CODE} (Bidirectional(CuDNNGRU)); {POST} (BiLSTM)"),
    OpSpec("dgcnn.global_gate", dg.global_gate, ("h",) + _GATE_W, ("h",) + _GATE_W, _gate_cases(),
           f"{POST} (pn and pc detectors); {CODE}"),
    OpSpec("dgcnn.seq_maxpool", dg.seq_maxpool, ("h", "mask"), ("h",), _maxpool_cases(), f"{CODE} seq_maxpool"),
    OpSpec("dgcnn.subject_heads", dg.subject_heads,
           ("h", "a", "wc", "bc", "w1", "b1", "w2", "b2", "pn1", "pn2"),
           ("h", "a", "wc", "bc", "w1", "b1", "w2", "b2", "pn1", "pn2"), _subject_head_cases(),
           f"{POST} (subject pointers); {CODE} (ps1·pn1, ps2·pn2)", outputs=("ps1", "ps2")),
    OpSpec("dgcnn.subject_features", dg.subject_features, ("h", "k1", "k2") + _RNN_FB + ("pos_table",),
           ("h",) + _RNN_FB + ("pos_table",), _subject_feature_cases(),
           f"{POST} (BiLSTM over the span + relative positions); {CODE} get_k_inter, BiGRU, position_id",
           flags={"cell": "gru (the code) or lstm (the post)"}),
    OpSpec("dgcnn.object_heads", dg.object_heads,
           ("h", "a", "s", "wc", "bc", "wo", "bo", "w1", "b1", "w2", "b2", "pc", "pn1", "pn2"),
           ("h", "a", "s", "wc", "bc", "wo", "bo", "w1", "b1", "w2", "b2", "pc", "pn1", "pn2"),
           _object_head_cases(), f"{POST} (object pointers per predicate); {CODE} (po·po1·pc·pn1)",
           outputs=("po1", "po2")),
    OpSpec("dgcnn.span_positions", dg.span_positions, ("k1", "k2"), (), _span_cases(),
           f"{CODE} get_k_inter (K.round, half to even)"),
    OpSpec("dgcnn.masked_bce", dg.masked_bce, ("p", "t", "mask"), ("p",), _bce_cases(),
           f"{CODE} (K.binary_crossentropy, sum over P, mean over valid tokens)"),
    OpSpec("dgcnn.extraction_loss", dg.extraction_loss,
           ("ps1", "ps2", "po1", "po2", "s1", "s2", "o1", "o2", "mask"), ("ps1", "ps2", "po1", "po2"),
           _loss_cases(), f"{POST} (BCE, 1:1:1:1); {CODE} loss"),
    OpSpec("dgcnn.decode_subjects", dg.decode_subjects, ("ps1", "ps2"), (), _decode_subject_cases(),
           f"{CODE} extract_items (start > 0.5, nearest end > 0.4)", outputs=("spans",)),
    OpSpec("dgcnn.decode_objects", dg.decode_objects, ("po1", "po2"), (), _decode_object_cases(),
           f"{CODE} extract_items (first end of the same class)", outputs=("objects",)),
    OpSpec("dgcnn.set_prf", dg.set_prf, ("pred", "gold"), (), _prf_cases(),
           f"{CODE} Evaluate.evaluate (2A/(B + C))", outputs=("precision", "recall", "f1")),
    OpSpec("dgcnn.f1_score", dg.f1_score, ("precision", "recall"), ("precision", "recall"), _f1_cases(),
           f"{POST} (P 0.8939, R 0.8679, F1 0.8807)"),
    OpSpec("dgcnn.flip_gate", dg.flip_gate, ("w", "b"), ("w", "b"), _flip_cases(),
           f"{POST} (Y = X(1 − σ) + Conv₁(X)σ) vs {CODE} (G = 1 - σ); docs/dgcnn.md §3", outputs=("w", "b")),
    OpSpec("dgcnn.conv1d_keras_to_torch", dg.conv1d_keras_to_torch, ("w",), ("w",),
           _layout_cases((3, 2, 4), r"\(k, D_in, D_out\)"), "docs/dgcnn.md §11 (Keras (k, in, out), PyTorch (out, in, k))"),
    OpSpec("dgcnn.dense_keras_to_torch", dg.dense_keras_to_torch, ("w",), ("w",),
           _layout_cases((3, 4), r"\(D_in, D_out\)"), "docs/dgcnn.md §11 (Dense kernel = Linear weight transposed)"),
    OpSpec("dgcnn.gru_keras_to_torch", dg.gru_keras_to_torch, ("w", "u", "b"), ("w", "u", "b"),
           _gru_layout_cases(), "PyTorch nn.GRU gate order [r, z, n]; Keras [z, r, h]",
           outputs=("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
    OpSpec("dgcnn.conv1d_torch", dg.conv1d_torch, ("x", "weight", "bias"), ("x", "weight", "bias"),
           _torch_conv_cases(), "PyTorch F.conv1d with padding (k // 2)·dilation (ports: docs/dgcnn.md §11)"),
]
