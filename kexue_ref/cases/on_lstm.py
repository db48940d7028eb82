# Over 500 lines on purpose: a case table, the registry rows of every ON-LSTM op (kexue_ref/on_lstm/).
"""Registry rows for ``kexue_ref.on_lstm`` (post https://kexue.fm/archives/6621).

Registry inputs must be arrays, so the cell, the layer and the stack are registered through
the thin wrappers below, which take every weight as a separate named array (the canonical
"su" layout W, U, b, or the official PyTorch layout W_ih, b_ih, W_hh, b_hh) and return plain
tuples of arrays. Each wrapper is documented with the calling convention a candidate must
follow; the trees are registered through wrappers that return the bracket string as a
fixed-width string array and the spans as an integer array.

Cases cover both master-input conventions (D1: "su" default, "paper"), both layouts, both
DropConnect conventions, the numerical pitfalls of ``docs/on_lstm.md`` (extreme logits, one
level, one neuron per level, the paper gate's last entry) and bad input (a chunk that does not
divide N, wrong weight shapes, T = 0, unknown options).
"""
import autograd.numpy as anp
import numpy as onp

from kexue_ref import on_lstm as ol
from kexue_ref.cases._gen import distinct, normal, unit
from kexue_ref.registry import CaseDef, OpSpec, grid

POST = "https://kexue.fm/archives/6621"
OFFICIAL = "yikangshen/Ordered-Neurons ON_LSTM.py"
KERAS = "bojone/on-lstm on_lstm_keras.py"


# ---------------------------------------------------------------------------
# Thin registry wrappers (array arguments only)
# ---------------------------------------------------------------------------

def cell(x, h, c, W, U, b, **kw):
    """Registry form of :func:`kexue_ref.on_lstm.on_lstm_cell`, canonical ("su" = Keras) layout.

    ``cell(x (B, D), h (B, N), c (B, N), W (D, 2L + 4N), U (N, 2L + 4N), b (2L + 4N,), **kw)``
    returns ``(h, c, f_master, i_master)``; ``kw`` are the keywords of ``on_lstm_cell``.

    Notes
    -----
    Source: https://kexue.fm/archives/6621; bojone/on-lstm on_lstm_keras.py ``one_step``.
    """
    return ol.on_lstm_cell(x, h, c, {"W": W, "U": U, "b": b}, **kw)


def cell_official(x, h, c, W_ih, b_ih, W_hh, b_hh, **kw):
    """Registry form of ``on_lstm_cell`` with weights in the official PyTorch layout.

    ``W_ih (2L + 4N, D)``, ``b_ih``, ``W_hh (2L + 4N, N)``, ``b_hh (2L + 4N,)`` are
    ``ONLSTMCell``'s ``ih.0.weight``, ``ih.0.bias``, ``hh.weight``, ``hh.bias``; ``c`` is the
    official (B, L, C) cell state flattened to (B, N). Returns ``(h, c, f_master, i_master)``.

    Notes
    -----
    Source: yikangshen/Ordered-Neurons ON_LSTM.py ``ONLSTMCell.forward``.
    """
    return ol.on_lstm_cell(x, h, c, _official(W_ih, b_ih, W_hh, b_hh), layout="official", **kw)


def layer(x, h0, c0, W, U, b, **kw):
    """Registry form of :func:`kexue_ref.on_lstm.on_lstm` (canonical layout).

    ``layer(x (B, T, D), h0 (B, N), c0 (B, N), W, U, b, **kw)`` returns the six arrays of
    ``ONLSTMOutput``: h, c (B, T, N), f_master, i_master (B, T, L), distance, distance_in (B, T).

    Notes
    -----
    Source: https://kexue.fm/archives/6621; on_lstm_keras.py ``call``.
    """
    return tuple(ol.on_lstm(x, {"W": W, "U": U, "b": b}, h0, c0, **kw))


def layer_official(x, h0, c0, W_ih, b_ih, W_hh, b_hh, **kw):
    """Registry form of ``on_lstm`` with weights in the official layout (see ``cell_official``).

    Returns the six arrays of ``ONLSTMOutput``.

    Notes
    -----
    Source: ON_LSTM.py ``ONLSTMStack.forward`` (one layer, batch-first here).
    """
    return tuple(ol.on_lstm(x, _official(W_ih, b_ih, W_hh, b_hh), h0, c0, layout="official", **kw))


def layer_dropconnect(x, h0, c0, W, U, b, keep_W, keep_U, **kw):
    """Registry form of ``on_lstm`` in training with DropConnect on both kernels.

    ``keep_W`` (D, 2L + 4N) and ``keep_U`` (N, 2L + 4N) are boolean keep-masks (True keeps);
    ``kw`` carries ``dropconnect`` ("inverted" or "official") and ``dropconnect_p``; the masks
    apply to W and U (``dropconnect_on=("W", "U")``). Returns the six arrays of ``ONLSTMOutput``.

    Notes
    -----
    Source: on_lstm_keras.py (``K.dropout`` on kernel and recurrent kernel, inverted);
    ON_LSTM.py ``LinearDropConnect`` (no rescaling in training).
    """
    masks = {"W": keep_W, "U": keep_U}
    return tuple(ol.on_lstm(x, {"W": W, "U": U, "b": b}, h0, c0, dropconnect_masks=masks,
                            dropconnect_on=("W", "U"), **kw))


