r"""Weight layouts: the canonical ("su" = Keras) parameters, the official PyTorch state dict.

Post: https://kexue.fm/archives/6621 writes one W, U, b per gate; its code ``bojone/on-lstm``
``on_lstm_keras.py`` stores them fused as ``kernel (D, 2L + 4N)``, ``recurrent_kernel
(N, 2L + 4N)`` and one ``bias``, columns ``[f̃ (L) | ĩ (L) | f (N) | i (N) | o (N) | ĉ (N)]``: the
canonical layout here. The official code ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py`` stores
``ih.0.weight (2L + 4N, D)``, ``hh.weight (2L + 4N, N)`` and two biases, rows
``[ĩ (L) | f̃ (L) | o | ĉ | i | f]``. This module samples canonical parameters and converts
between the three layouts (``docs/on_lstm.md``, "Parameters and the two public layouts").
"""
import collections.abc

import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_axis, check_choice, check_int, check_range, value_of
from kexue_ref.on_lstm._checks import _checked, _chunk_of

LAYOUTS = ("su", "keras", "official")
#: Gate blocks of the pre-activation axis, in order, for each layout ("fm" = master forget f̃,
#: "im" = master input ĩ, each L wide; the others N wide).
GATE_ORDER = {"su": ("fm", "im", "f", "i", "o", "c"), "official": ("im", "fm", "o", "c", "i", "f")}
OFFICIAL_KEYS = ("ih.0.weight", "ih.0.bias", "hh.weight", "hh.bias")


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
# Private helpers: the canonical arrays and their shapes
# ---------------------------------------------------------------------------


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
