"""Registry rows for sparse attention (https://kexue.fm/archives/6853; ``docs/sparse_attention.md``).

Array inputs: ``q``, ``k``, ``v`` (differentiable), plus ``allowed`` (``attention``) and
``key_index`` (``indexed_attention``). The sequence mask of the pattern functions is the
keyword-only argument ``mask``: since the registry passes inputs positionally (and the
4th positional slot of a pattern function is its rate), it travels in ``params`` as a nested
list of booleans (B × T), which is JSON-able; the functions accept it like an array. The same
holds for ``key_mask`` / ``query_mask`` of ``attention``.

Sizes stay small (T ≤ 40, D = 3, Dv = 2) so that the order-2 gradient checks are fast.
Cases with ``compat="keras"`` live in the same rows (the numba twins must raise on them).
"""
import numpy as onp

from kexue_ref import _masks
from kexue_ref import sparse_attention as sa
from kexue_ref.cases._gen import normal
from kexue_ref.registry import CaseDef, OpSpec

POST = "https://kexue.fm/archives/6853"
KERAS = "bojone/attention attention_keras.py (see docs/sparse_attention.md, the Keras conventions)"

FLOAT32_COLLAPSE = ("compat='keras', causal=False: s − 1e10 is rounded to float32, so the output "
                    "is piecewise constant in q and k; the gradient passes the cast as TF's cast "
                    "gradient does (the incoming gradient rounded to float32), which central "
                    "differences cannot see")


def qkv(rng, B=1, H=1, T=8, D=3, Dv=2, scale=1.0, Tk=None):
    """Normal q, k (scaled by ``scale``) and v of shapes (B, H, T, D) and (B, H, Tk, Dv)."""
    Tk = T if Tk is None else Tk
    return {"q": normal(rng, B, H, T, D, scale=scale), "k": normal(rng, B, H, Tk, D, scale=scale),
            "v": normal(rng, B, H, Tk, Dv)}


def lengths_mask(lengths, T):
    """A (B, T) padding mask as nested lists: row b is True for t < lengths[b]."""
    return [[t < n for t in range(T)] for n in lengths]


# ---------------------------------------------------------------------------
# The pattern functions: atrous (rate), local (neighbors), sparse (rate)
# ---------------------------------------------------------------------------