def layer_official_dropconnect(x, h0, c0, W_ih, b_ih, W_hh, b_hh, keep_hh, **kw):
    """Registry form of an official training step: DropConnect on ``hh`` only, no rescaling.

    ``keep_hh`` (2L + 4N, N) is the boolean keep-mask in the official layout (the official
    ``mask`` is its negation: 1 = drop). Returns the six arrays of ``ONLSTMOutput``.

    Notes
    -----
    Source: ON_LSTM.py ``LinearDropConnect.sample_mask`` / ``forward`` (training branch).
    """
    if onp.shape(keep_hh) != onp.shape(W_hh):
        raise ValueError(f"keep_hh must have the shape of W_hh {onp.shape(W_hh)}, got {onp.shape(keep_hh)}")
    L = (onp.shape(W_hh)[0] - 4 * onp.shape(W_hh)[1]) // 2
    keep_U = ol.permute_gates(onp.asarray(keep_hh).T, L, "official", "su")
    return tuple(ol.on_lstm(x, _official(W_ih, b_ih, W_hh, b_hh), h0, c0, layout="official",
                            dropconnect="official", dropconnect_masks={"U": keep_U}, **kw))


def stack2(x, W0, U0, b0, W1, U1, b1, keep_dropout, **kw):
    """Registry form of :func:`kexue_ref.on_lstm.on_lstm_stack` with two layers, zero states.

    ``keep_dropout`` (B, N_0) is the locked dropout keep-mask between the layers, or (B, T, N_0)
    for a mask per step (``kw`` gives
    ``dropout_p``). Returns ``(h (B, T, N_1), distance (2, B, T), distance_in (2, B, T))``.

    Notes
    -----
    Source: ON_LSTM.py ``ONLSTMStack`` (``LockedDropout`` between layers).
    """
    out = ol.on_lstm_stack(x, [{"W": W0, "U": U0, "b": b0}, {"W": W1, "U": U1, "b": b1}],
                           dropout_masks=[keep_dropout], **kw)
    return (out.h, anp.stack([l.distance for l in out.layers]),
            anp.stack([l.distance_in for l in out.layers]))


def induced_tree(d, tokens):
    """Registry form of :func:`kexue_ref.on_lstm.build_tree`.

    ``induced_tree(d (T,), tokens (T,) str)`` returns ``(brackets, spans)``: the bracket string
    (0-d unicode array, :func:`~kexue_ref.on_lstm.tree_to_brackets`) and the non-trivial spans
    (S, 2) int64, half-open, sorted (:func:`~kexue_ref.on_lstm.tree_spans`).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (greedy split); test_phrase_grammar.py ``build_tree``.
    """
    tree = ol.build_tree(list(onp.asarray(tokens)), d)
    spans = onp.array(ol.tree_spans(tree), dtype=onp.int64).reshape(-1, 2)
    return onp.array(ol.tree_to_brackets(tree)), spans


def tree_f1(d, d_gold):
    """Registry form of :func:`kexue_ref.on_lstm.bracket_f1` between two induced trees.

    Builds the greedy trees of the distances ``d`` and ``d_gold`` (T,) over the same T tokens
    and returns ``(precision, recall, f1)`` as 0-d arrays in the distances' floating dtype
    (trivial spans excluded).

    Notes
    -----
    Source: test_phrase_grammar.py ``get_brackets`` and the sentence-level F1 of ``test``.
    """
    if onp.ndim(d) != 1 or onp.shape(d) != onp.shape(d_gold):
        raise ValueError(f"d and d_gold must have the same shape (T,), got {onp.shape(d)} and "
                         f"{onp.shape(d_gold)}")
    T = onp.shape(d)[0]
    tokens = [str(t) for t in range(T)]
    p, r, f = ol.bracket_f1(ol.build_tree(tokens, d), ol.build_tree(tokens, d_gold))
    dtype = onp.result_type(onp.asarray(d).dtype, onp.asarray(d_gold).dtype, onp.float32)
    return onp.array(p, dtype=dtype), onp.array(r, dtype=dtype), onp.array(f, dtype=dtype)


def _official(W_ih, b_ih, W_hh, b_hh):
    return {"ih.0.weight": W_ih, "ih.0.bias": b_ih, "hh.weight": W_hh, "hh.bias": b_hh}


# ---------------------------------------------------------------------------
# Input generators
# ---------------------------------------------------------------------------

def _su(rng, D, N, L, scale=1.0):
    return ol.random_params(rng, D, N, L, scale=scale)


def _cell_inputs(rng, B=2, D=3, N=4, L=2, scale=1.0):
    p = _su(rng, D, N, L, scale)
    return {"x": normal(rng, B, D), "h": normal(rng, B, N, scale=0.5), "c": normal(rng, B, N),
            **p}


