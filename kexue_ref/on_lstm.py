r"""ON-LSTM: ordered neurons, master gates, the cell, layers and stacks, and tree induction.

Post: Su Jianlin, "ON-LSTM: expressing hierarchical structure with ordered neurons",
2019-05-28, https://kexue.fm/archives/6621. Paper: Y. Shen, S. Tan, A. Sordoni, A. Courville,
"Ordered Neurons: Integrating Tree Structures into Recurrent Neural Networks", ICLR 2019,
arXiv 1810.09536. Codes: the author's Keras layer ``bojone/on-lstm`` (``on_lstm_keras.py``)
and the official PyTorch code ``yikangshen/Ordered-Neurons`` (``ON_LSTM.py``).

Notation (the post's): ``f, i, o`` the LSTM gates, ``c_hat`` the candidate ĉ, ``f_master`` the
master forget gate f̃, ``i_master`` the master input gate ĩ, ``omega`` their overlap ω = f̃ ⊙ ĩ,
``d_f, d_i`` the (hard or soft) levels. Shapes (D5, legend of SPEC §1.2): B batch, T time,
D input features, N hidden units, L levels, C chunk size, with N = L·C; neuron n belongs to
level ``n // C`` (each level is C consecutive neurons, as in both public codes).

Conventions: positions and levels are 0-based unless ``base=1`` (D6); a low level is a fine
grain, a high level a coarse one; the master input gate follows the post by default
(``master_input="su"``, the inclusive right-to-left cumsum) and the paper on request
(``master_input="paper"``, the exclusive suffix sum) (D1); dropout and DropConnect masks are
boolean keep-masks given by the caller (D2). Parameters are explicit arrays: the canonical
layout is the post's / Keras code's ("su"): ``{"W": (D, 2L + 4N), "U": (N, 2L + 4N),
"b": (2L + 4N,)}`` with columns ``[f̃ (L) | ĩ (L) | f (N) | i (N) | o (N) | ĉ (N)]``; converters
read and write the official PyTorch layout. Nothing here mutates its inputs; the scans build
lists and ``np.stack`` them, so every differentiable function is traceable by autograd.
"""
import collections
import collections.abc

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import expit as _sigmoid

from kexue_ref import _numerics as nx
from kexue_ref._validate import (
    as_float, check_axis, check_choice, check_float_array, check_int, check_range, value_of,
)

__all__ = [
    "cumax", "master_gates", "expand_levels", "hard_master_gates", "partitioned_update",
    "cell_update", "on_lstm_cell", "on_lstm", "on_lstm_stack", "ONLSTMOutput",
    "ONLSTMStackOutput", "random_params", "permute_gates", "to_official", "from_official",
    "to_keras", "from_keras", "soft_level", "distance", "distance_in", "build_tree",
    "tree_to_brackets", "tree_spans", "bracket_f1",
]

POST = "https://kexue.fm/archives/6621"
MASTER_INPUTS = ("su", "paper")
DROPCONNECT = ("inverted", "official")
LAYOUTS = ("su", "keras", "official")
#: Gate blocks of the pre-activation axis, in order, for each layout ("fm" = master forget f̃,
#: "im" = master input ĩ, each L wide; the others N wide).
GATE_ORDER = {"su": ("fm", "im", "f", "i", "o", "c"), "official": ("im", "fm", "o", "c", "i", "f")}
OFFICIAL_KEYS = ("ih.0.weight", "ih.0.bias", "hh.weight", "hh.bias")

ONLSTMOutput = collections.namedtuple(
    "ONLSTMOutput", ["h", "c", "f_master", "i_master", "distance", "distance_in"])
ONLSTMOutput.__doc__ = """Outputs of :func:`on_lstm` (a tuple, so it also unpacks).

h, c : (B, T, N) hidden and cell states at every step; f_master, i_master : (B, T, L) master
gates; distance : (B, T) 1 − mean f̃; distance_in : (B, T) mean ĩ."""

ONLSTMStackOutput = collections.namedtuple("ONLSTMStackOutput", ["h", "layers"])
ONLSTMStackOutput.__doc__ = """Outputs of :func:`on_lstm_stack`: ``h`` (B, T, N_last) the last
layer's hidden states and ``layers``, one :class:`ONLSTMOutput` per layer (before dropout)."""


# ---------------------------------------------------------------------------
# cumax and the master gates
# ---------------------------------------------------------------------------

def cumax(a, axis=-1):
    r"""Cumulative softmax: the left-to-right cumsum of the softmax (the soft master forget gate).

    .. math:: \mathrm{cumax}(a) = \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a)), \qquad
              \mathrm{cumax}(a)_k = \sum_{j \le k} \mathrm{softmax}(a)_j

    Parameters
    ----------
    a : array (..., L, ...), finite logits over the levels.
    axis : int, the level axis.

    Returns
    -------
    array, the shape of ``a``: non-decreasing along ``axis`` (to rounding), in [0, 1], last
    entry exactly 1. Entries whose partial sum is below 1/2 are the prefix sums, the others
    1 − Σ_{j > k} softmax(a)_j: a plain cumsum of many terms drifts by several ulp near 1
    (docs/on_lstm.md, "Master gates").

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (f̃ = cs→(softmax(·)), the soft version of
    cs→(onehot(d_f))); the paper's cumax, ``cumsoftmax`` in the official code.

    Examples
    --------
    >>> cumax(onp.log(onp.array([0.25, 0.25, 0.5]))).round(6).tolist()
    [0.25, 0.5, 1.0]
    """
    a = _checked(a, "a")
    axis = check_axis(a, axis, "a")
    # f̃ = cs→(softmax(a)), each entry from the side whose partial sum is below 1/2
    p = np.moveaxis(nx._softmax(a, axis), axis, -1)
    return np.moveaxis(_cumulative(p), -1, axis)


def master_gates(a_f, a_i, *, master_input="su", chunk=1):
    r"""The master forget gate f̃ and the master input gate ĩ from their logits.

    .. math:: \tilde f = \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a_f)), \qquad
              \tilde i^{\,\mathrm{su}}_k = \sum_{j \ge k} \mathrm{softmax}(a_i)_j, \qquad
              \tilde i^{\,\mathrm{paper}}_k = \sum_{j > k} \mathrm{softmax}(a_i)_j
              = 1 - \mathrm{cumax}(a_i)_k

    Parameters
    ----------
    a_f, a_i : arrays (..., L) of the same shape, the master-gate logits.
    master_input : "su" (default, the post: the inclusive right-to-left cumsum, ĩ_0 = 1, as in
        the Keras code) or "paper" (the paper and the official code: 1 − cumax, ĩ_{L−1} = 0).
    chunk : int C ≥ 1; with C > 1 each level is repeated C times (:func:`expand_levels`).

    Returns
    -------
    (f_master, i_master), arrays (..., L·C).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("ĩ = cs←(softmax(·))", chosen "for symmetry"; the
    post says the two forms usually make no difference); the paper's master gates. The two master
    input gates differ by p_k at every level: paper ĩ_k = su ĩ_{k+1}. ``"paper"`` is computed
    as the exclusive suffix sum itself, not as 1 − cumsum, so high levels keep their precision
    and the last entry is exactly 0 (``1 − cumsum`` can leave 1e-16 there, SPEC §4.3).

    Examples
    --------
    >>> a = onp.log(onp.array([0.5, 0.25, 0.25]))
    >>> [g.round(6).tolist() for g in master_gates(a, a)]
    [[0.5, 0.75, 1.0], [1.0, 0.5, 0.25]]
    >>> master_gates(a, a, master_input="paper")[1].round(6).tolist()
    [0.5, 0.25, 0.0]
    """
    a_f = _checked(a_f, "a_f", min_ndim=1)
    a_i = _checked(a_i, "a_i", min_ndim=1)
    if value_of(a_f).shape != value_of(a_i).shape or value_of(a_f).shape[-1] == 0:
        raise ValueError(f"a_f and a_i must have the same shape (..., L) with L >= 1, got "
                         f"{value_of(a_f).shape} and {value_of(a_i).shape}")
    check_choice(master_input, "master_input", MASTER_INPUTS)
    chunk = check_int(chunk, "chunk", min_value=1)
    f_master, i_master = _master_gates(a_f, a_i, master_input)
    return _expand(f_master, chunk), _expand(i_master, chunk)