def _pattern_cases(param, fn_name):
    """Cases shared by the three pattern rows; ``param`` is "rate" or "neighbors"."""
    P = param

    def c(name, T, p, tier="quick", B=1, H=1, scale=1.0, note="", gradcheck=True, **params):
        return CaseDef(name, lambda rng: qkv(rng, B, H, T, scale=scale), {P: p, **params},
                       tier=tier, note=note, gradcheck=gradcheck)

    rows = [
        c(f"B2-H2-T13-{P}3", 13, 3, B=2, H=2, note="T not divisible by 3"),
        c(f"T13-{P}3-causal", 13, 3, causal=True),
        c(f"B2-T12-{P}3-pad", 12, 3, B=2, mask=lengths_mask([12, 7], 12),
          note="key padding; padded query rows are 0"),
        c(f"T1-{P}2", 1, 2, tier="full", note="T = 1: the output is v"),
        c(f"T3-{P}5", 3, 5, tier="full", note="T < rate"),
        c(f"T3-{P}5-causal", 3, 5, tier="full", causal=True),
        c(f"T16-{P}4", 16, 4, tier="full", note="T divisible by the rate"),
        c(f"T37-{P}4", 37, 4, tier="full", note="T = 37, R = 4 of docs/sparse_attention.md (mean sparse row count 553/37)"),
        c(f"T37-{P}4-causal", 37, 4, tier="full", causal=True),
        c(f"T9-{P}1", 9, 1, tier="full"),
        c(f"B3-H2-T10-{P}2-causal-pad", 10, 2, B=3, H=2, tier="full", causal=True,
          mask=lengths_mask([10, 4, 1], 10)),
        c(f"T20-{P}6-pad", 20, 6, tier="full", mask=[[t % 5 != 3 for t in range(20)]],
          note="holes inside the sequence, not only at its end"),
        c(f"B2-T7-{P}2-all-padded", 7, 2, B=2, tier="edge", mask=lengths_mask([0, 5], 7),
          note="batch 0 has no valid token: every row fully masked → 0, zero gradient (D4)"),
        c(f"T11-{P}3-extreme", 11, 3, tier="edge", scale=30.0,
          note="|scores| ~ 1e3: the max shift keeps the softmax finite"),
        c(f"T11-{P}3-causal-extreme", 11, 3, tier="edge", scale=30.0, causal=True),
        c(f"T6-{P}9", 6, 9, tier="edge",
          note="rate ≥ T: atrous keeps only i itself; local and sparse are full attention"),
        # the author's Keras code
        c(f"keras-T10-{P}2", 10, 2, compat="keras", gradcheck=fn_name == "sparse_attention",
          note=("" if fn_name == "sparse_attention" else FLOAT32_COLLAPSE)),
        c(f"keras-T9-{P}3-causal", 9, 3, tier="full", compat="keras", causal=True),
        c(f"keras-B2-T11-{P}3-pad", 11, 3, B=2, tier="full", compat="keras",
          mask=lengths_mask([11, 6], 11), gradcheck=fn_name == "sparse_attention",
          note=("" if fn_name == "sparse_attention" else FLOAT32_COLLAPSE)),
        c(f"keras-B2-T8-{P}2-causal-pad", 8, 2, B=2, tier="full", compat="keras", causal=True,
          mask=lengths_mask([8, 5], 8)),
        c(f"keras-T12-{P}4", 12, 4, tier="edge", compat="keras",
          gradcheck=fn_name == "sparse_attention",
          note=("R divides T: Keras still pads a whole extra group"
                + ("" if fn_name == "sparse_attention" else "; " + FLOAT32_COLLAPSE))),
        # bad input
        CaseDef(f"{P}-zero", lambda rng: qkv(rng, T=5), {P: 0}, tier="error",
                raises=(ValueError, f"{P} must be >= 1")),
        CaseDef(f"{P}-float", lambda rng: qkv(rng, T=5), {P: 2.0}, tier="error",
                raises=(TypeError, f"{P} must be an integer")),
        CaseDef("k-length-mismatch", lambda rng: qkv(rng, T=5, Tk=6), {P: 2}, tier="error",
                raises=(ValueError, "same length T")),
        CaseDef("D-mismatch", lambda rng: {**qkv(rng, T=5), "k": onp.ones((1, 1, 5, 4))}, {P: 2},
                tier="error", raises=(ValueError, r"k must have shape \(B, H, Tk, D\)")),
        CaseDef("v-length-mismatch", lambda rng: {**qkv(rng, T=5), "v": onp.ones((1, 1, 4, 2))},
                {P: 2}, tier="error", raises=(ValueError, r"v must have shape \(B, H, Tk, Dv\)")),
        CaseDef("q-3d", lambda rng: {**qkv(rng, T=5), "q": onp.ones((1, 5, 3))}, {P: 2},
                tier="error", raises=(ValueError, r"q must have shape \(B, H, Tq, D\)")),
        CaseDef("mask-wrong-shape", lambda rng: qkv(rng, B=2, T=5), {P: 2, "mask": [[True] * 5]},
                tier="error", raises=(ValueError, r"mask must have shape \(B, T\) = \(2, 5\)")),
        CaseDef("mask-not-bool", lambda rng: qkv(rng, T=5), {P: 2, "mask": [[1, 1, 1, 0, 0]]},
                tier="error", raises=(TypeError, "mask must be a boolean array")),
        CaseDef("compat-unknown", lambda rng: qkv(rng, T=5), {P: 2, "compat": "tf"},
                tier="error", raises=(ValueError, "compat must be one of")),
        CaseDef("causal-not-bool", lambda rng: qkv(rng, T=5), {P: 2, "causal": "yes"},
                tier="error", raises=(TypeError, "causal must be True or False")),
        CaseDef("nan-q", lambda rng: {**qkv(rng, T=5), "q": onp.full((1, 1, 5, 3), onp.nan)},
                {P: 2}, tier="error", raises=(ValueError, "q contains NaN")),
    ]
    if fn_name == "sparse_attention":
        rows.append(CaseDef("keras-rate1", lambda rng: qkv(rng, T=5), {P: 1, "compat": "keras"},
                            tier="error", raises=(ValueError, "compat='keras' needs rate >= 2")))
    return rows