def _official_inputs(inputs):
    off = ol.to_official({k: inputs[k] for k in ("W", "U", "b")})
    # split the bias in two unequal parts, as a trained model has
    half = 0.3 * off["ih.0.bias"]
    return {"W_ih": off["ih.0.weight"], "b_ih": off["ih.0.bias"] - half,
            "W_hh": off["hh.weight"], "b_hh": half}


def _cell_official_inputs(rng, **kw):
    inputs = _cell_inputs(rng, **kw)
    return {"x": inputs["x"], "h": inputs["h"], "c": inputs["c"],
            **_official_inputs(inputs)}


def _layer_inputs(rng, B=2, T=3, D=3, N=4, L=2, scale=1.0):
    p = _su(rng, D, N, L, scale)
    return {"x": normal(rng, B, T, D), "h0": normal(rng, B, N, scale=0.5),
            "c0": normal(rng, B, N), **p}


def _layer_official_inputs(rng, **kw):
    inputs = _layer_inputs(rng, **kw)
    return {"x": inputs["x"], "h0": inputs["h0"], "c0": inputs["c0"],
            **_official_inputs(inputs)}


def _layer_dc_inputs(rng, B=2, T=3, D=3, N=4, L=2, keep=0.75):
    inputs = _layer_inputs(rng, B, T, D, N, L)
    inputs["keep_W"] = rng.random(inputs["W"].shape) < keep
    inputs["keep_U"] = rng.random(inputs["U"].shape) < keep
    return inputs


def _layer_official_dc_inputs(rng, keep=0.75, **kw):
    inputs = _layer_official_inputs(rng, **kw)
    inputs["keep_hh"] = rng.random(inputs["W_hh"].shape) < keep
    return inputs


def _stack_inputs(rng, B=2, T=3, D=3, N0=4, L0=2, N1=3, L1=3):
    p0, p1 = _su(rng, D, N0, L0), _su(rng, N0, N1, L1)
    return {"x": normal(rng, B, T, D), "W0": p0["W"], "U0": p0["U"], "b0": p0["b"],
            "W1": p1["W"], "U1": p1["U"], "b1": p1["b"], "keep_dropout": rng.random((B, N0)) < 0.7}


def _update_inputs(rng, B=2, N=6, L=3):
    inputs = {"c_prev": normal(rng, B, N), "c_hat": unit(rng, B, N, low=-0.98, high=0.98),
              "f": unit(rng, B, N), "i": unit(rng, B, N)}
    a = normal(rng, 2, B, L)
    fm, im = ol.master_gates(a[0], a[1])
    inputs["f_master"], inputs["i_master"] = fm, im
    return inputs


# ---------------------------------------------------------------------------
# Case lists
# ---------------------------------------------------------------------------

def _cumax_cases():
    return ([CaseDef("B2-L5", lambda rng: {"a": normal(rng, 2, 5)}),
             CaseDef("post-p", {"a": onp.log(onp.array([0.25, 0.25, 0.5]))},
                     note="softmax = [1/4, 1/4, 1/2]: cumax = [1/4, 1/2, 1]")]
            + grid("L{L}", lambda rng, L: {"a": normal(rng, 3, L, scale=2.0)}, tier="full", L=[2, 8, 115])
            + [CaseDef("axis0", lambda rng: {"a": normal(rng, 4, 3)}, {"axis": 0}, tier="full"),
               CaseDef("extreme-1e4", {"a": onp.array([[1e4, -1e4, 9999.0], [-1e4, -1e4 + 2, -1e4 + 1]])},
                       tier="edge", note="unshifted exp overflows (the softmax needs a per-axis max shift)"),
               CaseDef("L1", {"a": onp.array([[0.3], [-2.0]])}, tier="edge", note="one level: cumax = 1"),
               CaseDef("nan", {"a": onp.array([0.0, onp.nan])}, tier="error", raises=(ValueError, "a contains NaN")),
               CaseDef("empty-axis", {"a": onp.zeros((2, 0))}, tier="error", raises=(ValueError, "empty axis"))])


def _master_cases():
    def ins(rng, L, B=2, scale=1.0):
        a = normal(rng, 2, B, L, scale=scale)
        return {"a_f": a[0], "a_i": a[1]}
    rows = []
    for mi in ("su", "paper"):
        rows += [CaseDef(f"{mi}-B2-L5", lambda rng: ins(rng, 5), {"master_input": mi}),
                 CaseDef(f"{mi}-L4-chunk3", lambda rng: ins(rng, 4), {"master_input": mi, "chunk": 3},
                         tier="full", note="chunk expansion: np.repeat semantics"),
                 CaseDef(f"{mi}-L115", lambda rng: ins(rng, 115, B=1, scale=3.0), {"master_input": mi},
                         tier="full", note="the official 115 levels"),
                 CaseDef(f"{mi}-L1", lambda rng: ins(rng, 1), {"master_input": mi}, tier="edge",
                         note="one level: ĩ = 1 (su) or 0 (paper)"),
                 CaseDef(f"{mi}-saturated", {"a_f": onp.array([[-50.0, 40.0, -30.0]]),
                                             "a_i": onp.array([[10.0, -800.0, 900.0]])},
                         {"master_input": mi}, tier="edge",
                         note="one-hot softmaxes: hard master gates to rounding; paper ĩ_{L−1} = 0 exactly")]
    rows += [CaseDef("bad-master-input", {"a_f": onp.zeros((1, 3)), "a_i": onp.zeros((1, 3))},
                     {"master_input": "keras"}, tier="error", raises=(ValueError, "master_input must be one of")),
             CaseDef("shape-mismatch", {"a_f": onp.zeros((1, 3)), "a_i": onp.zeros((1, 4))}, tier="error",
                     raises=(ValueError, "a_f and a_i must have the same shape")),
             CaseDef("chunk-zero", {"a_f": onp.zeros((1, 3)), "a_i": onp.zeros((1, 3))}, {"chunk": 0},
                     tier="error", raises=(ValueError, "chunk must be >= 1"))]
    return rows


