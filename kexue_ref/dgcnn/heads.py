r"""The probabilistic-graph heads: subject start/end, object start/end per predicate, global gates.

Post: https://kexue.fm/archives/6671 ("model", the half-pointer-half-tagging heads and the
P(s)·P(o, p | s) factorisation); sizes and gating from ``bojone/kg-2019`` ``kg_without_ds.py``.
This file covers the subject heads and the global gates (``docs/dgcnn.md`` §6) and the object
heads (§7); the subject encoding between them (span positions, relative distances, the BiRNN
features) is :mod:`kexue_ref.dgcnn.features`, whose names are re-exported here.

Notation: H (B, T, D) the encoder output, A (B, T, H·D_h) an attention output, P the number of
predicates, (k1, k2) a subject span (start, inclusive end), pn1/pn2 the global subject-start/end
gates (B, T), pc the relation-presence gate (B, P). All probabilities are sigmoids, so any number
of spans can start or end at a position.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._numerics import _sigmoid
from kexue_ref._validate import as_float, check_float_array, check_ndim, value_of
from kexue_ref.dgcnn.conv import _check_mask, _conv
# the subject encoding, importable from here as before the split
from kexue_ref.dgcnn.features import (  # noqa: F401
    _check_span, _int_array, _subject_features, relative_distances, span_positions, subject_features,
)

__all__ = ["span_positions", "relative_distances", "global_gate", "seq_maxpool", "subject_heads",
           "subject_features", "object_heads"]


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