# ---------------------------------------------------------------------------
# The dense oracle
# ---------------------------------------------------------------------------

def _random_allowed(rng, *shape, p=0.6):
    return rng.random(shape) < p


def _attention_cases():
    def with_allowed(rng, B=1, H=1, T=6, Tk=None, shape=None, scale=1.0, p=0.6):
        d = qkv(rng, B, H, T, Tk=Tk, scale=scale)
        Tk = T if Tk is None else Tk
        d["allowed"] = _random_allowed(rng, *(shape or (T, Tk)), p=p)
        return d

    def ones(rng, B=1, H=1, T=6, Tk=None, scale=1.0):
        d = qkv(rng, B, H, T, Tk=Tk, scale=scale)
        d["allowed"] = onp.ones((1, 1, T, T if Tk is None else Tk), dtype=bool)
        return d

    return [
        CaseDef("B2-H2-Tq5-Tk7", lambda rng: with_allowed(rng, 2, 2, 5, Tk=7),
                note="a random (Tq, Tk) pattern shared by batch and heads"),
        CaseDef("T6-causal", lambda rng: ones(rng, T=6), {"causal": True}),
        CaseDef("B2-key-mask-fully-masked", lambda rng: ones(rng, B=2, T=5),
                {"key_mask": [[False] * 5, [True, True, False, True, False]]},
                note="batch 0 has no valid key: output 0 and zero gradient (D4)"),
        CaseDef("B2-H3-per-head-allowed", lambda rng: with_allowed(rng, 2, 3, 6, shape=(2, 3, 6, 6)),
                tier="full", note="a full (B, H, Tq, Tk) mask, some rows fully masked"),
        CaseDef("B2-query-mask", lambda rng: ones(rng, B=2, T=6, Tk=4),
                {"query_mask": [[True] * 6, [True, False, True, False, False, True]]}, tier="full"),
        CaseDef("T1", lambda rng: ones(rng, T=1), tier="full"),
        CaseDef("T40-full", lambda rng: ones(rng, T=40), tier="full"),
        CaseDef("fill-1e9-fully-masked", lambda rng: ones(rng, B=2, T=5),
                {"key_mask": [[False] * 5, [True, False, True, True, True]], "fill": -1e9},
                tier="edge", note="fill: a fully masked row is the uniform average of v"),
        CaseDef("fill-1e9-causal", lambda rng: ones(rng, T=7), {"causal": True, "fill": -1e9},
                tier="edge", note="partially masked rows: the same as fill=None to rounding"),
        CaseDef("extreme-scores", lambda rng: with_allowed(rng, 1, 2, 9, scale=40.0, p=0.8),
                tier="edge", note="|scores| ~ 1e3"),
        CaseDef("causal-Tq-ne-Tk", lambda rng: ones(rng, T=4, Tk=5), {"causal": True}, tier="error",
                raises=(ValueError, "causal=True needs Tq == Tk")),
        CaseDef("allowed-wrong-shape", lambda rng: {**qkv(rng, T=4), "allowed": onp.ones((3, 4), bool)},
                tier="error", raises=(ValueError, r"allowed of shape \(3, 4\) does not broadcast")),
        CaseDef("allowed-not-bool", lambda rng: {**qkv(rng, T=4), "allowed": onp.ones((4, 4))},
                tier="error", raises=(TypeError, "allowed must be a boolean array")),
        CaseDef("key-mask-wrong-shape", lambda rng: ones(rng, T=4), {"key_mask": [True] * 4},
                tier="error", raises=(ValueError, r"key_mask must have shape \(B, T\)")),
        CaseDef("fill-inf", lambda rng: ones(rng, T=4), {"fill": float("-inf")}, tier="error",
                raises=(ValueError, "fill must be a finite number")),
        CaseDef("D-mismatch", lambda rng: {**ones(rng, T=4), "k": onp.ones((1, 1, 4, 5))},
                tier="error", raises=(ValueError, r"k must have shape \(B, H, Tk, D\)")),
    ]