def _expand_cases():
    return [CaseDef("post-example", {"g": onp.array([0.1, 0.9])}, {"chunk": 3},
                    note="[0.1, 0.9] → [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]"),
            CaseDef("B2-L3-C4", lambda rng: {"g": unit(rng, 2, 3)}, {"chunk": 4}, tier="full"),
            CaseDef("C1", lambda rng: {"g": unit(rng, 2, 3)}, {"chunk": 1}, tier="edge", note="L = N: identity"),
            CaseDef("chunk-float", {"g": onp.ones(2)}, {"chunk": 2.0}, tier="error",
                    raises=(TypeError, "chunk must be an integer"))]


def _hard_cases():
    n = 7
    df, di = onp.meshgrid(onp.arange(n), onp.arange(n), indexing="ij")
    return [CaseDef("all-pairs-L7", {"d_f": df.ravel(), "d_i": di.ravel()}, {"levels": n},
                    note="every (d_f, d_i) pair of the post's two cases"),
            CaseDef("all-pairs-L7-base1", {"d_f": df.ravel() + 1, "d_i": di.ravel() + 1}, {"levels": n, "base": 1},
                    tier="full", note="the post's 1-based levels"),
            CaseDef("L1", {"d_f": onp.array([0]), "d_i": onp.array([0])}, {"levels": 1}, tier="edge"),
            CaseDef("level-out-of-range", {"d_f": onp.array([7]), "d_i": onp.array([0])}, {"levels": 7},
                    tier="error", raises=(ValueError, r"d_f must hold levels in \[0, 6\]")),
            CaseDef("float-levels", {"d_f": onp.array([1.0]), "d_i": onp.array([0])}, {"levels": 3},
                    tier="error", raises=(TypeError, "d_f must hold integer levels"))]


def _all_pairs(rng, L, C):
    pairs = onp.array([(a, b) for a in range(L) for b in range(L)])
    B, N = len(pairs), L * C
    return {"c_prev": normal(rng, B, N), "c_hat": unit(rng, B, N, low=-0.98, high=0.98),
            "f": unit(rng, B, N), "i": unit(rng, B, N), "d_f": pairs[:, 0], "d_i": pairs[:, 1]}


def _partitioned_cases():
    def ins(rng, B, N, C, base=0):
        L = N // C
        return {"c_prev": normal(rng, B, N), "c_hat": unit(rng, B, N, low=-0.98, high=0.98),
                "f": unit(rng, B, N), "i": unit(rng, B, N),
                "d_f": rng.integers(0, L, size=B) + base, "d_i": rng.integers(0, L, size=B) + base}
    return [CaseDef("B8-N7", lambda rng: ins(rng, 8, 7, 1)),
            CaseDef("B8-N12-C3", lambda rng: ins(rng, 8, 12, 3), {"chunk": 3}, tier="full"),
            CaseDef("B6-N5-base1", lambda rng: ins(rng, 6, 5, 1, base=1), {"base": 1}, tier="full"),
            CaseDef("all-pairs-L4-C2", lambda rng: _all_pairs(rng, 4, 2), {"chunk": 2}, tier="edge",
                    note="every (d_f, d_i) pair, including d_f = d_i and the empty middle"),
            CaseDef("chunk-not-dividing", lambda rng: ins(rng, 2, 6, 3), {"chunk": 4}, tier="error",
                    raises=(ValueError, "chunk=4 does not divide the hidden size N=6")),
            CaseDef("shape-mismatch", {"c_prev": onp.zeros((2, 4)), "c_hat": onp.zeros((2, 3)), "f": onp.zeros((2, 4)),
                                       "i": onp.zeros((2, 4)), "d_f": onp.array([0, 1]), "d_i": onp.array([0, 1])},
                    tier="error", raises=(ValueError, r"c_hat must have the shape of c_prev"))]


def _update_cases():
    return [CaseDef("B2-N6-L3", lambda rng: _update_inputs(rng), {"chunk": 2}),
            CaseDef("B3-N5-C1", lambda rng: _update_inputs(rng, 3, 5, 5), tier="full"),
            CaseDef("all-ones-masters", lambda rng: {**_update_inputs(rng, 2, 4, 2),
                                                     "f_master": onp.ones((2, 2)), "i_master": onp.ones((2, 2))},
                    {"chunk": 2}, tier="edge", note="f̃ = ĩ = 1: the plain LSTM update f c + i ĉ"),
            CaseDef("masters-wrong-width", lambda rng: {**_update_inputs(rng, 2, 6, 3),
                                                        "f_master": onp.ones((2, 4)), "i_master": onp.ones((2, 4))},
                    {"chunk": 2}, tier="error",
                    raises=(ValueError, r"f_master and i_master must have shape \(B, N / C\)"))]