def expand_levels(g, chunk):
    r"""Expand a gate over L levels to N = L·C neurons: each entry repeated C times in a row.

    .. math:: g^{\mathrm{exp}}_{n} = g_{\lfloor n / C \rfloor}, \qquad n = 0, \dots, LC - 1

    Parameters
    ----------
    g : array (..., L).
    chunk : int C ≥ 1.

    Returns
    -------
    array (..., L·C), ``np.repeat(g, C, axis=-1)`` (not ``np.tile``).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("repeat each level C times"); the Keras code
    broadcasts over a (B, L, C) view, the official code over (B, L, C) chunks; both put neuron
    ``level·C + j`` in level ``level``.

    Examples
    --------
    >>> expand_levels(onp.array([0.1, 0.9]), 3).tolist()
    [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]
    """
    g = _checked(g, "g", min_ndim=1)
    return _expand(g, check_int(chunk, "chunk", min_value=1))


# ---------------------------------------------------------------------------
# The hard partitioned update and the unified formula
# ---------------------------------------------------------------------------

def hard_master_gates(d_f, d_i, levels, base=0):
    r"""Hard master gates: cumsums of the one-hot levels d_f (history) and d_i (input).

    .. math:: \tilde f = \overrightarrow{\mathrm{cs}}(\mathrm{onehot}(d_f)) = [k \ge d_f],
              \qquad \tilde i = \overleftarrow{\mathrm{cs}}(\mathrm{onehot}(d_i)) = [k \le d_i]

    Parameters
    ----------
    d_f, d_i : int arrays of the same shape (...) (or ints), levels in [base, L − 1 + base].
    levels : int L ≥ 1.
    base : 0 (default) or 1 (the post's 1-based levels, D6).

    Returns
    -------
    (f_master, i_master), float64 arrays (..., L) of 0s and 1s.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified form of the partitioned update).
    """
    L = check_int(levels, "levels", min_value=1)
    df, di = _check_levels(d_f, d_i, L, base)
    k = onp.arange(L)
    # onehot(d) over positions k = 0..L−1
    onehot_f = (k == df[..., None]).astype(onp.float64)  # (..., L)
    onehot_i = (k == di[..., None]).astype(onp.float64)  # (..., L)
    # f̃ = cs→(onehot(d_f)), ĩ = cs←(onehot(d_i))
    return onp.cumsum(onehot_f, axis=-1), onp.cumsum(onehot_i[..., ::-1], axis=-1)[..., ::-1]


