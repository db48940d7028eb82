r"""Subject encoding: the span's sampled rows through a BiRNN, plus relative-position embeddings.

Post: https://kexue.fm/archives/6671 ("model": the subject vector is read from the encoder along
the subject span and added to every position with its relative distances to the span, before the
object heads); sizes and sampling from ``bojone/kg-2019`` ``kg_without_ds.py`` (``get_k_inter``,
``position_id``). Walk-through: ``docs/dgcnn.md`` §7.

Notation: H (B, T, D) the encoder output, (k1, k2) a subject span (start, inclusive end), N the
RNN width (= the width of the position table E).
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, check_ndim, value_of
from kexue_ref.dgcnn.rnn import _birnn, _check_rnn

__all__ = ["span_positions", "relative_distances", "subject_features"]


def span_positions(k1, k2, n=6):
    r"""The n positions sampled along a subject span, from the end to the start.

    .. math:: \mathrm{pos}_i = \mathrm{round}\big(k_1 a_i + k_2 (1 - a_i)\big), \qquad
              a_i = \frac{i}{n - 1}, \quad i = 0..n-1

    Parameters
    ----------
    k1 : int or int array (B,), the span start.
    k2 : int or int array (B,), the inclusive span end, k2 ≥ k1.
    n : int ≥ 2, the number of positions (the code uses 6).

    Returns
    -------
    int array (n,) or (B, n); the first entry is k2 and the last k1.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``get_k_inter`` (``K.round``: round half to even). The rounding is
    done on the exact rational value (i·k1 + (n − 1 − i)·k2)/(n − 1); for n = 6 it is a multiple
    of 1/5, never a half, so half-to-even and half-up agree.

    Examples
    --------
    >>> span_positions(3, 4).tolist(), span_positions(2, 9).tolist()
    ([4, 4, 4, 3, 3, 3], [9, 8, 6, 5, 3, 2])
    """
    n = check_int(n, "n", min_value=2)
    k1a, k2a = _int_array(k1, "k1"), _int_array(k2, "k2")
    if k1a.shape != k2a.shape or k1a.ndim > 1:
        raise ValueError(f"k1 and k2 must be two ints or two (B,) arrays of one shape, got {k1a.shape} "
                         f"and {k2a.shape}")
    if (k1a < 0).any() or (k2a < k1a).any():
        raise ValueError("spans must satisfy 0 <= k1 <= k2 (k2 is the inclusive end)")
    i = onp.arange(n)
    # numerator i·k1 + (n − 1 − i)·k2 over the denominator n − 1, exactly in integers
    num = i * k1a[..., None] + (n - 1 - i) * k2a[..., None]
    q, rem = onp.divmod(num, n - 1)
    # round half to even: up when the remainder exceeds a half, or equals it with q odd
    up = (2 * rem > n - 1) | ((2 * rem == n - 1) & (q % 2 == 1))
    return (q + up).astype(onp.int64)


def relative_distances(T, k1, k2):
    r"""Distances of every position to the subject start and end (indices of the position table).

    .. math:: d^{(1)}_t = |t - k_1|, \qquad d^{(2)}_t = |t - k_2|

    Parameters
    ----------
    T : int, the sequence length.
    k1, k2 : int arrays (B,), the span (0 ≤ k1 ≤ k2 < T).

    Returns
    -------
    int array (B, T, 2): [..., 0] = |t − k1|, [..., 1] = |t − k2|.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``position_id([t, k1])`` (relative positions looked up in the
    shared position-embedding table).
    """
    T = check_int(T, "T", min_value=1)
    k1a, k2a = _check_span(k1, k2, T)
    t = onp.arange(T)
    return onp.stack([onp.abs(t - k1a[:, None]), onp.abs(t - k2a[:, None])], axis=-1)


def subject_features(h, k1, k2, w_f, u_f, b_f, w_b, u_b, b_b, pos_table, cell="gru"):
    r"""Subject encoding: a bidirectional RNN over 6 sampled rows plus relative-position embeddings.

    .. math:: v = \mathrm{BiRNN}\big(H_{\mathrm{pos}_0}, \dots, H_{\mathrm{pos}_5}\big), \qquad
              S_t = v + [\,E_{|t - k_1|} \,|\, E_{|t - k_2|}\,]

    with pos_i = :func:`span_positions` (k1, k2) (end → start) and E the shared position table.

    Parameters
    ----------
    h : array (B, T, D).
    k1, k2 : int arrays (B,), the subject span (start, inclusive end), 0 ≤ k1 ≤ k2 < T.
    w_f, u_f, b_f, w_b, u_b, b_b : the forward / backward cell weights with N = E's width
        (layouts in :mod:`kexue_ref.dgcnn.rnn`).
    pos_table : array (maxlen, N), the position embedding (shared with the input embedding).
    cell : "gru" (default, the author's code) or "lstm" (the post's text).

    Returns
    -------
    array (B, T, 2N): the subject vector broadcast over positions plus the relative embeddings.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (subject vector from a BiLSTM over the span, plus
    relative positions); ``bojone/kg-2019`` (``get_k_inter``, ``Bidirectional(CuDNNGRU(t_dim))``,
    ``position_embedding(position_id([t, k1]))``). The code needs N = D (GRU width = char_size).
    """
    h = as_float(h, "h")
    check_float_array(h, "h")
    B, T, D = check_ndim(h, "h", 3, "(B, T, D)")
    k1a, k2a = _check_span(k1, k2, T, B)
    check_choice(cell, "cell", ("gru", "lstm"))
    gates, bshape, legend = (3, (2, None), "(2, 3N)") if cell == "gru" else (4, (None,), "(4N,)")
    seq = onp.zeros((1, 1, D))
    _check_rnn(seq, w_f, u_f, b_f, gates, bshape, legend, "_f")
    _check_rnn(seq, w_b, u_b, b_b, gates, bshape, legend, "_b")
    pos_table = as_float(pos_table, "pos_table")
    check_float_array(pos_table, "pos_table")
    N = value_of(u_f).shape[0]
    if value_of(pos_table).ndim != 2 or value_of(pos_table).shape[1] != N:
        raise ValueError(f"pos_table must have shape (maxlen, N) with N = {N} (the RNN width), "
                         f"got {value_of(pos_table).shape}")
    if value_of(pos_table).shape[0] < T:
        raise ValueError(f"pos_table has {value_of(pos_table).shape[0]} rows, fewer than T = {T}")
    return _subject_features(h, k1a, k2a, (w_f, u_f, b_f), (w_b, u_b, b_b), pos_table, cell)


# ---------------------------------------------------------------------------
# Private kernel
# ---------------------------------------------------------------------------

def _subject_features(h, k1, k2, fwd, bwd, pos_table, cell):
    B, T, _ = value_of(h).shape
    pos = span_positions(k1, k2)                                              # (B, 6), end → start
    # the 6 rows H_{pos_i} of each sample
    rows = h[onp.arange(B)[:, None], pos]                                     # (B, 6, D)
    # v = BiRNN(rows): [→h | ←h]
    v = _birnn(rows, fwd, bwd, cell)                                          # (B, 2N)
    d = relative_distances(T, k1, k2)                                         # (B, T, 2)
    # [E_{|t−k1|} | E_{|t−k2|}]
    rel = np.concatenate([pos_table[d[..., 0]], pos_table[d[..., 1]]], axis=-1)   # (B, T, 2N)
    # S_t = v + [E_{|t−k1|} | E_{|t−k2|}]
    return v[:, None, :] + rel


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def _int_array(k, name):
    arr = onp.asarray(k)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer position (or an int array), got dtype {arr.dtype}")
    return arr.astype(onp.int64)


def _check_span(k1, k2, T, B=None):
    k1a, k2a = _int_array(k1, "k1"), _int_array(k2, "k2")
    want = (B,) if B is not None else k1a.shape
    if k1a.ndim != 1 or k1a.shape != want or k2a.shape != want:
        raise ValueError(f"k1 and k2 must have shape (B,) = {want}, got {k1a.shape} and {k2a.shape}")
    if (k1a < 0).any() or (k2a < k1a).any() or (k2a >= T).any():
        raise ValueError(f"spans must satisfy 0 <= k1 <= k2 < T = {T} (k2 is the inclusive end), "
                         f"got k1 = {k1a.tolist()}, k2 = {k2a.tolist()}")
    return k1a, k2a