def _cell_cases(official=False):
    make = _cell_official_inputs if official else _cell_inputs

    def err(rng, **changes):
        base = make(rng)
        base.update(changes)
        return base
    rows = []
    for mi in ("su", "paper"):
        rows += [CaseDef(f"{mi}-B2-N4-L2", lambda rng: make(rng), {"levels": 2, "master_input": mi}),
                 CaseDef(f"{mi}-B2-N6-C3", lambda rng: make(rng, N=6, L=2), {"chunk": 3, "master_input": mi},
                         tier="full", note="levels given as the official chunk size"),
                 CaseDef(f"{mi}-C1", lambda rng: make(rng, N=3, L=3), {"levels": 3, "master_input": mi},
                         tier="edge", note="one neuron per level (L = N)"),
                 CaseDef(f"{mi}-L1", lambda rng: make(rng, N=3, L=1), {"levels": 1, "master_input": mi},
                         tier="edge", note="one level: su reduces to a plain LSTM; paper never writes (ĩ = 0)")]
    if not official:
        rows += [CaseDef("saturated", lambda rng: make(rng, scale=30.0), {"levels": 2}, tier="edge",
                         note="large pre-activations: saturated gates, near-hard master gates"),
                 CaseDef("official-eval-scaling", lambda rng: make(rng), {"levels": 2, "dropconnect": "official",
                                                                          "dropconnect_p": 0.25},
                         tier="full", note="evaluation in the official convention: U × (1 − p)")]
    bad_w = "W_ih" if official else "W"
    rows += [CaseDef("chunk-not-dividing", lambda rng: make(rng), {"chunk": 3}, tier="error",
                     raises=(ValueError, "chunk=3 does not divide the hidden size N=4")),
             CaseDef("levels-not-dividing", lambda rng: make(rng), {"levels": 3}, tier="error",
                     raises=(ValueError, "levels=3 does not divide the hidden size N=4")),
             CaseDef("no-levels", lambda rng: make(rng), tier="error",
                     raises=(ValueError, "give exactly one of levels= .* or chunk=")),
             CaseDef("bad-master-input", lambda rng: make(rng), {"levels": 2, "master_input": "Paper"},
                     tier="error", raises=(ValueError, "master_input must be one of")),
             CaseDef("wrong-W-shape", lambda rng: err(rng, **{bad_w: onp.zeros((20, 2) if official else (2, 20))}),
                     {"levels": 2}, tier="error",
                     raises=(ValueError, r"ih.0.weight must have shape|W must have shape \(3, 20\)")),
             CaseDef("h-wrong-shape", lambda rng: err(rng, h=onp.zeros((2, 5))), {"levels": 2}, tier="error",
                     raises=(ValueError, r"h must have shape \(B, N\) = \(2, 4\)"))]
    if not official:
        rows += [CaseDef("wrong-U-shape", lambda rng: err(rng, U=onp.zeros((4, 21))), {"levels": 2}, tier="error",
                         raises=(ValueError, r"U of shape \(4, 21\) is not|U must have shape")),
                 CaseDef("wrong-b-shape", lambda rng: err(rng, b=onp.zeros(19)), {"levels": 2}, tier="error",
                         raises=(ValueError, r"b must have shape \(20,\)")),
                 CaseDef("bad-layout", lambda rng: make(rng), {"levels": 2, "layout": "torch"}, tier="error",
                         raises=(ValueError, "layout must be one of"))]
    return rows


def _layer_cases(official=False):
    make = _layer_official_inputs if official else _layer_inputs
    rows = []
    for mi in ("su", "paper"):
        rows += [CaseDef(f"{mi}-B2-T3-N4-L2", lambda rng: make(rng), {"levels": 2, "master_input": mi},
                         note="the 3-step layer, gradients w.r.t. inputs, states and every weight"),
                 CaseDef(f"{mi}-T1", lambda rng: make(rng, T=1), {"levels": 2, "master_input": mi}, tier="edge"),
                 CaseDef(f"{mi}-B1-T6-N6-C2", lambda rng: make(rng, B=1, T=6, N=6, L=3),
                         {"chunk": 2, "master_input": mi}, tier="full")]
    rows += [CaseDef("T0", lambda rng: {**make(rng), "x": onp.zeros((2, 0, 3))}, {"levels": 2}, tier="error",
                     raises=(ValueError, r"x must have shape \(B, T, D\) with T >= 1")),
             CaseDef("x-2d", lambda rng: {**make(rng), "x": onp.zeros((2, 3))}, {"levels": 2}, tier="error",
                     raises=(ValueError, r"x must have shape \(B, T, D\)")),
             CaseDef("chunk-not-dividing", lambda rng: make(rng), {"chunk": 3}, tier="error",
                     raises=(ValueError, "chunk=3 does not divide the hidden size N=4")),
             CaseDef("c0-wrong-shape", lambda rng: {**make(rng), "c0": onp.zeros((2, 3))}, {"levels": 2},
                     tier="error", raises=(ValueError, r"c0 must have shape \(B, N\) = \(2, 4\)"))]
    return rows