# ---------------------------------------------------------------------------
# Per-row key lists
# ---------------------------------------------------------------------------

def _indexed_cases():
    def lists(rng, T, pattern, B=1, H=1, scale=1.0):
        d = qkv(rng, B, H, T, scale=scale)
        d["key_index"] = _masks.key_index_from_mask(pattern)
        return d

    def random_lists(rng, T):
        A = rng.random((T, T)) < 0.35
        A[2] = False                                   # row 2: no key at all
        return lists(rng, T, A)

    return [
        CaseDef("T11-sparse3", lambda rng: lists(rng, 11, _masks.sparse_mask(11, 3))),
        CaseDef("B2-H2-T9-random-empty-row", lambda rng: {**random_lists(rng, 9),
                                                          **qkv(rng, 2, 2, 9)},
                note="row 2 lists no key: output 0, zero gradient (D4)"),
        CaseDef("B2-T10-local2-causal-pad", lambda rng: lists(rng, 10, _masks.local_mask(10, 2, True), B=2),
                {"mask": lengths_mask([10, 6], 10)}, tier="full"),
        CaseDef("T1", lambda rng: lists(rng, 1, onp.ones((1, 1), bool)), tier="full"),
        CaseDef("T25-atrous4-extreme", lambda rng: lists(rng, 25, _masks.atrous_mask(25, 4), scale=30.0),
                tier="edge"),
        CaseDef("unsorted", lambda rng: {**qkv(rng, T=3), "key_index": onp.array([[1, 0], [0, 1], [2, -1]])},
                tier="error", raises=(ValueError, "strictly increasing")),
        CaseDef("pad-in-middle", lambda rng: {**qkv(rng, T=3), "key_index": onp.array([[-1, 0], [0, 1], [2, -1]])},
                tier="error", raises=(ValueError, "pad with -1 at the end")),
        CaseDef("out-of-range", lambda rng: {**qkv(rng, T=3), "key_index": onp.array([[0, 3], [0, 1], [2, -1]])},
                tier="error", raises=(ValueError, r"key_index entries must lie in \[-1, 3\)")),
        CaseDef("float-index", lambda rng: {**qkv(rng, T=3), "key_index": onp.zeros((3, 1))},
                tier="error", raises=(TypeError, "key_index must be an int64 array")),
        CaseDef("wrong-T", lambda rng: {**qkv(rng, T=3), "key_index": onp.zeros((4, 1), onp.int64)},
                tier="error", raises=(ValueError, r"key_index must have shape \(T, Kmax\) = \(3,")),
    ]


# ---------------------------------------------------------------------------
# The blocked forms
# ---------------------------------------------------------------------------

