r"""The ON-LSTM cell, the layer over time, the stack, and DropConnect / dropout.

Post: https://kexue.fm/archives/6621, the full ON-LSTM equations: the LSTM gates f, i, o and
the candidate ĉ, the master gates f̃, ĩ (:mod:`kexue_ref.on_lstm.gates`) and the unified
update (:mod:`kexue_ref.on_lstm.update`), then h_t = o_t ⊙ tanh(c_t). Codes: ``bojone/on-lstm``
``on_lstm_keras.py`` (``one_step``, ``call``) and ``lm_model.py`` (three stacked layers);
``yikangshen/Ordered-Neurons`` ``ON_LSTM.py`` (``ONLSTMCell``, ``ONLSTMStack``,
``LinearDropConnect``, ``LockedDropout``).

Shapes (D5, ``docs/conventions.md``): x (B, T, D), h and c (B, N), master gates (B, L), N = L·C.
Randomness is an argument (D2): DropConnect and dropout take boolean keep-masks from the
caller; the two codes' DropConnect scalings are the options ``"inverted"`` and ``"official"``
(``docs/on_lstm.md``, "DropConnect and dropout"). The scans append to lists and ``np.stack``
them, so every function is traceable by autograd.
"""
import collections
import collections.abc

import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import expit as _sigmoid

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_choice, check_range, value_of
from kexue_ref.on_lstm._checks import _check_states, _checked, _chunk_of
from kexue_ref.on_lstm.distance import _distance_in
from kexue_ref.on_lstm.gates import MASTER_INPUTS, _expand, _master_gates
from kexue_ref.on_lstm.layouts import LAYOUTS, _check_shapes, _su_arrays, from_keras, from_official
from kexue_ref.on_lstm.update import _update

DROPCONNECT = ("inverted", "official")

# module= keeps the names the classes had when the post was one module (repr, pickling)
ONLSTMOutput = collections.namedtuple(
    "ONLSTMOutput", ["h", "c", "f_master", "i_master", "distance", "distance_in"], module="kexue_ref.on_lstm")
ONLSTMOutput.__doc__ = """Outputs of :func:`on_lstm` (a tuple, so it also unpacks).

h, c : (B, T, N) hidden and cell states at every step; f_master, i_master : (B, T, L) master
gates; distance : (B, T) 1 − mean f̃; distance_in : (B, T) mean ĩ."""

ONLSTMStackOutput = collections.namedtuple("ONLSTMStackOutput", ["h", "layers"], module="kexue_ref.on_lstm")
ONLSTMStackOutput.__doc__ = """Outputs of :func:`on_lstm_stack`: ``h`` (B, T, N_last) the last
layer's hidden states and ``layers``, one :class:`ONLSTMOutput` per layer (before dropout)."""


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
    >>> from kexue_ref.on_lstm import random_params
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
# Private helpers: one step, the weights with DropConnect, per-layer arguments
# ---------------------------------------------------------------------------


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