def _layer_dc_cases():
    rows = []
    for conv in ("inverted", "official"):
        rows += [CaseDef(f"{conv}-p0.25", lambda rng: _layer_dc_inputs(rng),
                         {"levels": 2, "dropconnect": conv, "dropconnect_p": 0.25},
                         note=f"training with explicit keep-masks, '{conv}' scaling"),
                 CaseDef(f"{conv}-paper-p0.5", lambda rng: _layer_dc_inputs(rng, keep=0.5),
                         {"levels": 2, "dropconnect": conv, "dropconnect_p": 0.5, "master_input": "paper"},
                         tier="full")]
    rows += [CaseDef("all-kept-p0", lambda rng: _layer_dc_inputs(rng, keep=2.0), {"levels": 2, "dropconnect_p": 0.0},
                     tier="edge", note="all-True masks with p = 0: the plain layer"),
             CaseDef("mask-not-bool", lambda rng: {**_layer_dc_inputs(rng), "keep_U": onp.ones((4, 20))},
                     {"levels": 2, "dropconnect_p": 0.25}, tier="error",
                     raises=(TypeError, r"dropconnect_masks\['U'\] must be a boolean keep-mask")),
             CaseDef("mask-wrong-shape", lambda rng: {**_layer_dc_inputs(rng), "keep_W": onp.ones((3, 19), bool)},
                     {"levels": 2, "dropconnect_p": 0.25}, tier="error",
                     raises=(ValueError, r"dropconnect_masks\['W'\] must have the shape of W")),
             CaseDef("p-one", lambda rng: _layer_dc_inputs(rng), {"levels": 2, "dropconnect_p": 1.0}, tier="error",
                     raises=(ValueError, r"dropconnect_p must lie in \[0.0, 1.0\)")),
             CaseDef("bad-convention", lambda rng: _layer_dc_inputs(rng), {"levels": 2, "dropconnect": "keras"},
                     tier="error", raises=(ValueError, "dropconnect must be one of"))]
    return rows


def _layer_official_dc_cases():
    return [CaseDef("p0.25", lambda rng: _layer_official_dc_inputs(rng), {"chunk": 2, "dropconnect_p": 0.25},
                    note="the official training step: hh weights masked, not rescaled; paper ĩ"),
            CaseDef("su-p0.5", lambda rng: _layer_official_dc_inputs(rng, keep=0.5),
                    {"chunk": 2, "dropconnect_p": 0.5, "master_input": "su"}, tier="full"),
            CaseDef("mask-wrong-shape",
                    lambda rng: {**_layer_official_dc_inputs(rng), "keep_hh": onp.ones((4, 20), bool)},
                    {"chunk": 2, "dropconnect_p": 0.25}, tier="error",
                    raises=(ValueError, r"keep_hh must have the shape of W_hh \(20, 4\)"))]


def _stack_cases():
    return [CaseDef("2-layers-p0.3", lambda rng: _stack_inputs(rng), {"levels": [2, 3], "dropout_p": 0.3}),
            CaseDef("2-layers-paper", lambda rng: _stack_inputs(rng), {"levels": [2, 3], "dropout_p": 0.3,
                                                                      "master_input": "paper"}, tier="full"),
            CaseDef("per-step-mask", lambda rng: {**_stack_inputs(rng), "keep_dropout": rng.random((2, 3, 4)) < 0.7},
                    {"levels": [2, 3], "dropout_p": 0.3}, tier="edge",
                    note="a (B, T, N) mask: dropout drawn per step instead of locked over time"),
            CaseDef("dropout-mask-wrong-shape",
                    lambda rng: {**_stack_inputs(rng), "keep_dropout": onp.ones((2, 3), bool)},
                    {"levels": [2, 3], "dropout_p": 0.3}, tier="error",
                    raises=(ValueError, r"dropout_masks\[0\] must have shape \(B, N\) = \(2, 4\)")),
            CaseDef("levels-per-layer-wrong-length", lambda rng: _stack_inputs(rng), {"levels": [2, 3, 1]},
                    tier="error", raises=(ValueError, r"levels must have one entry per layer \(2\)"))]


def _level_cases():
    def ins(rng, B, L):
        return {"f_master": ol.cumax(normal(rng, B, L))}
    return [CaseDef("B3-L5", lambda rng: ins(rng, 3, 5)),
            CaseDef("post-p-base1", {"f_master": onp.array([0.25, 0.5, 1.0])}, {"base": 1},
                    note="p = [1/4, 1/4, 1/2]: d_f = 1/4 + 2/4 + 3/2 = 2.25 (1-based)"),
            CaseDef("B2-L115", lambda rng: ins(rng, 2, 115), tier="full"),
            CaseDef("hard", {"f_master": onp.array([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])}, tier="edge",
                    note="hard gates: the integer level d_f"),
            CaseDef("not-ending-at-1", {"f_master": onp.array([1.0, 0.5, 0.25])}, tier="error",
                    raises=(ValueError, "f_master must end at 1")),
            CaseDef("base2", {"f_master": onp.array([0.5, 1.0])}, {"base": 2}, tier="error",
                    raises=(ValueError, "base must be one of"))]