def _blocked_cases(param, block):
    P = param

    def c(name, T, p, tier="quick", B=1, H=1, **params):
        return CaseDef(name, lambda rng: qkv(rng, B, H, T), {P: p, **params}, tier=tier)

    rows = [
        c(f"B2-H2-T13-{P}3", 13, 3, B=2, H=2),
        c(f"T13-{P}3-causal", 13, 3, causal=True),
        c(f"B2-T12-{P}3-pad", 12, 3, B=2, mask=lengths_mask([12, 0], 12)),
        c(f"T1-{P}2", 1, 2, tier="full"),
        c(f"T3-{P}5-causal", 3, 5, tier="full", causal=True),
        c(f"T37-{P}4", 37, 4, tier="full"),
        CaseDef(f"{P}-zero", lambda rng: qkv(rng, T=5), {P: 0}, tier="error",
                raises=(ValueError, f"{P} must be >= 1")),
        CaseDef("mask-wrong-shape", lambda rng: qkv(rng, T=5), {P: 2, "mask": [[True] * 4]},
                tier="error", raises=(ValueError, r"mask must have shape \(B, T\)")),
    ]
    if block:
        rows += [c(f"T17-{P}3-block1", 17, 3, tier="full", block=1),
                 c(f"T17-{P}3-block4-causal-pad", 17, 3, B=2, tier="full", block=4, causal=True,
                   mask=lengths_mask([17, 9], 17)),
                 CaseDef("block-zero", lambda rng: qkv(rng, T=5), {P: 2, "block": 0}, tier="error",
                         raises=(ValueError, "block must be >= 1"))]
    return rows


# ---------------------------------------------------------------------------
# The pattern predicates (boolean outputs, no differentiable input)
# ---------------------------------------------------------------------------

def _mask_cases(param, causal=False):
    P = param
    rows = [CaseDef(f"T13-{P}3", {}, {"T": 13, P: 3}),
            CaseDef(f"T37-{P}4", {}, {"T": 37, P: 4}, tier="full"),
            CaseDef(f"T1-{P}2", {}, {"T": 1, P: 2}, tier="edge"),
            CaseDef(f"{P}-zero", {}, {"T": 5, P: 0}, tier="error", raises=(ValueError, f"{P} must be >= 1")),
            CaseDef("T-zero", {}, {"T": 0, P: 2}, tier="error", raises=(ValueError, "T must be >= 1"))]
    if causal:
        rows.append(CaseDef(f"T13-{P}3-causal", {}, {"T": 13, P: 3, "causal": True}))
    return rows


def _fixed_cases():
    return [CaseDef("n8-s4", {}, {"n_blocks": 8, "stride": 4}),
            CaseDef("n12-s4-h4-v2-nv2", {}, {"n_blocks": 12, "stride": 4, "heads": 4, "num_verts": 2,
                                             "vertsize": 2}, tier="full"),
            CaseDef("n6-s3-h3-nv3", {}, {"n_blocks": 6, "stride": 3, "heads": 3, "num_verts": 3},
                    tier="edge", note="three heads, each with a different summary block"),
            CaseDef("vertsize-not-dividing", {}, {"n_blocks": 8, "stride": 4, "vertsize": 3},
                    tier="error", raises=(ValueError, "vertsize must divide stride")),
            CaseDef("heads-not-multiple", {}, {"n_blocks": 8, "stride": 4, "heads": 3, "num_verts": 2},
                    tier="error", raises=(ValueError, "heads must be a multiple of num_verts"))]


def _layout_cases():
    return [CaseDef("local13-1-block4", {"mask": _masks.local_mask(13, 1)}, {"block": 4},
                    note="T not a multiple of the block: the last block is partial"),
            CaseDef("sparse16-4-block4", {"mask": _masks.sparse_mask(16, 4)}, {"block": 4}, tier="full"),
            CaseDef("block-zero", {"mask": onp.eye(3, dtype=bool)}, {"block": 0}, tier="error",
                    raises=(ValueError, "block must be >= 1")),
            CaseDef("not-bool", {"mask": onp.eye(3)}, {"block": 2}, tier="error",
                    raises=(TypeError, "mask must be a boolean array"))]


