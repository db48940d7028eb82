r"""The subject encoder's recurrent cells: GRU (the author's code) and LSTM (the post), bidirectional.

Post: https://kexue.fm/archives/6671 (the six sampled subject vectors go through a BiLSTM);
author code ``bojone/kg-2019`` ``Bidirectional(CuDNNGRU(t_dim))``. Both cells are written here
in the CuDNN form (the one the code runs on a GPU), with Keras weight layouts:

* GRU: kernel W (D_in, 3N) and recurrent kernel U (N, 3N) with columns ``[z | r | h]``, bias
  (2, 3N) = [input bias; recurrent bias] (Keras ``GRU(reset_after=True)`` = ``CuDNNGRU``;
  PyTorch's ``nn.GRU`` uses the same equations with gate order [r, z, n]).
* LSTM: W (D_in, 4N), U (N, 4N), columns ``[i | f | c | o]``, bias (4N,), sigmoid gates
  (``CuDNNLSTM``; Keras 2's plain ``LSTM`` defaults to a hard sigmoid instead).

Shapes: x (B, S, D_in) with S the number of sampled subject positions (6); N hidden units.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._numerics import _sigmoid, _tanh
from kexue_ref._validate import as_float, check_choice, check_float_array, check_ndim, value_of

__all__ = ["gru", "lstm", "birnn"]

CELLS = ("gru", "lstm")


def gru(x, w, u, b):
    r"""A GRU run over a sequence (CuDNN / Keras ``reset_after=True`` form), all hidden states.

    .. math:: z_s = \sigma(x_s W_z + b^x_z + h_{s-1} U_z + b^h_z), \quad
              r_s = \sigma(x_s W_r + b^x_r + h_{s-1} U_r + b^h_r)

    .. math:: \tilde h_s = \tanh\big(x_s W_h + b^x_h + r_s \odot (h_{s-1} U_h + b^h_h)\big), \quad
              h_s = z_s \odot h_{s-1} + (1 - z_s) \odot \tilde h_s, \quad h_0 = 0

    Parameters
    ----------
    x : array (B, S, D_in).
    w : array (D_in, 3N), columns [z | r | h].
    u : array (N, 3N), columns [z | r | h].
    b : array (2, 3N): row 0 the input bias b^x, row 1 the recurrent bias b^h.

    Returns
    -------
    array (B, S, N), the hidden states h_1..h_S.

    Notes
    -----
    Source: ``bojone/kg-2019`` (``CuDNNGRU``); Cho et al. 2014 (arXiv 1406.1078) for the GRU,
    with the reset gate applied after the recurrent product as cuDNN does.
    """
    x, N = _check_rnn(x, w, u, b, 3, (2, None), "(2, 3N)")
    return _gru(x, w, u, b)


def lstm(x, w, u, b):
    r"""An LSTM run over a sequence (sigmoid gates, as ``CuDNNLSTM``), all hidden states.

    .. math:: [i, f, \hat c, o]_s = x_s W + h_{s-1} U + b, \qquad
              c_s = \sigma(f) \odot c_{s-1} + \sigma(i) \odot \tanh(\hat c), \qquad
              h_s = \sigma(o) \odot \tanh(c_s), \quad h_0 = c_0 = 0

    Parameters
    ----------
    x : array (B, S, D_in).
    w : array (D_in, 4N), columns [i | f | c | o].
    u : array (N, 4N).
    b : array (4N,).

    Returns
    -------
    array (B, S, N), the hidden states h_1..h_S.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (the post's BiLSTM); Hochreiter & Schmidhuber 1997 with
    the forget gate of Gers et al. 2000; Keras gate order.
    """
    x, N = _check_rnn(x, w, u, b, 4, (None,), "(4N,)")
    return _lstm(x, w, u, b)


def birnn(x, w_f, u_f, b_f, w_b, u_b, b_b, cell="gru"):
    r"""Bidirectional RNN returning the two final states, concatenated (Keras ``Bidirectional``).

    .. math:: \overrightarrow{h} = \mathrm{RNN}_f(x_1, \dots, x_S)_S, \qquad
              \overleftarrow{h} = \mathrm{RNN}_b(x_S, \dots, x_1)_S, \qquad
              \text{out} = [\overrightarrow{h} \,|\, \overleftarrow{h}]

    Parameters
    ----------
    x : array (B, S, D_in).
    w_f, u_f, b_f : forward cell weights (see :func:`gru` / :func:`lstm` for the layouts).
    w_b, u_b, b_b : backward cell weights.
    cell : "gru" (the code) or "lstm" (the post).

    Returns
    -------
    array (B, 2N).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``Bidirectional(CuDNNGRU(t_dim))`` (merge mode concat, last
    output of each direction); https://kexue.fm/archives/6671 (BiLSTM).
    """
    check_choice(cell, "cell", CELLS)
    gates, bshape, legend = (3, (2, None), "(2, 3N)") if cell == "gru" else (4, (None,), "(4N,)")
    x, _ = _check_rnn(x, w_f, u_f, b_f, gates, bshape, legend, suffix="_f")
    _check_rnn(x, w_b, u_b, b_b, gates, bshape, legend, suffix="_b")
    return _birnn(x, (w_f, u_f, b_f), (w_b, u_b, b_b), cell)


# ---------------------------------------------------------------------------
# Private kernels
# ---------------------------------------------------------------------------

def _gru(x, w, u, b):
    B, S, _ = value_of(x).shape
    N = value_of(u).shape[0]
    h = onp.zeros((B, N), value_of(x).dtype)
    # input projections for every step at once: x_s W + b^x, (B, S, 3N)
    xw = np.matmul(x, w) + b[0]
    out = []
    for s in range(S):
        hu = np.matmul(h, u) + b[1]                                             # (B, 3N)
        # z = σ(x W_z + h U_z + b_z), r = σ(x W_r + h U_r + b_r)
        a_z = xw[:, s, :N] + hu[:, :N]
        z = _sigmoid(a_z)
        r = _sigmoid(xw[:, s, N:2 * N] + hu[:, N:2 * N])
        # h̃ = tanh(x W_h + b^x_h + r ⊙ (h U_h + b^h_h))
        h_tilde = _tanh(xw[:, s, 2 * N:] + r * hu[:, 2 * N:])
        # h = z ⊙ h + (1 − z) ⊙ h̃, with 1 − z = σ(−a_z) at full relative precision
        h = z * h + _sigmoid(-a_z) * h_tilde
        out.append(h)
    return np.stack(out, axis=1)                                             # (B, S, N)


def _lstm(x, w, u, b):
    B, S, _ = value_of(x).shape
    N = value_of(u).shape[0]
    h = onp.zeros((B, N), value_of(x).dtype)
    c = h
    xw = np.matmul(x, w) + b                                                    # (B, S, 4N)
    out = []
    for s in range(S):
        a = xw[:, s] + np.matmul(h, u)                                          # (B, 4N)
        i, f, c_hat, o = a[:, :N], a[:, N:2 * N], a[:, 2 * N:3 * N], a[:, 3 * N:]
        # c = σ(f) ⊙ c + σ(i) ⊙ tanh(ĉ)
        c = _sigmoid(f) * c + _sigmoid(i) * _tanh(c_hat)
        # h = σ(o) ⊙ tanh(c)
        h = _sigmoid(o) * _tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def _birnn(x, fwd, bwd, cell):
    run = _gru if cell == "gru" else _lstm
    # → h: the last state of the forward pass over x_1..x_S
    h_f = run(x, *fwd)[:, -1]                                                # (B, N)
    # ← h: the last state of the backward cell over x_S..x_1
    h_b = run(x[:, ::-1], *bwd)[:, -1]                                       # (B, N)
    return np.concatenate([h_f, h_b], axis=-1)                               # (B, 2N)


def _check_rnn(x, w, u, b, gates, bshape, legend, suffix=""):
    x = as_float(x, "x")
    check_float_array(x, "x")
    Din = check_ndim(x, "x", 3, "(B, S, D_in)")[2]
    u_arr = value_of(u)
    if u_arr.ndim != 2 or u_arr.shape[1] != gates * u_arr.shape[0]:
        raise ValueError(f"u{suffix} must have shape (N, {gates}N), got {u_arr.shape}")
    N = u_arr.shape[0]
    for name, a, shape in ((f"w{suffix}", w, (Din, gates * N)), (f"u{suffix}", u, (N, gates * N)),
                           (f"b{suffix}", b, tuple(gates * N if d is None else d for d in bshape))):
        check_float_array(as_float(a, name), name)
        if value_of(a).shape != shape:
            want = legend if name.startswith("b") else f"({'D_in' if name.startswith('w') else 'N'}, {gates}N)"
            raise ValueError(f"{name} must have shape {want} = {shape}, got {value_of(a).shape}")
    return x, N