def _distance_cases(name):
    key = "f_master" if name == "distance" else "i_master"
    return [CaseDef("B2-T3-L4", lambda rng: {key: ol.cumax(normal(rng, 2, 3, 4))}),
            CaseDef("L1", {key: onp.ones((2, 1))}, tier="edge"),
            CaseDef("nan", {key: onp.array([onp.nan, 1.0])}, tier="error", raises=(ValueError, f"{key} contains NaN")),
            CaseDef("scalar", {key: onp.array(1.0)}, tier="error",
                    raises=(ValueError, f"{key} must have at least 1 dimension"))]


def _tree_cases():
    def tok(*words):
        return onp.array(words)
    return [CaseDef("post-apple", {"d": onp.array([0.5, 0.1, 0.6, 0.2, 0.9]),
                                   "tokens": tok("苹果", "的", "颜色", "是", "什么")},
                    note="the post's example: [[['苹果','的'],['颜色','是']],'什么']"),
            CaseDef("post-love-decreasing", {"d": onp.array([0.9, 0.6, 0.3, 0.1]),
                                             "tokens": tok("爱", "真的", "需要", "勇气")},
                    note="strictly decreasing: a right-branching tree"),
            CaseDef("T9-random", lambda rng: {"d": distinct(rng, 9), "tokens": tok(*"abcdefghi")}, tier="full"),
            CaseDef("ties-first", {"d": onp.array([0.5, 0.5, 0.5]), "tokens": tok("a", "b", "c")}, tier="edge",
                    note="ties go to the first index (np.argmax)"),
            CaseDef("T1", {"d": onp.array([0.3]), "tokens": tok("a")}, tier="edge"),
            CaseDef("length-mismatch", {"d": onp.array([0.1, 0.2]), "tokens": tok("a")}, tier="error",
                    raises=(ValueError, r"d must have shape \(T,\) with T = len\(tokens\)")),
            CaseDef("empty", {"d": onp.zeros(0), "tokens": onp.array([], dtype="<U1")}, tier="error",
                    raises=(ValueError, "T = len\\(tokens\\) >= 1")),
            CaseDef("nan", {"d": onp.array([0.1, onp.nan]), "tokens": tok("a", "b")}, tier="error",
                    raises=(ValueError, "d contains NaN"))]


def _f1_cases():
    return [CaseDef("left-vs-right-T5", {"d": onp.array([0.1, 0.2, 0.3, 0.4, 0.5]),
                                         "d_gold": onp.array([0.5, 0.4, 0.3, 0.2, 0.1])},
                    note="left- vs right-branching over 5 tokens: no shared non-trivial span, F1 = 0"),
            CaseDef("same-T6", {"d": onp.array([0.3, 0.1, 0.9, 0.2, 0.4, 0.0]),
                                "d_gold": onp.array([0.3, 0.1, 0.9, 0.2, 0.4, 0.0])},
                    note="identical trees: F1 = 1"),
            CaseDef("T8-random", lambda rng: {"d": distinct(rng, 8), "d_gold": distinct(rng, 8)}, tier="full"),
            CaseDef("T2", {"d": onp.array([0.1, 0.2]), "d_gold": onp.array([0.2, 0.1])}, tier="edge",
                    note="no non-trivial span on either side: P = R = F1 = 1 (the official convention)"),
            CaseDef("length-mismatch", {"d": onp.array([0.1, 0.2, 0.3]), "d_gold": onp.array([0.2, 0.1])},
                    tier="error", raises=(ValueError, r"d and d_gold must have the same shape \(T,\)"))]


