r"""The probabilistic-graph heads: subject start/end, subject encoding, object start/end per predicate.

Post: https://kexue.fm/archives/6671 ("model", the half-pointer-half-tagging heads and the
P(s)·P(o, p | s) factorisation); sizes and gating from ``bojone/kg-2019`` ``kg_without_ds.py``.

Notation: H (B, T, D) the encoder output, A (B, T, H·D_h) an attention output, P the number of
predicates, (k1, k2) a subject span (start, inclusive end), pn1/pn2 the global subject-start/end
gates (B, T), pc the relation-presence gate (B, P). All probabilities are sigmoids, so any number
of spans can start or end at a position.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._numerics import _sigmoid
from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, check_ndim, value_of
from kexue_ref.dgcnn.conv import _check_mask, _conv
from kexue_ref.dgcnn.rnn import _birnn, _check_rnn

__all__ = ["span_positions", "relative_distances", "global_gate", "seq_maxpool", "subject_heads",
           "subject_features", "object_heads"]


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


def global_gate(h, w1, b1, w2, b2):
    r"""A two-layer sigmoid detector: the pn (per position) and pc (per sentence) gates.

    .. math:: g = \mathrm{sigmoid}\big(\mathrm{relu}(h W_1 + b_1)\, W_2 + b_2\big)

    Parameters
    ----------
    h : array (..., D): the encoder output (B, T, D) for pn1/pn2, or its masked max-pool (B, D)
        for pc.
    w1 : array (D, M) (the code: M = 128).
    b1 : array (M,).
    w2 : array (M, K) (K = 1 for pn, P for pc).
    b2 : array (K,).

    Returns
    -------
    array (..., K), in (0, 1).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (pn: "is there an entity here", pc: "which relations
    occur in the sentence"; the post says they add no F1 but speed up training);
    ``bojone/kg-2019`` ``Dense(char_size, relu)`` then ``Dense(1 or P, sigmoid)``.
    """
    h = as_float(h, "h")
    check_float_array(h, "h", min_ndim=1)
    D = value_of(h).shape[-1]
    w1, b1 = _dense(w1, b1, D, "w1", "b1")
    w2, b2 = _dense(w2, b2, value_of(w1).shape[1], "w2", "b2")
    return _global_gate(h, w1, b1, w2, b2)


def seq_maxpool(h, mask):
    r"""Max over the valid positions of each feature.

    .. math:: \bar h_{d} = \max_{t:\, m_t} h_{td}

    Parameters
    ----------
    h : array (B, T, D).
    mask : bool array (B, T) or None.

    Returns
    -------
    array (B, D); 0 for a sample with no valid position (D4).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``seq_maxpool`` (subtracts 1e10 at padding, then max); masked
    exactly here. Ties share the gradient equally (autograd's max).
    """
    h = as_float(h, "h")
    check_float_array(h, "h")
    B, T, _ = check_ndim(h, "h", 3, "(B, T, D)")
    return _seq_maxpool(h, _check_mask(mask, B, T))


def subject_heads(h, a, wc, bc, w1, b1, w2, b2, pn1, pn2):
    r"""Subject start/end probabilities, gated by the global detectors pn1 and pn2.

    .. math:: U = \mathrm{relu}\big(\mathrm{Conv}_{k=3}([H \,|\, A])\big), \qquad
              p^{s1}_t = \mathrm{sigmoid}(U_t w_1 + b_1)\, pn^1_t, \qquad
              p^{s2}_t = \mathrm{sigmoid}(U_t w_2 + b_2)\, pn^2_t

    Parameters
    ----------
    h : array (B, T, D), the encoder output.
    a : array (B, T, Da), the first attention's output.
    wc : array (3, D + Da, M) (the code: M = 128, 'same' padding, dilation 1).
    bc : array (M,).
    w1, w2 : arrays (M, 1).
    b1, b2 : arrays (1,).
    pn1, pn2 : arrays (B, T), the global gates (:func:`global_gate` of H, last axis dropped).

    Returns
    -------
    (ps1, ps2), arrays (B, T) in (0, 1).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (subject pointers); ``bojone/kg-2019`` (``Concatenate``,
    ``Conv1D(char_size, 3, relu)``, ``Dense(1, sigmoid)``, times pn1 / pn2).
    """
    h, a = _two_seqs(h, a)
    B, T, _ = value_of(h).shape
    u_in = value_of(h).shape[-1] + value_of(a).shape[-1]
    wc, bc = _kernel(wc, bc, u_in)
    M = value_of(wc).shape[-1]
    w1, b1 = _dense(w1, b1, M, "w1", "b1", out=1)
    w2, b2 = _dense(w2, b2, M, "w2", "b2", out=1)
    pn1 = _prob_array(pn1, "pn1", (B, T), "(B, T)")
    pn2 = _prob_array(pn2, "pn2", (B, T), "(B, T)")
    return _subject_heads(h, a, wc, bc, w1, b1, w2, b2, pn1, pn2)


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


def object_heads(h, a, s, wc, bc, wo, bo, w1, b1, w2, b2, pc, pn1, pn2):
    r"""Object start/end probabilities per predicate, given the subject features.

    .. math:: U = \mathrm{relu}\big(\mathrm{Conv}_{k=3}([H \,|\, A \,|\, S])\big), \qquad
              po_t = \mathrm{sigmoid}(U_t w_o + b_o)

    .. math:: p^{o1}_{tc} = po_t \cdot \mathrm{sigmoid}(U_t W_1 + b_1)_c \cdot pc_c \cdot pn^1_t,
              \qquad p^{o2}_{tc} = po_t \cdot \mathrm{sigmoid}(U_t W_2 + b_2)_c \cdot pc_c \cdot pn^2_t

    Parameters
    ----------
    h : array (B, T, D), the encoder output.
    a : array (B, T, Da), the second attention's output.
    s : array (B, T, Ds), the subject features (:func:`subject_features`).
    wc : array (3, D + Da + Ds, M).
    bc : array (M,).
    wo : array (M, 1).
    bo : array (1,).
    w1, w2 : arrays (M, P).
    b1, b2 : arrays (P,).
    pc : array (B, P), the relation-presence gate.
    pn1, pn2 : arrays (B, T), the global start/end gates (shared with the subject heads).

    Returns
    -------
    (po1, po2), arrays (B, T, P) in (0, 1).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (one start/end pointer pair per predicate, "half
    pointer, half tagging"); ``bojone/kg-2019`` (``po1 = po·po1·pc·pn1``).
    """
    h, a = _two_seqs(h, a)
    _, s = _two_seqs(h, s, "s")
    B, T, _ = value_of(h).shape
    u_in = value_of(h).shape[-1] + value_of(a).shape[-1] + value_of(s).shape[-1]
    wc, bc = _kernel(wc, bc, u_in)
    M = value_of(wc).shape[-1]
    wo, bo = _dense(wo, bo, M, "wo", "bo", out=1)
    w1, b1 = _dense(w1, b1, M, "w1", "b1")
    P = value_of(w1).shape[1]
    w2, b2 = _dense(w2, b2, M, "w2", "b2", out=P)
    pc = _prob_array(pc, "pc", (B, P), "(B, P)")
    pn1 = _prob_array(pn1, "pn1", (B, T), "(B, T)")
    pn2 = _prob_array(pn2, "pn2", (B, T), "(B, T)")
    return _object_heads(h, a, s, wc, bc, wo, bo, w1, b1, w2, b2, pc, pn1, pn2)


# ---------------------------------------------------------------------------
# Private kernels
# ---------------------------------------------------------------------------

def _relu(z):
    return np.maximum(z, onp.asarray(0.0, value_of(z).dtype))


def _global_gate(h, w1, b1, w2, b2):
    # g = sigmoid(relu(h W₁ + b₁) W₂ + b₂)
    return _sigmoid(np.matmul(_relu(np.matmul(h, w1) + b1), w2) + b2)


def _seq_maxpool(h, mask):
    if mask is None:
        return np.max(h, axis=1)
    dt = value_of(h).dtype
    # h̄_d = max over valid t of h_td (padding → −inf, which never wins)
    hm = np.max(np.where(mask[..., None], h, onp.asarray(-onp.inf, dt)), axis=1)   # (B, D)
    # a sample with no valid position gives 0 (D4)
    return np.where(mask.any(axis=1)[:, None], hm, onp.asarray(0.0, dt))


def _subject_heads(h, a, wc, bc, w1, b1, w2, b2, pn1, pn2):
    # U = relu(Conv₃([H | A]))
    u = _relu(_conv(np.concatenate([h, a], axis=-1), wc, bc, 1))           # (B, T, M)
    # p^{s1} = sigmoid(U w₁ + b₁)·pn¹, p^{s2} = sigmoid(U w₂ + b₂)·pn²
    ps1 = _sigmoid(np.matmul(u, w1) + b1)[..., 0] * pn1                          # (B, T)
    ps2 = _sigmoid(np.matmul(u, w2) + b2)[..., 0] * pn2
    return ps1, ps2


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


def _object_heads(h, a, s, wc, bc, wo, bo, w1, b1, w2, b2, pc, pn1, pn2):
    # U = relu(Conv₃([H | A | S]))
    u = _relu(_conv(np.concatenate([h, a, s], axis=-1), wc, bc, 1))        # (B, T, M)
    # po_t = sigmoid(U w_o + b_o)
    po = _sigmoid(np.matmul(u, wo) + bo)                                        # (B, T, 1)
    # common gate po_t · pc_c
    g = po * pc[:, None, :]                                                   # (B, T, P)
    # p^{o1}_{tc} = po_t · sigmoid(U W₁ + b₁)_c · pc_c · pn¹_t (and the same for the ends)
    po1 = g * _sigmoid(np.matmul(u, w1) + b1) * pn1[..., None]
    po2 = g * _sigmoid(np.matmul(u, w2) + b2) * pn2[..., None]
    return po1, po2


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


def _two_seqs(h, a, name="a"):
    h = as_float(h, "h")
    check_float_array(h, "h")
    B, T, _ = check_ndim(h, "h", 3, "(B, T, D)")
    a = as_float(a, name)
    check_float_array(a, name)
    check_ndim(a, name, 3, "(B, T, D)")
    if value_of(a).shape[:2] != (B, T):
        raise ValueError(f"{name} must have shape (B, T, ·) = ({B}, {T}, ·) like h, got {value_of(a).shape}")
    return h, a


def _dense(w, b, D, wname, bname, out=None):
    w = as_float(w, wname)
    check_float_array(w, wname)
    if value_of(w).ndim != 2 or value_of(w).shape[0] != D or (out is not None and value_of(w).shape[1] != out):
        want = f"({D}, {out if out is not None else 'K'})"
        raise ValueError(f"{wname} must have shape {want}, got {value_of(w).shape}")
    b = as_float(b, bname)
    check_float_array(b, bname)
    if value_of(b).shape != (value_of(w).shape[1],):
        raise ValueError(f"{bname} must have shape ({value_of(w).shape[1]},), got {value_of(b).shape}")
    return w, b


def _kernel(wc, bc, d_in):
    wc = as_float(wc, "wc")
    check_float_array(wc, "wc")
    if value_of(wc).ndim != 3 or value_of(wc).shape[1] != d_in:
        raise ValueError(f"wc must have shape (k, {d_in}, M) (the concatenated input width), "
                         f"got {value_of(wc).shape}")
    bc = as_float(bc, "bc")
    check_float_array(bc, "bc")
    if value_of(bc).shape != (value_of(wc).shape[2],):
        raise ValueError(f"bc must have shape (M,) = ({value_of(wc).shape[2]},), got {value_of(bc).shape}")
    return wc, bc


def _prob_array(p, name, shape, legend):
    p = as_float(p, name)
    arr = check_float_array(p, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {legend} = {shape}, got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    return p