OPS = [
    OpSpec("sparse_attention.attention", sa.attention, ("q", "k", "v", "allowed"), ("q", "k", "v"),
           _attention_cases(), f"{POST} (softmax(QKᵀ/√D)V with a boolean mask)",
           quirks={"fill": "*"},
           flags={"mask": "bool, True = may attend (D4)", "fully_masked_row": "0, zero gradient (D4)",
                  "fill": "None exact; c replaces disallowed scores"}),
    OpSpec("sparse_attention.atrous_attention", sa.atrous_attention, ("q", "k", "v"), ("q", "k", "v"),
           _pattern_cases("rate", "atrous_attention"), f"{POST} (Atrous Self Attention); keras: {KERAS}",
           quirks={"compat": ("keras",)},
           flags={"compat": "None = the post; 'keras' = AtrousSelfAttention as implemented, its "
                            "s − 1e10 step rounded to float32 (docs/sparse_attention.md, compat='keras'; read not run)"}),
    OpSpec("sparse_attention.local_attention", sa.local_attention, ("q", "k", "v"), ("q", "k", "v"),
           _pattern_cases("neighbors", "local_attention"), f"{POST} (Local Self Attention); keras: {KERAS}",
           quirks={"compat": ("keras",)},
           flags={"compat": "None = the post; 'keras' = LocalSelfAttention as implemented, its "
                            "s − 1e10 step rounded to float32 (docs/sparse_attention.md, compat='keras'; read not run)"}),
    OpSpec("sparse_attention.sparse_attention", sa.sparse_attention, ("q", "k", "v"), ("q", "k", "v"),
           _pattern_cases("rate", "sparse_attention"), f"{POST} (Sparse Self Attention); keras: {KERAS}",
           quirks={"compat": ("keras",)},
           flags={"compat": "None = the post; 'keras' = SparseSelfAttention as implemented: dilated "
                            "local branch, double counting (docs/sparse_attention.md, compat='keras'; read not run)"}),
    OpSpec("sparse_attention.indexed_attention", sa.indexed_attention, ("q", "k", "v", "key_index"),
           ("q", "k", "v"), _indexed_cases(), f"{POST} (a pattern as per-query key lists, the row iteration of sparse kernels)"),
    OpSpec("sparse_attention.atrous_attention_blocked", sa.atrous_attention_blocked, ("q", "k", "v"),
           ("q", "k", "v"), _blocked_cases("rate", block=False),
           f"{POST} (atrous by regrouping into R subsequences)"),
    OpSpec("sparse_attention.local_attention_blocked", sa.local_attention_blocked, ("q", "k", "v"),
           ("q", "k", "v"), _blocked_cases("neighbors", block=True), f"{POST} (local by window extraction)"),
    OpSpec("sparse_attention.sparse_attention_blocked", sa.sparse_attention_blocked, ("q", "k", "v"),
           ("q", "k", "v"), _blocked_cases("rate", block=True),
           f"{POST} (local ⊔ far atrous, merged by log-sum-exp)"),
    OpSpec("sparse_attention.atrous_mask", _masks.atrous_mask, (), (), _mask_cases("rate", True),
           f"{POST} ((i − j) mod R = 0)"),
    OpSpec("sparse_attention.local_mask", _masks.local_mask, (), (), _mask_cases("neighbors", True),
           f"{POST} (|i − j| ≤ W)"),
    OpSpec("sparse_attention.sparse_mask", _masks.sparse_mask, (), (), _mask_cases("rate", True),
           f"{POST} (|i − j| ≤ R or (i − j) mod R = 0)"),
    OpSpec("sparse_attention.strided_mask", _masks.strided_mask, (), (), _mask_cases("stride"),
           "openai/sparse_attention attention.py get_attn_mask('strided'); arXiv 1904.10509"),
    OpSpec("sparse_attention.openai_local_mask", _masks.openai_local_mask, (), (), _mask_cases("bandwidth"),
           "openai/sparse_attention attention.py get_attn_mask('local'); arXiv 1904.10509"),
    OpSpec("sparse_attention.openai_fixed_layout", _masks.openai_fixed_layout, (), (), _fixed_cases(),
           "openai/sparse_attention attention.py get_blocksparse_obj('fixed'); arXiv 1904.10509 §4.2"),
    OpSpec("sparse_attention.mask_to_layout", _masks.mask_to_layout, ("mask",), (), _layout_cases(),
           "block is on if any token pair in it is on (xformers pattern_to_layout semantics)"),
]