def partitioned_update(c_prev, c_hat, f, i, d_f, d_i, *, chunk=1, base=0):
    r"""The post's hard update, case by case, with integer levels d_f and d_i.

    Case d_f ≤ d_i:

    .. math:: c_k = \begin{cases} \hat c_k & k < d_f \\ f_k c_{t-1,k} + i_k \hat c_k &
              d_f \le k \le d_i \\ c_{t-1,k} & k > d_i \end{cases}

    Case d_f > d_i:

    .. math:: c_k = \begin{cases} \hat c_k & k \le d_i \\ 0 & d_i < k < d_f \\
              c_{t-1,k} & k \ge d_f \end{cases}

    Parameters
    ----------
    c_prev, c_hat, f, i : arrays (B, N) of the same shape: c_{t−1}, ĉ_t and the LSTM gates.
    d_f, d_i : int arrays (B,), levels in [base, L − 1 + base] with L = N / C.
    chunk : int C ≥ 1 dividing N (level of neuron n is n // C).
    base : 0 or 1 (D6).

    Returns
    -------
    array (B, N), c_t. It equals :func:`cell_update` with :func:`hard_master_gates`.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the two cases of the partitioned update; in the
    second, the levels strictly between d_i and d_f are left empty, 0).
    """
    c_prev, c_hat, f, i = _same_shape_2d(("c_prev", c_prev), ("c_hat", c_hat), ("f", f), ("i", i))
    B, N = value_of(c_prev).shape
    C = _check_chunk(chunk, N)
    df, di = _check_levels(d_f, d_i, N // C, base)
    if df.shape != (B,):
        raise ValueError(f"d_f and d_i must have shape (B,) = ({B},), got {df.shape}")
    k = onp.arange(N) // C                       # level of each neuron, (N,)
    df, di = df[:, None], di[:, None]            # (B, 1)
    zero = np.zeros_like(c_prev)
    # d_f ≤ d_i: ĉ below d_f, the LSTM update on [d_f, d_i], the history above d_i
    lstm = f * c_prev + i * c_hat
    case1 = np.where(k < df, c_hat, np.where(k <= di, lstm, c_prev))
    # d_f > d_i: ĉ up to d_i, the empty middle (d_i, d_f) is 0, the history from d_f on
    case2 = np.where(k <= di, c_hat, np.where(k < df, zero, c_prev))
    return np.where(df <= di, case1, case2)


def cell_update(c_prev, c_hat, f, i, f_master, i_master, *, chunk=1):
    r"""The unified ON-LSTM cell update with master gates (hard or soft).

    .. math:: \omega = \tilde f \odot \tilde i, \qquad
              c_t = \omega \odot (f_t \odot c_{t-1} + i_t \odot \hat c_t)
              + (\tilde f - \omega) \odot c_{t-1} + (\tilde i - \omega) \odot \hat c_t

    Parameters
    ----------
    c_prev, c_hat, f, i : arrays (B, N) of the same shape.
    f_master, i_master : arrays (B, N), or (B, L) with ``chunk`` = C = N / L.
    chunk : int C ≥ 1; the master gates are expanded by it (1: they are already N wide).

    Returns
    -------
    array (B, N), c_t. With f̃ = ĩ = 1 it is the plain LSTM update f ⊙ c_{t−1} + i ⊙ ĉ.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified formula, written as in the Keras code);
    the official code writes the same thing as (f ω + f̃ − ω) c_{t−1} + (i ω + ĩ − ω) ĉ.
    """
    c_prev, c_hat, f, i = _same_shape_2d(("c_prev", c_prev), ("c_hat", c_hat), ("f", f), ("i", i))
    B, N = value_of(c_prev).shape
    C = check_int(chunk, "chunk", min_value=1)
    f_master, i_master = _same_shape_2d(("f_master", f_master), ("i_master", i_master))
    if value_of(f_master).shape != (B, N // C) or N % C:
        raise ValueError(f"f_master and i_master must have shape (B, N / C) = ({B}, {N // C}) "
                         f"for c of shape {(B, N)} and chunk={C}, got {value_of(f_master).shape}")
    return _update(c_prev, c_hat, f, i, _expand(f_master, C), _expand(i_master, C))


# ---------------------------------------------------------------------------
# Parameters: the canonical ("su") layout and the two public layouts
# ---------------------------------------------------------------------------

def random_params(rng, input_size, hidden_size, levels, scale=1.0, dtype=onp.float64):
    r"""Random parameters in the canonical layout (a convenience sampler, D2).

    .. math:: W_{dj} \sim \mathcal N(0, s^2 / D), \quad U_{nj} \sim \mathcal N(0, s^2 / N),
              \quad b_j \sim \mathcal N(0, s^2 / 4)

    Parameters
    ----------
    rng : numpy.random.Generator.
    input_size, hidden_size, levels : ints D, N, L with L dividing N.
    scale : float s > 0.
    dtype : floating dtype of the arrays.

    Returns
    -------
    dict {"W": (D, 2L + 4N), "U": (N, 2L + 4N), "b": (2L + 4N,)}.

    Notes
    -----
    Source: library convenience (not the codes' initialisers: glorot / orthogonal / zeros in
    Keras, uniform in PyTorch).
    """
    if not isinstance(rng, onp.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    D = check_int(input_size, "input_size", min_value=1)
    N = check_int(hidden_size, "hidden_size", min_value=1)
    L = check_int(levels, "levels", min_value=1)
    _chunk_of(N, levels=L)
    s = check_range(scale, "scale", 0, onp.inf)
    width = 2 * L + 4 * N
    return {"W": (s / onp.sqrt(D) * rng.standard_normal((D, width))).astype(dtype),
            "U": (s / onp.sqrt(N) * rng.standard_normal((N, width))).astype(dtype),
            "b": (s / 2 * rng.standard_normal(width)).astype(dtype)}


def permute_gates(a, levels, src, dst, axis=-1):
    r"""Reorder the gate blocks of a pre-activation axis from one layout's order to another's.

    .. math:: \text{su: } [\tilde f\,(L) \mid \tilde i\,(L) \mid f \mid i \mid o \mid \hat c]
              \quad\longleftrightarrow\quad
              \text{official: } [\tilde i\,(L) \mid \tilde f\,(L) \mid o \mid \hat c \mid i \mid f]

    Parameters
    ----------
    a : array whose ``axis`` has length 2L + 4N (weights, biases, or boolean masks).
    levels : int L.
    src, dst : "su" (= the Keras order) or "official".
    axis : int

    Returns
    -------
    array, the shape of ``a``, blocks reordered (each block keeps its neuron order level·C + j).

    Notes
    -----
    Source: ``bojone/on-lstm`` ``on_lstm_keras.py`` (slices [:L], [L:2L], then a (4L, C) view
    sliced into f, i, o, ĉ); ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py`` (``chunk(2)`` into
    cingate, cforgetgate, then a (4L, C) view chunked into outgate, cell, ingate, forgetgate).
    """
    check_choice(src, "src", tuple(GATE_ORDER))
    check_choice(dst, "dst", tuple(GATE_ORDER))
    L = check_int(levels, "levels", min_value=1)
    shape = value_of(a).shape
    axis = check_axis(a, axis, "a")
    N, rem = divmod(shape[axis] - 2 * L, 4)
    if rem or N < 1:
        raise ValueError(f"a has {shape[axis]} entries on axis {axis}; expected 2L + 4N with "
                         f"L={L} and N >= 1")
    a_last = np.moveaxis(a, axis, -1)
    blocks, start = {}, 0
    for name in GATE_ORDER[src]:
        width = L if name in ("fm", "im") else N
        blocks[name] = a_last[..., start:start + width]
        start += width
    out = np.concatenate([blocks[name] for name in GATE_ORDER[dst]], axis=-1)
    return np.moveaxis(out, -1, axis)


def to_official(params, prefix=""):
    r"""Canonical parameters → the official PyTorch ``ONLSTMCell`` state-dict layout.

    .. math:: W_{ih} = P W^\top, \quad W_{hh} = P U^\top, \quad b_{ih} = P b, \quad b_{hh} = 0

    where P reorders the gate blocks (:func:`permute_gates`, "su" → "official").

    Parameters
    ----------
    params : dict {"W": (D, 2L + 4N), "U": (N, 2L + 4N), "b": (2L + 4N,)}.
    prefix : str put before each key (e.g. "cells.0." for the first cell of ``ONLSTMStack``).

    Returns
    -------
    dict {prefix + "ih.0.weight": (2L + 4N, D), prefix + "ih.0.bias": (2L + 4N,),
    prefix + "hh.weight": (2L + 4N, N), prefix + "hh.bias": (2L + 4N,)}. The single bias goes
    to ``ih`` and ``hh.bias`` is zero (only their sum matters).

    Notes
    -----
    Source: ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py`` (``ih = Sequential(Linear(...))``,
    ``hh = LinearDropConnect(...)``, ``gates = ih(x) + hh(h)``). Keys and shapes are those of
    ``ONLSTMCell.state_dict()``; a (B, N) cell state here is the official (B, L, C) one flattened.
    """
    W, U, b = _su_arrays(params)
    L = _levels_from_su(W, U, b)
    return {prefix + "ih.0.weight": permute_gates(W, L, "su", "official", axis=1).T,
            prefix + "ih.0.bias": permute_gates(b, L, "su", "official"),
            prefix + "hh.weight": permute_gates(U, L, "su", "official", axis=1).T,
            prefix + "hh.bias": np.zeros_like(b)}


def from_official(state, prefix=""):
    r"""The official PyTorch ``ONLSTMCell`` layout → canonical parameters.

    .. math:: W = (P^{-1} W_{ih})^\top, \quad U = (P^{-1} W_{hh})^\top, \quad
              b = P^{-1} (b_{ih} + b_{hh})

    Parameters
    ----------
    state : mapping with prefix + "ih.0.weight" (2L + 4N, D), "ih.0.bias" (2L + 4N,),
        "hh.weight" (2L + 4N, N), "hh.bias" (2L + 4N,) (other keys are ignored).
    prefix : str, as in :func:`to_official`.

    Returns
    -------
    dict {"W", "U", "b"} (traceable: gradients flow back to the official arrays).

    Notes
    -----
    Source: ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py``. L is read from the shapes:
    2L = rows − 4N with N = ``hh.weight.shape[1]``.
    """
    if not isinstance(state, collections.abc.Mapping):
        raise TypeError(f"state must be a mapping (a state dict), got {type(state).__name__}")
    missing = [prefix + k for k in OFFICIAL_KEYS if prefix + k not in state]
    if missing:
        raise ValueError(f"the official layout needs keys {[prefix + k for k in OFFICIAL_KEYS]}; "
                         f"missing {missing}")
    w_ih, b_ih, w_hh, b_hh = (as_float(state[prefix + k], prefix + k) for k in OFFICIAL_KEYS)
    if value_of(w_hh).ndim != 2 or value_of(w_ih).ndim != 2:
        raise ValueError(f"{prefix}ih.0.weight and {prefix}hh.weight must be 2-d (2L + 4N, D) and "
                         f"(2L + 4N, N), got {value_of(w_ih).shape} and {value_of(w_hh).shape}")
    rows, N = value_of(w_hh).shape
    L, rem = divmod(rows - 4 * N, 2)
    if rem or L < 1:
        raise ValueError(f"{prefix}hh.weight of shape {(rows, N)} is not (2L + 4N, N) for any L >= 1")
    for key, arr, want in (("ih.0.weight", w_ih, (rows, value_of(w_ih).shape[1])),
                           ("ih.0.bias", b_ih, (rows,)), ("hh.bias", b_hh, (rows,))):
        if value_of(arr).shape != want:
            raise ValueError(f"{prefix}{key} must have shape {want} to match "
                             f"{prefix}hh.weight {(rows, N)}, got {value_of(arr).shape}")
    # W = (P⁻¹ W_ih)ᵀ, U = (P⁻¹ W_hh)ᵀ, b = P⁻¹ (b_ih + b_hh)
    return {"W": permute_gates(w_ih.T, L, "official", "su", axis=1),
            "U": permute_gates(w_hh.T, L, "official", "su", axis=1),
            "b": permute_gates(b_ih + b_hh, L, "official", "su")}


def to_keras(params):
    r"""Canonical parameters → the Keras ``ONLSTM`` weights ``[kernel, recurrent_kernel, bias]``.

    .. math:: (W, U, b) \mapsto [W, U, b]

    Parameters
    ----------
    params : dict {"W", "U", "b"}.

    Returns
    -------
    list of three arrays in the order of ``layer.get_weights()`` / ``layer.set_weights()``.

    Notes
    -----
    Source: ``bojone/on-lstm`` ``on_lstm_keras.py`` at e5ecc4b or later (the canonical layout
    *is* this layout; before that commit ``recurrent_kernel`` had shape (D, ...) and the layer
    only worked with D = N).
    """
    W, U, b = _su_arrays(params)
    _levels_from_su(W, U, b)
    return [W, U, b]


def from_keras(weights):
    r"""The Keras ``ONLSTM`` weights → canonical parameters.

    .. math:: [\mathrm{kernel}, \mathrm{recurrent\_kernel}, \mathrm{bias}] \mapsto (W, U, b)

    Parameters
    ----------
    weights : list or tuple ``[kernel (D, 2L + 4N), recurrent_kernel (N, 2L + 4N),
        bias (2L + 4N,)]``, or a mapping with those three names.

    Returns
    -------
    dict {"W", "U", "b"}.

    Notes
    -----
    Source: ``bojone/on-lstm`` ``on_lstm_keras.py`` (``add_weight`` names and order).
    """
    if isinstance(weights, collections.abc.Mapping):
        missing = [k for k in ("kernel", "recurrent_kernel", "bias") if k not in weights]
        if missing:
            raise ValueError(f"Keras weights need keys kernel, recurrent_kernel, bias; missing {missing}")
        weights = [weights["kernel"], weights["recurrent_kernel"], weights["bias"]]
    if not isinstance(weights, (list, tuple)) or len(weights) != 3:
        raise ValueError("Keras weights must be [kernel, recurrent_kernel, bias] (three arrays)")
    params = {"W": weights[0], "U": weights[1], "b": weights[2]}
    _levels_from_su(*_su_arrays(params))
    return params


# ---------------------------------------------------------------------------
# The cell, the layer over time, the stack
# ---------------------------------------------------------------------------

def on_lstm_cell(x_t, h, c, params, *, levels=None, chunk=None, master_input="su", layout="su",
                 dropconnect_masks=None, dropconnect="inverted", dropconnect_p=0.0,
                 dropconnect_on=None):
    r"""One ON-LSTM step.

    .. math::
        z &= x_t W + h_{t-1} U + b = [a_{\tilde f} \mid a_{\tilde i} \mid z_f \mid z_i \mid z_o
             \mid z_c] \\
        f_t &= \sigma(z_f), \quad i_t = \sigma(z_i), \quad o_t = \sigma(z_o), \quad
             \hat c_t = \tanh(z_c) \\
        \tilde f_t &= \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a_{\tilde f})), \quad
             \tilde i_t = \overleftarrow{\mathrm{cs}}(\mathrm{softmax}(a_{\tilde i})),
             \quad \omega_t = \tilde f_t \odot \tilde i_t \\
        c_t &= \omega_t \odot (f_t \odot c_{t-1} + i_t \odot \hat c_t)
             + (\tilde f_t - \omega_t) \odot c_{t-1} + (\tilde i_t - \omega_t) \odot \hat c_t \\
        h_t &= o_t \odot \tanh(c_t)

    (the master gates expanded from L levels to N neurons, each repeated C times).

    Parameters
    ----------
    x_t : array (B, D).
    h, c : arrays (B, N), the previous hidden and cell states.
    params : the weights in ``layout``: "su" (default) ``{"W": (D, 2L + 4N), "U": (N, 2L + 4N),
        "b": (2L + 4N,)}``; "keras" ``[kernel, recurrent_kernel, bias]`` (the same arrays,
        :func:`from_keras`); "official" an ``ONLSTMCell`` state dict (:func:`from_official`).
    levels, chunk : give one: L (the Keras code's ``levels``) or C (the official
        ``chunk_size``); it must divide N.
    master_input : "su" (default) or "paper", see :func:`master_gates`.
    layout : "su", "keras" or "official".
    dropconnect_masks : None (evaluation) or a dict of boolean keep-masks (training), one per
        weight named in ``dropconnect_on``, in the canonical layout: ``"W"`` (D, 2L + 4N),
        ``"U"`` (N, 2L + 4N); True keeps the weight. (An official ``hh`` mask converts with
        ``permute_gates(keep_hh.T, L, "official", "su")``.)
    dropconnect : "inverted" (the Keras code: kept weights × 1/(1 − p) in training, nothing
        at evaluation) or "official" (the official code: kept weights unscaled in training,
        weights × (1 − p) at evaluation).
    dropconnect_p : float p in [0, 1), the drop rate.
    dropconnect_on : tuple of weight names DropConnect applies to; default ("W", "U") for
        "inverted" (Keras drops both kernels) and ("U",) for "official" (only ``hh``).

    Returns
    -------
    (h, c, f_master, i_master): (B, N), (B, N), (B, L), (B, L).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the gate equations and the unified update);
    the paper's ON-LSTM cell; ``on_lstm_keras.py`` ``one_step``; ``ON_LSTM.py`` ``ONLSTMCell.forward``
    (which returns (h, c as (B, L, C), (1 − mean f̃, mean ĩ)); see :func:`distance`).
    """
    x_t = _checked(x_t, "x_t")
    if value_of(x_t).ndim != 2:
        raise ValueError(f"x_t must have shape (B, D), got shape {value_of(x_t).shape}")
    W, U, b, L, C = _prepare(params, value_of(x_t).shape[1], levels, chunk, master_input, layout,
                             dropconnect_masks, dropconnect, dropconnect_p, dropconnect_on)
    h, c = _check_states(h, c, value_of(x_t).shape[0], L * C)
    return _step(x_t, h, c, W, U, b, L, C, master_input)[:4]


def on_lstm(x, params, h0=None, c0=None, *, levels=None, chunk=None, master_input="su",
            layout="su", dropconnect_masks=None, dropconnect="inverted", dropconnect_p=0.0,
            dropconnect_on=None):
    r"""An ON-LSTM layer over time: :func:`on_lstm_cell` applied for t = 1..T.

    .. math:: (h_t, c_t, \tilde f_t, \tilde i_t) = \mathrm{cell}(x_t, h_{t-1}, c_{t-1}),
              \qquad d_t = 1 - \frac{1}{L}\sum_k \tilde f_{t,k}, \qquad
              d^{\,in}_t = \frac{1}{L}\sum_k \tilde i_{t,k}

    Parameters
    ----------
    x : array (B, T, D), T ≥ 1 (batch-first, D5; the official code is time-first).
    params : weights, see :func:`on_lstm_cell`.
    h0, c0 : arrays (B, N), the initial states (None: zeros, as in the Keras layer).
    levels, chunk, master_input, layout : as in :func:`on_lstm_cell`.
    dropconnect_masks, dropconnect, dropconnect_p, dropconnect_on : as in :func:`on_lstm_cell`;
        one DropConnect mask serves every step (both codes sample it once per batch, not per
        step).

    Returns
    -------
    :class:`ONLSTMOutput` (h (B, T, N), c (B, T, N), f_master (B, T, L), i_master (B, T, L),
    distance (B, T), distance_in (B, T)).

    Notes
    -----
    Source: https://kexue.fm/archives/6621; ``on_lstm_keras.py`` ``call`` (``K.rnn``, zero
    initial states, ``distance`` and ``distance_in``); ``ON_LSTM.py`` ``ONLSTMStack.forward``.
    The scan appends to a Python list and stacks (no in-place updates).

    Examples
    --------
    >>> p = random_params(onp.random.default_rng(0), 3, 4, levels=2)
    >>> out = on_lstm(onp.ones((1, 5, 3)), p, levels=2)
    >>> out.h.shape, out.f_master.shape, out.distance.shape
    ((1, 5, 4), (1, 5, 2), (1, 5))
    """
    x = _checked(x, "x")
    if value_of(x).ndim != 3 or value_of(x).shape[1] == 0:
        raise ValueError(f"x must have shape (B, T, D) with T >= 1, got shape {value_of(x).shape}")
    B, T, D = value_of(x).shape
    W, U, b, L, C = _prepare(params, D, levels, chunk, master_input, layout, dropconnect_masks,
                             dropconnect, dropconnect_p, dropconnect_on)
    h, c = _check_states(h0, c0, B, L * C, like=x)
    hs, cs, fms, ims, ds = [], [], [], [], []
    for t in range(T):
        h, c, f_master, i_master, dist = _step(x[:, t], h, c, W, U, b, L, C, master_input)
        hs.append(h)
        cs.append(c)
        fms.append(f_master)
        ims.append(i_master)
        ds.append(dist)
    f_master, i_master = np.stack(fms, axis=1), np.stack(ims, axis=1)  # (B, T, L)
    # the distance d_t = mean_k (1 − f̃_{t,k}) comes from the step (no cancellation near f̃ = 1)
    return ONLSTMOutput(np.stack(hs, axis=1), np.stack(cs, axis=1), f_master, i_master,
                        np.stack(ds, axis=1), _distance_in(i_master))


def on_lstm_stack(x, layer_params, h0=None, c0=None, *, levels=None, chunk=None,
                  master_input="su", layout="su", dropout_masks=None, dropout_p=0.0,
                  dropconnect_masks=None, dropconnect="inverted", dropconnect_p=0.0,
                  dropconnect_on=None):
    r"""A stack of ON-LSTM layers, with (inverted) dropout between consecutive layers.

    .. math:: h^{(0)} = x, \qquad h^{(l+1)} = \mathrm{ONLSTM}_l\big(m^{(l)} \odot h^{(l)} /
              (1 - p)\big), \qquad m^{(0)} = 1

    Parameters
    ----------
    x : array (B, T, D).
    layer_params : sequence of per-layer weights (each as in :func:`on_lstm_cell`).
    h0, c0 : None (zeros) or sequences of (B, N_l) arrays, one per layer.
    levels, chunk : an int for every layer, or a sequence with one per layer.
    master_input, layout : as in :func:`on_lstm_cell`, for every layer.
    dropout_masks : None (evaluation) or a sequence of n_layers − 1 boolean keep-masks, one per
        layer boundary, each (B, N_l) (shared over time, like the official ``LockedDropout``)
        or (B, T, N_l).
    dropout_p : float p in [0, 1); kept outputs are multiplied by 1/(1 − p) in training.
    dropconnect_masks : None or a sequence with one mask dict (or None) per layer.
    dropconnect, dropconnect_p, dropconnect_on : as in :func:`on_lstm_cell`, for every layer.

    Returns
    -------
    :class:`ONLSTMStackOutput` (h: the last layer's (B, T, N), layers: one
    :class:`ONLSTMOutput` per layer, before dropout).

    Notes
    -----
    Source: ``ON_LSTM.py`` ``ONLSTMStack`` (``LockedDropout`` between layers, inverted: both
    codes' dropout divides by 1 − p; only DropConnect scaling differs) and ``lm_model.py`` of
    ``bojone/on-lstm`` (three stacked layers). Dropout on the embeddings and the outputs is
    outside the stack in both codes and here.
    """
    if isinstance(layer_params, collections.abc.Mapping) or not isinstance(layer_params, (list, tuple)):
        raise TypeError("layer_params must be a list with one parameter set per layer")
    n = len(layer_params)
    if n == 0:
        raise ValueError("layer_params must hold at least one layer")
    levels_l = _per_layer(levels, n, "levels", scalar_ok=True)
    chunk_l = _per_layer(chunk, n, "chunk", scalar_ok=True)
    h0_l, c0_l = _per_layer(h0, n, "h0"), _per_layer(c0, n, "c0")
    dc_l = _per_layer(dropconnect_masks, n, "dropconnect_masks")
    if dropout_masks is not None and (not isinstance(dropout_masks, (list, tuple))
                                      or len(dropout_masks) != n - 1):
        raise ValueError(f"dropout_masks must be a list of n_layers − 1 = {n - 1} masks, one per "
                         "layer boundary")
    p = check_range(dropout_p, "dropout_p", 0.0, 1.0, low_open=False)
    layers, inp = [], x
    for l in range(n):
        out = on_lstm(inp, layer_params[l], h0_l[l], c0_l[l], levels=levels_l[l],
                      chunk=chunk_l[l], master_input=master_input, layout=layout,
                      dropconnect_masks=dc_l[l], dropconnect=dropconnect,
                      dropconnect_p=dropconnect_p, dropconnect_on=dropconnect_on)
        layers.append(out)
        inp = out.h
        if l < n - 1 and dropout_masks is not None:
            keep = _check_dropout_mask(dropout_masks[l], value_of(inp).shape, l)
            # h ← m ⊙ h / (1 − p), the mask shared over time when it is (B, N)
            inp = inp * keep.astype(value_of(inp).dtype) / (1.0 - p)
    return ONLSTMStackOutput(layers[-1].h, tuple(layers))


# ---------------------------------------------------------------------------
# Soft levels and distances
# ---------------------------------------------------------------------------

def soft_level(f_master, base=0):
    r"""Soft level of the master forget gate: the expected level under p_f = softmax(a_f).

    .. math:: d_f = \sum_{k} (k + \mathrm{base})\, p_f(k), \qquad p_f(k) = \tilde f_k -
              \tilde f_{k-1}, \qquad d_f = L\,(1 - \overline{\tilde f}) + \mathrm{base}

    Parameters
    ----------
    f_master : array (..., L), a master forget gate at level granularity (last entry 1).
    base : 0 (default) or 1 (the post's 1-based form, D6).

    Returns
    -------
    array (...), in [base, L − 1 + base].

    Notes
    -----
    Source: https://kexue.fm/archives/6621: d_f = Σ_{k=1}^{L} k p_f(k) = L(1 − mean f̃) + 1
    (1-based). The paper's eq. (15), D_m − Σ_k f̃_k, is the 0-based value (the post calls it
    off by one; the difference is the base only). :func:`distance` is d_f / L for base 0.

    Examples
    --------
    >>> f = cumax(onp.log(onp.array([0.25, 0.25, 0.5])))
    >>> round(float(soft_level(f)), 6), round(float(soft_level(f, base=1)), 6)
    (1.25, 2.25)
    """
    f_master = _checked(f_master, "f_master", min_ndim=1)
    L = value_of(f_master).shape[-1]
    check_choice(base, "base", (0, 1))
    _check_ends_at_one(f_master)
    # p_f(k) = f̃_k − f̃_{k−1}, with f̃_{−1} = 0
    p = f_master - np.concatenate([np.zeros_like(f_master[..., :1]), f_master[..., :-1]], axis=-1)
    k = (onp.arange(L) + base).astype(value_of(f_master).dtype)
    # d_f = Σ_k (k + base) p_f(k)
    return np.sum(k * p, axis=-1)


def distance(f_master):
    r"""The codes' syntactic distance: one minus the mean of the master forget gate.

    .. math:: d = 1 - \frac{1}{L}\sum_{k} \tilde f_k = \frac{d_f^{(0)}}{L}

    Parameters
    ----------
    f_master : array (..., L).

    Returns
    -------
    array (...), in [0, 1 − 1/L] for a cumax.

    Notes
    -----
    Source: ``on_lstm_keras.py`` (``self.distance``) and ``ON_LSTM.py`` (``distance_cforget``);
    the post explains why d_f, not d_i, decides where a constituent starts.
    """
    return _distance(_checked(f_master, "f_master", min_ndim=1))


def distance_in(i_master):
    r"""The codes' second statistic: the mean of the master input gate.

    .. math:: d^{\,in} = \frac{1}{L}\sum_k \tilde i_k

    Parameters
    ----------
    i_master : array (..., L).

    Returns
    -------
    array (...).

    Notes
    -----
    Source: ``on_lstm_keras.py`` (``self.distance_in``), ``ON_LSTM.py`` (``distance_cin``).
    """
    return _distance_in(_checked(i_master, "i_master", min_ndim=1))


# ---------------------------------------------------------------------------
# Tree induction and its evaluation
# ---------------------------------------------------------------------------

def build_tree(tokens, d):
    r"""Greedy top-down parse from a distance sequence (the post's and the codes' rule).

    .. math:: k = \arg\max_t d_t \;(\text{first on ties}); \quad
              \mathrm{tree}(x) = \begin{cases}
              x_k & |x| = 1 \\
              [\mathrm{tree}(x_{<k}),\ [x_k, \mathrm{tree}(x_{>k})]] & \text{both sides non-empty} \\
              [\mathrm{tree}(x_{<k}),\ x_k] & x_{>k} \text{ empty} \\
              [x_k,\ \mathrm{tree}(x_{>k})] & x_{<k} \text{ empty}
              \end{cases}

    Parameters
    ----------
    tokens : sequence of T ≥ 1 tokens (strings, or any objects).
    d : array (T,), finite distances (e.g. :func:`distance` of one layer, one sentence).

    Returns
    -------
    a token (T = 1) or a nested list of tokens (binary except at the root).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("split at the largest d_f: a large d_f means the
    step uses little history, so a new constituent starts there"); ``build_tree`` of
    ``lm_model.py`` (copied there from ``test_phrase_grammar.py`` of the official code). The
    codes parse with one layer (Su: layer 0, the start token dropped; official: layer 1 of 3).

    Examples
    --------
    >>> build_tree(["苹果", "的", "颜色", "是", "什么"], onp.array([0.5, 0.1, 0.6, 0.2, 0.9]))
    [[['苹果', '的'], ['颜色', '是']], '什么']
    """
    tokens = [t.item() if isinstance(t, onp.generic) else t for t in tokens]
    d = check_float_array(as_float(d, "d"), "d")
    if d.ndim != 1 or d.shape[0] != len(tokens) or not tokens:
        raise ValueError(f"d must have shape (T,) with T = len(tokens) >= 1; got {len(tokens)} "
                         f"tokens and d of shape {d.shape}")
    return _build(tokens, d, 0, len(tokens))


def tree_to_brackets(tree):
    r"""A nested-list tree as a bracket string: ``(left right)`` for every list.

    .. math:: \mathrm{br}(x) = x, \qquad \mathrm{br}([t_1, \dots, t_m]) =
              (\mathrm{br}(t_1)\ \dots\ \mathrm{br}(t_m))

    Parameters
    ----------
    tree : a token or a nested list of tokens (from :func:`build_tree`).

    Returns
    -------
    str.

    Notes
    -----
    Source: library format, close to ``MRG`` of ``test_phrase_grammar.py`` (which pads with
    spaces).

    Examples
    --------
    >>> tree_to_brackets(['爱', ['真的', ['需要', '勇气']]])
    '(爱 (真的 (需要 勇气)))'
    """
    if isinstance(tree, (list, tuple)):
        return "(" + " ".join(tree_to_brackets(t) for t in tree) + ")"
    return str(tree)


def tree_spans(tree, trivial=False):
    r"""The spans [i, j) (0-based, half-open) of a tree's constituents.

    .. math:: \mathrm{spans}(t) = \{[i, j) : \text{a list node of } t \text{ covers tokens }
              i..j-1,\ j - i \ge 2,\ [i, j) \ne [0, T)\}

    Parameters
    ----------
    tree : a token or a nested list of tokens.
    trivial : False (default, the paper's evaluation) drops the trivial spans: single tokens
        and the whole sentence; True keeps both.

    Returns
    -------
    sorted list of (i, j) tuples (no duplicates: a unary chain gives one span).

    Notes
    -----
    Source: ``get_brackets`` of ``test_phrase_grammar.py`` (spans of length ≥ 2, the root span
    not added). A binary tree over T ≥ 2 tokens has T − 2 non-trivial spans.

    Examples
    --------
    >>> tree_spans([[['苹果', '的'], ['颜色', '是']], '什么'])
    [(0, 2), (0, 4), (2, 4)]
    """
    spans = set()
    n = _collect_spans(tree, 0, spans)
    if not trivial:
        spans = {s for s in spans if s[1] - s[0] >= 2 and s != (0, n)}
    return sorted(spans)


def bracket_f1(tree, gold, trivial=False):
    r"""Unlabeled bracket precision, recall and F1 of one tree against a gold tree.

    .. math:: P = \frac{|S \cap G|}{|S|}, \quad R = \frac{|S \cap G|}{|G|}, \quad
              F_1 = \frac{2PR}{P + R}

    with S, G the span sets of :func:`tree_spans`.

    Parameters
    ----------
    tree, gold : trees over the same number of tokens.
    trivial : bool, see :func:`tree_spans` (default False: as the paper).

    Returns
    -------
    (precision, recall, f1) floats. Empty sets follow the official code: G = ∅ gives R = 1,
    and S = G = ∅ gives P = 1 (so two-token sentences score 1); F_1 = 0 when P + R = 0.

    Notes
    -----
    Source: ``test`` of ``test_phrase_grammar.py`` (sentence-level F1, averaged over sentences
    for the paper's WSJ numbers); computed exactly here, without the code's 1e-8 in the
    denominators.

    Examples
    --------
    >>> bracket_f1([['a', 'b'], ['c', 'd']], ['a', ['b', ['c', 'd']]])
    (0.5, 0.5, 0.5)
    """
    s, g = tree_spans(tree, trivial), tree_spans(gold, trivial)
    n_s, n_g = _n_leaves(tree), _n_leaves(gold)
    if n_s != n_g:
        raise ValueError(f"tree and gold must cover the same tokens; got {n_s} and {n_g} leaves")
    overlap = len(set(s) & set(g))
    precision = overlap / len(s) if s else (1.0 if not g else 0.0)
    recall = overlap / len(g) if g else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


# ---------------------------------------------------------------------------
# Private helpers (no validation unless named _check_*)
# ---------------------------------------------------------------------------

def _checked(x, name, min_ndim=0):
    x = as_float(x, name)
    check_float_array(x, name, min_ndim=min_ndim)
    return x


def _expand(g, C):
    # each level repeated C times in a row: (..., L) → (..., L·C). The axis is passed as a
    # non-negative number: autograd 1.9.1's VJP of np.repeat is wrong for axis=-1.
    return g if C == 1 else np.repeat(g, C, axis=np.ndim(g) - 1)


def _cumulative(p, complement=False):
    r"""cs→(p)_k = Σ_{j ≤ k} p_j along the last axis of a probability vector p (Σ_j p_j = 1).

    Each entry comes from the side whose plain partial sum is below 1/2: the prefix sum as it
    is, or 1 − Σ_{j > k} p_j. A long cumsum that climbs to 1 gathers a rounding error of
    several ulp(1) (4 ulp at 115 levels in a table case); 1 − (a sum below 1/2) stays within
    about one. The last entry is exactly 1. Both branches have the same derivative on the
    simplex; their gradients in p differ by a constant vector, which the softmax's VJP removes.
    With ``complement=True`` it also returns 1 − cs→(p), from the same two sums (the suffix
    where it is the smaller side), without the cancellation of 1 − cs→(p) near 1.
    """
    zero = np.zeros_like(p[..., :1])
    # prefix_k = Σ_{j ≤ k} p_j and suffix_k = Σ_{j > k} p_j, each a plain partial sum
    prefix = np.cumsum(p, axis=-1)
    suffix = np.concatenate([np.cumsum(p[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], axis=-1)
    # the prefix where it is below 1/2, else 1 − the suffix
    low = prefix < 0.5
    cs = np.where(low, prefix, 1.0 - suffix)
    return (cs, np.where(low, 1.0 - prefix, suffix)) if complement else cs


def _master_gates(a_f, a_i, master_input, with_distance=False):
    # f̃ = cs→(softmax(a_f)), and 1 − f̃ without cancellation
    f_master, f_rest = _cumulative(nx._softmax(a_f, a_f.ndim - 1), complement=True)
    # ĩ_k = Σ_{j ≥ k} p_j: the cumulative sums of the reversed levels, reversed back (ĩ_0 = 1)
    suffix = _cumulative(nx._softmax(a_i, a_i.ndim - 1)[..., ::-1])[..., ::-1]
    if master_input == "paper":
        # paper: ĩ_k = Σ_{j > k} p_j = su ĩ_{k+1}, and ĩ_{L−1} = 0 exactly
        suffix = np.concatenate([suffix[..., 1:], np.zeros_like(suffix[..., :1])], axis=-1)
    if not with_distance:
        return f_master, suffix
    # d = 1 − mean_k f̃_k = mean_k (1 − f̃_k): no cancellation when f̃ is close to 1
    return f_master, suffix, np.mean(f_rest, axis=-1)


def _update(c_prev, c_hat, f, i, f_master, i_master):
    # ω = f̃ ⊙ ĩ
    omega = f_master * i_master
    # c_t = ω ⊙ (f ⊙ c_{t−1} + i ⊙ ĉ) + (f̃ − ω) ⊙ c_{t−1} + (ĩ − ω) ⊙ ĉ
    return omega * (f * c_prev + i * c_hat) + (f_master - omega) * c_prev + (i_master - omega) * c_hat


def _step(x_t, h, c, W, U, b, L, C, master_input):
    N = L * C
    # z = x_t W + h_{t−1} U + b, columns [a_f̃ | a_ĩ | z_f | z_i | z_o | z_c]
    z = np.dot(x_t, W) + np.dot(h, U) + b                          # (B, 2L + 4N)
    a_f, a_i = z[:, :L], z[:, L:2 * L]                             # (B, L) each
    zf, zi, zo, zc = (z[:, 2 * L + g * N:2 * L + (g + 1) * N] for g in range(4))  # (B, N) each
    # f = σ(z_f), i = σ(z_i), o = σ(z_o), ĉ = tanh(z_c)
    f, i, o, c_hat = _sigmoid(zf), _sigmoid(zi), _sigmoid(zo), nx._tanh(zc)
    # (B, L), (B, L) and the distance d = 1 − mean f̃, (B,)
    f_master, i_master, dist = _master_gates(a_f, a_i, master_input, with_distance=True)
    c_new = _update(c, c_hat, f, i, _expand(f_master, C), _expand(i_master, C))
    # h_t = o_t ⊙ tanh(c_t)
    return o * nx._tanh(c_new), c_new, f_master, i_master, dist




def _distance(f_master):
    # d = 1 − mean_k f̃_k
    return 1.0 - np.mean(f_master, axis=-1)


def _distance_in(i_master):
    # d_in = mean_k ĩ_k
    return np.mean(i_master, axis=-1)


def _su_arrays(params):
    if not isinstance(params, collections.abc.Mapping):
        raise TypeError(f"params must be a dict {{'W', 'U', 'b'}} (layout 'su'), got "
                        f"{type(params).__name__}; use layout='keras' or 'official' for those")
    missing = [k for k in ("W", "U", "b") if k not in params]
    if missing:
        raise ValueError(f"params in layout 'su' need keys 'W', 'U', 'b'; missing {missing} "
                         f"(got {sorted(params)}); an official state dict needs layout='official'")
    return tuple(_checked(params[k], k) for k in ("W", "U", "b"))


def _levels_from_su(W, U, b):
    """L from the canonical shapes (2L = width − 4N), with the shapes checked."""
    sU = value_of(U).shape
    if len(sU) != 2:
        raise ValueError(f"U must have shape (N, 2L + 4N), got shape {sU}")
    N, width = sU
    L, rem = divmod(width - 4 * N, 2)
    if rem or L < 1:
        raise ValueError(f"U of shape {sU} is not (N, 2L + 4N) for any L >= 1")
    _check_shapes(W, U, b, value_of(W).shape[0] if value_of(W).ndim == 2 else -1, N, L)
    return L


def _check_shapes(W, U, b, D, N, L):
    width = 2 * L + 4 * N
    for name, arr, want in (("W", W, (D, width)), ("U", U, (N, width)), ("b", b, (width,))):
        if value_of(arr).shape != want:
            raise ValueError(f"{name} must have shape {want} = {_legend(name)} for D={D}, N={N}, "
                             f"L={L}, got shape {value_of(arr).shape}")


def _legend(name):
    return {"W": "(D, 2L + 4N)", "U": "(N, 2L + 4N)", "b": "(2L + 4N,)"}[name]


def _chunk_of(N, levels=None, chunk=None):
    """C (and L) from exactly one of levels / chunk, checking that it divides N."""
    if (levels is None) == (chunk is None):
        raise ValueError("give exactly one of levels= (L, as in the Keras code) or chunk= "
                         "(C, the official chunk_size)")
    if levels is not None:
        L = check_int(levels, "levels", min_value=1)
        if N % L:
            raise ValueError(f"levels={L} does not divide the hidden size N={N} (N = L·C)")
        return N // L
    C = check_int(chunk, "chunk", min_value=1)
    if N % C:
        raise ValueError(f"chunk={C} does not divide the hidden size N={N} (N = L·C)")
    return C


def _check_chunk(chunk, N):
    C = check_int(chunk, "chunk", min_value=1)
    if N % C:
        raise ValueError(f"chunk={C} does not divide the hidden size N={N} (N = L·C)")
    return C


def _prepare(params, D, levels, chunk, master_input, layout, masks, convention, p, on):
    """Canonical weights with DropConnect applied, and (L, C), all checked."""
    check_choice(master_input, "master_input", MASTER_INPUTS)
    check_choice(layout, "layout", LAYOUTS)
    if layout == "official":
        params = from_official(params)
    elif layout == "keras":
        params = from_keras(params)
    W, U, b = _su_arrays(params)
    if value_of(U).ndim != 2:
        raise ValueError(f"U must have shape (N, 2L + 4N), got shape {value_of(U).shape}")
    N = value_of(U).shape[0]
    C = _chunk_of(N, levels, chunk)
    L = N // C
    _check_shapes(W, U, b, D, N, L)
    W, U = _dropconnect(W, U, masks, convention, p, on)
    return W, U, b, L, C


def _dropconnect(W, U, masks, convention, p, on):
    check_choice(convention, "dropconnect", DROPCONNECT)
    p = check_range(p, "dropconnect_p", 0.0, 1.0, low_open=False)
    if on is None:
        on = ("W", "U") if convention == "inverted" else ("U",)
    on = tuple(on)
    if not set(on) <= {"W", "U"}:
        raise ValueError(f"dropconnect_on must name weights among 'W' and 'U', got {on}")
    weights = {"W": W, "U": U}
    if masks is None:
        if convention == "official" and p > 0:
            # evaluation in the official code: W ← (1 − p) W, no mask
            weights = {k: (w * (1.0 - p) if k in on else w) for k, w in weights.items()}
        return weights["W"], weights["U"]
    if not isinstance(masks, collections.abc.Mapping) or set(masks) != set(on):
        raise ValueError(f"dropconnect_masks must be a dict with one keep-mask for each of "
                         f"{on} (dropconnect_on), got {type(masks).__name__} "
                         f"{sorted(masks) if isinstance(masks, collections.abc.Mapping) else ''}")
    for k in on:
        keep = onp.asarray(masks[k])
        if keep.dtype != onp.bool_:
            raise TypeError(f"dropconnect_masks['{k}'] must be a boolean keep-mask (True = keep), "
                            f"got dtype {keep.dtype}")
        if keep.shape != value_of(weights[k]).shape:
            raise ValueError(f"dropconnect_masks['{k}'] must have the shape of {k} "
                             f"{value_of(weights[k]).shape}, got {keep.shape}")
        w = weights[k] * keep.astype(value_of(weights[k]).dtype)
        # inverted: kept weights × 1/(1 − p) in training; official: no rescaling in training
        weights[k] = w / (1.0 - p) if convention == "inverted" else w
    return weights["W"], weights["U"]


def _check_states(h, c, B, N, like=None):
    out = []
    for name, s in (("h0" if like is not None else "h", h), ("c0" if like is not None else "c", c)):
        if s is None and like is not None:
            s = np.zeros((B, N), dtype=value_of(like).dtype)
        elif s is None:
            raise ValueError(f"{name} must be an array (B, N) = ({B}, {N})")
        s = _checked(s, name)
        if value_of(s).shape != (B, N):
            raise ValueError(f"{name} must have shape (B, N) = ({B}, {N}), got shape {value_of(s).shape}")
        out.append(s)
    return out


def _check_levels(d_f, d_i, L, base):
    check_choice(base, "base", (0, 1))
    out = []
    for name, d in (("d_f", d_f), ("d_i", d_i)):
        arr = onp.asarray(d)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer levels, got dtype {arr.dtype}")
        if arr.size and (arr.min() < base or arr.max() > L - 1 + base):
            raise ValueError(f"{name} must hold levels in [{base}, {L - 1 + base}] (L={L}, "
                             f"base={base}), got values in [{arr.min()}, {arr.max()}]")
        out.append(arr.astype(onp.int64) - base)
    if out[0].shape != out[1].shape:
        raise ValueError(f"d_f and d_i must have the same shape, got {out[0].shape} and {out[1].shape}")
    return out


def _same_shape_2d(*named):
    """Check 2-d float arrays of one shape (that of the first); return them as floats."""
    out = []
    for name, x in named:
        x = _checked(x, name)
        shape = value_of(x).shape
        if len(shape) != 2:
            raise ValueError(f"{name} must have shape (B, N), got shape {shape}")
        if out and shape != value_of(out[0]).shape:
            raise ValueError(f"{name} must have the shape of {named[0][0]} "
                             f"{value_of(out[0]).shape}, got {shape}")
        out.append(x)
    return out


def _check_ends_at_one(f_master):
    last = value_of(f_master)[..., -1]
    if last.size and onp.max(onp.abs(last - 1.0)) > 1e-3:
        raise ValueError("f_master must end at 1 along its last axis (a master forget gate over "
                         f"levels, as cumax gives); got last entries up to {onp.max(onp.abs(last - 1)):.3g} away")


def _per_layer(value, n, name, scalar_ok=False):
    """One entry per layer: a list of n, or None / a scalar (where allowed) for every layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one entry per layer ({n}), got {len(value)}")
        return list(value)
    if value is None or scalar_ok:
        return [value] * n
    raise TypeError(f"{name} must be None or a list with one entry per layer ({n})")


def _check_dropout_mask(keep, shape, l):
    B, T, N = shape
    keep = onp.asarray(keep)
    if keep.dtype != onp.bool_:
        raise TypeError(f"dropout_masks[{l}] must be a boolean keep-mask, got dtype {keep.dtype}")
    if keep.shape == (B, N):
        return keep[:, None, :]                                    # (B, 1, N), shared over time
    if keep.shape != (B, T, N):
        raise ValueError(f"dropout_masks[{l}] must have shape (B, N) = ({B}, {N}) or (B, T, N) = "
                         f"({B}, {T}, {N}), got {keep.shape}")
    return keep


def _build(tokens, d, lo, hi):
    """The greedy tree of tokens[lo:hi]."""
    if hi - lo == 1:
        return tokens[lo]
    # k = argmax_t d_t over [lo, hi), the first index on ties
    k = lo + int(onp.argmax(d[lo:hi]))
    if k == lo:
        return [tokens[k], _build(tokens, d, k + 1, hi)]
    if k == hi - 1:
        return [_build(tokens, d, lo, k), tokens[k]]
    return [_build(tokens, d, lo, k), [tokens[k], _build(tokens, d, k + 1, hi)]]


def _collect_spans(tree, start, spans):
    """Add the span of every node of ``tree`` starting at token ``start``; return its end."""
    if isinstance(tree, (list, tuple)):
        end = start
        for child in tree:
            end = _collect_spans(child, end, spans)
        spans.add((start, end))
    else:
        end = start + 1
        spans.add((start, end))
    return end


def _n_leaves(tree):
    if isinstance(tree, (list, tuple)):
        return sum(_n_leaves(t) for t in tree)
    return 1