OPS = [
    OpSpec("on_lstm.cumax", ol.cumax, ("a",), ("a",), _cumax_cases(), f"{POST} (f̃ = cs→(softmax)); paper: cumax"),
    OpSpec("on_lstm.master_gates", ol.master_gates, ("a_f", "a_i"), ("a_f", "a_i"), _master_cases(),
           f"{POST} (ĩ = cs←(softmax), the post's choice); paper: ĩ = 1 − cumax",
           outputs=("f_master", "i_master"),
           flags={"master_input": "su default (post, Keras code); paper = 1 − cumax (paper, official code)"}),
    OpSpec("on_lstm.expand_levels", ol.expand_levels, ("g",), ("g",), _expand_cases(),
           f"{POST} (each level repeated C times: np.repeat)"),
    OpSpec("on_lstm.hard_master_gates", ol.hard_master_gates, ("d_f", "d_i"), (), _hard_cases(),
           f"{POST} (f̃ = cs→(onehot(d_f)), ĩ = cs←(onehot(d_i)))", outputs=("f_master", "i_master"),
           flags={"base": "0 default; 1 reproduces the post's 1-based levels (D6)"}),
    OpSpec("on_lstm.partitioned_update", ol.partitioned_update, ("c_prev", "c_hat", "f", "i", "d_f", "d_i"),
           ("c_prev", "c_hat", "f", "i"), _partitioned_cases(), f"{POST} (the two cases of the hard update)"),
    OpSpec("on_lstm.cell_update", ol.cell_update, ("c_prev", "c_hat", "f", "i", "f_master", "i_master"),
           ("c_prev", "c_hat", "f", "i", "f_master", "i_master"), _update_cases(), f"{POST} (the unified update)"),
    OpSpec("on_lstm.cell", cell, ("x", "h", "c", "W", "U", "b"), ("x", "h", "c", "W", "U", "b"), _cell_cases(),
           f"{POST}; {KERAS} one_step", outputs=("h", "c", "f_master", "i_master"),
           flags={"layout": "su (= Keras)", "master_input": "su default / paper"}),
    OpSpec("on_lstm.cell_official", cell_official, ("x", "h", "c", "W_ih", "b_ih", "W_hh", "b_hh"),
           ("x", "h", "c", "W_ih", "b_ih", "W_hh", "b_hh"), _cell_cases(official=True),
           f"{POST}; {OFFICIAL} ONLSTMCell.forward", outputs=("h", "c", "f_master", "i_master"),
           flags={"layout": "official (two biases; ĩ, f̃, o, ĉ, i, f)", "master_input": "su default / paper"}),
    OpSpec("on_lstm.layer", layer, ("x", "h0", "c0", "W", "U", "b"), ("x", "h0", "c0", "W", "U", "b"),
           _layer_cases(), f"{POST}; {KERAS} call",
           outputs=("h", "c", "f_master", "i_master", "distance", "distance_in"), flags={"layout": "su (= Keras)"}),
    OpSpec("on_lstm.layer_official", layer_official, ("x", "h0", "c0", "W_ih", "b_ih", "W_hh", "b_hh"),
           ("x", "h0", "c0", "W_ih", "b_ih", "W_hh", "b_hh"), _layer_cases(official=True),
           f"{POST}; {OFFICIAL} ONLSTMStack.forward",
           outputs=("h", "c", "f_master", "i_master", "distance", "distance_in"), flags={"layout": "official"}),
    OpSpec("on_lstm.layer_dropconnect", layer_dropconnect, ("x", "h0", "c0", "W", "U", "b", "keep_W", "keep_U"),
           ("x", "h0", "c0", "W", "U", "b"), _layer_dc_cases(),
           f"{KERAS} (K.dropout on both kernels, inverted); {OFFICIAL} LinearDropConnect (no rescaling)",
           outputs=("h", "c", "f_master", "i_master", "distance", "distance_in"),
           flags={"dropconnect": "inverted (Keras) / official (PyTorch)"}),
    OpSpec("on_lstm.layer_official_dropconnect", layer_official_dropconnect,
           ("x", "h0", "c0", "W_ih", "b_ih", "W_hh", "b_hh", "keep_hh"),
           ("x", "h0", "c0", "W_ih", "b_ih", "W_hh", "b_hh"), _layer_official_dc_cases(),
           f"{OFFICIAL} LinearDropConnect (hh only, mask without rescaling in training)",
           outputs=("h", "c", "f_master", "i_master", "distance", "distance_in"),
           flags={"layout": "official", "dropconnect": "official"}),
    OpSpec("on_lstm.stack2", stack2, ("x", "W0", "U0", "b0", "W1", "U1", "b1", "keep_dropout"),
           ("x", "W0", "U0", "b0", "W1", "U1", "b1"), _stack_cases(),
           f"{OFFICIAL} ONLSTMStack (LockedDropout between layers); bojone/on-lstm lm_model.py (stacked layers)",
           outputs=("h", "distance", "distance_in")),
    OpSpec("on_lstm.soft_level", ol.soft_level, ("f_master",), ("f_master",), _level_cases(),
           f"{POST} (d_f = Σ k p_f(k) = L(1 − mean f̃) + 1, 1-based); paper eq. (15)",
           flags={"base": "0 default; 1 reproduces the post (D6)"}),
    OpSpec("on_lstm.distance", ol.distance, ("f_master",), ("f_master",), _distance_cases("distance"),
           f"{KERAS} self.distance; {OFFICIAL} distance_cforget"),
    OpSpec("on_lstm.distance_in", ol.distance_in, ("i_master",), ("i_master",), _distance_cases("distance_in"),
           f"{KERAS} self.distance_in; {OFFICIAL} distance_cin"),
    OpSpec("on_lstm.induced_tree", induced_tree, ("d", "tokens"), (), _tree_cases(),
           f"{POST} (greedy split at the largest distance); {OFFICIAL.split()[0]} test_phrase_grammar.py build_tree",
           outputs=("brackets", "spans")),
    OpSpec("on_lstm.tree_f1", tree_f1, ("d", "d_gold"), (), _f1_cases(),
           f"{OFFICIAL.split()[0]} test_phrase_grammar.py (get_brackets, sentence-level unlabeled F1)",
           outputs=("precision", "recall", "f1")),
]
