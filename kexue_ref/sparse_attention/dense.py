r"""Dense attention with a boolean mask: the specification every other form is tested against.

Post: https://kexue.fm/archives/6853, section "Attention" (the standard definition
Attention(Q, K, V) = softmax(QKᵀ/√D) V, before any sparsification). This module holds the oracle
:func:`attention`, its argument checks and the two helpers every pattern shares: the masked
computation :func:`_attend` and :func:`_zero_queries` (rows of padded queries set to 0).

Shapes (D5): q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), output (B, H, Tq, Dv).
Masks (D4): boolean, True = may attend / valid token; a row with no allowed key outputs 0.
"""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from kexue_ref import _masks
from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_choice, check_float_array, value_of

__all__ = ["attention"]


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def _check_qkv(q, k, v, self_attention):
    """Validated q, k, v and their sizes (B, H, Tq, Tk, D, Dv)."""
    q, k, v = as_float(q, "q"), as_float(k, "k"), as_float(v, "v")
    for x, name, legend in ((q, "q", "(B, H, Tq, D)"), (k, "k", "(B, H, Tk, D)"),
                            (v, "v", "(B, H, Tk, Dv)")):
        arr = check_float_array(x, name)
        if arr.ndim != 4:
            raise ValueError(f"{name} must have shape {legend}, got shape {arr.shape}")
    B, H, Tq, D = value_of(q).shape
    Tk = value_of(k).shape[2]
    if value_of(k).shape != (B, H, Tk, D):
        raise ValueError(f"k must have shape (B, H, Tk, D) = ({B}, {H}, Tk, {D}) to match q of "
                         f"shape {value_of(q).shape}, got {value_of(k).shape}")
    Dv = value_of(v).shape[3]
    if value_of(v).shape[:3] != (B, H, Tk):
        raise ValueError(f"v must have shape (B, H, Tk, Dv) = ({B}, {H}, {Tk}, Dv) to match k of "
                         f"shape {value_of(k).shape}, got {value_of(v).shape}")
    if self_attention and Tq != Tk:
        raise ValueError(f"q and k must have the same length T (self-attention), got Tq={Tq}, Tk={Tk}")
    if min(B, H, Tq, Tk, D, Dv) < 1:
        raise ValueError(f"every size of q, k, v must be >= 1, got q {value_of(q).shape}, "
                         f"k {value_of(k).shape}, v {value_of(v).shape}")
    return q, k, v, (B, H, Tq, Tk, D, Dv)


def _seq_mask(mask, name, B, T):
    """A (B, T) boolean sequence mask (True = valid token), or None."""
    if mask is None:
        return None
    m = onp.asarray(getval(mask))
    if m.dtype != onp.bool_:
        raise TypeError(f"{name} must be a boolean array of shape (B, T) (True = valid token), "
                        f"got dtype {m.dtype}")
    if m.shape != (B, T):
        raise ValueError(f"{name} must have shape (B, T) = ({B}, {T}), got shape {m.shape}")
    return m


def _check_flag(value, name):
    if not isinstance(value, (bool, onp.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_fill(fill):
    if fill is None:
        return None
    fill = float(fill)
    if not onp.isfinite(fill):
        raise ValueError(f"fill must be a finite number (None = exact masking, D4), got {fill}")
    return fill


# ---------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------

def attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    r"""Scaled dot-product attention with a boolean mask: the dense reference of every pattern.

    .. math:: S_{ij} = \frac{q_i \cdot k_j}{\sqrt{D}}, \qquad
              P_{ij} = \frac{[A_{ij}]\, e^{S_{ij} - m_i}}{\sum_{j': A_{ij'}} e^{S_{ij'} - m_i}},
              \qquad o_i = \sum_j P_{ij} v_j

    with m_i the largest allowed score of row i and A = allowed ∧ key_mask ∧ [j ≤ i]_causal.

    Parameters
    ----------
    q : array (B, H, Tq, D), queries.
    k : array (B, H, Tk, D), keys.
    v : array (B, H, Tk, Dv), values.
    allowed : None or bool array broadcastable to (B, H, Tq, Tk) (e.g. a (Tq, Tk) pattern);
        True = may attend. None allows every pair.
    key_mask : None or bool array (B, Tk), True = valid key.
    query_mask : None or bool array (B, Tq); rows of invalid queries output 0 (gradient 0).
    causal : bool, AND with j ≤ i (needs Tq = Tk).
    fill : None (default, exact masking) or a finite float c: disallowed scores are *replaced*
        by c before an ordinary softmax (the −1e9 convention of ``openai/sparse_attention``).

    Returns
    -------
    array (B, H, Tq, Dv), in the dtype of the inputs.

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Attention(Q, K, V) = softmax(QKᵀ/√D) V".
    Conventions: D4 — a row with no allowed key outputs 0 with zero cotangents (by
    ``_numerics._masked_softmax``); with ``fill=c`` such a row is the uniform average of all
    Tk values, while partially masked rows agree with the default to rounding. Time and memory
    are O(B·H·Tq·Tk): this is the specification, not a fast path (see
    ``kexue_ref.kernels.sparse_attention``).

    Examples
    --------
    >>> q = onp.zeros((1, 1, 2, 1)); v = onp.array([1.0, 3.0]).reshape(1, 1, 2, 1)
    >>> attention(q, q, v).ravel().tolist()            # equal scores: the mean of v
    [2.0, 2.0]
    >>> attention(q, q, v, causal=True).ravel().tolist()
    [1.0, 2.0]
    >>> attention(q, q, v, key_mask=onp.array([[False, False]])).ravel().tolist()
    [0.0, 0.0]
    """
    q, k, v, (B, H, Tq, Tk, D, Dv) = _check_qkv(q, k, v, self_attention=False)
    A = onp.ones((1, 1, Tq, Tk), dtype=bool) if allowed is None else _check_allowed(allowed, B, H, Tq, Tk)
    km = _seq_mask(key_mask, "key_mask", B, Tk)
    qm = _seq_mask(query_mask, "query_mask", B, Tq)
    if _check_flag(causal, "causal"):
        if Tq != Tk:
            raise ValueError(f"causal=True needs Tq == Tk (self-attention), got Tq={Tq}, Tk={Tk}")
        # A_ij ∧ [j ≤ i]
        A = A & _masks.causal_mask(Tq)
    if km is not None:
        # A_ij ∧ key_mask_bj
        A = A & km[:, None, None, :]
    return _attend(q, k, v, A, qm, _check_fill(fill))


def _check_allowed(allowed, B, H, Tq, Tk):
    A = onp.asarray(getval(allowed))
    if A.dtype != onp.bool_:
        raise TypeError(f"allowed must be a boolean array (True = may attend), got dtype {A.dtype}")
    target = (B, H, Tq, Tk)
    try:
        ok = A.ndim <= 4 and onp.broadcast_shapes(A.shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"allowed of shape {A.shape} does not broadcast to (B, H, Tq, Tk) = {target}")
    return A


def _T(x):
    """Swap the last two axes: Kᵀ of a batch of (…, T, D) matrices."""
    return np.swapaxes(x, -1, -2)


def _attend(q, k, v, A, qm, fill):
    """Masked attention on checked inputs: A bool broadcastable to (B, H, Tq, Tk)."""
    D = value_of(q).shape[-1]
    # S_ij = q_i · k_j / √D
    S = np.matmul(q, _T(k)) / nx._const(onp.sqrt(D), q)                    # (B, H, Tq, Tk)
    if fill is None:
        # P_ij = [A_ij] e^{S_ij − m_i} / Σ_{j' allowed} e^{S_ij' − m_i}; no allowed key: P_i = 0 (D4)
        P = nx._masked_softmax(S, A, -1)
    else:
        # replacement masking: S_ij ← c where not A_ij, then an ordinary softmax
        P = nx._softmax(np.where(A, S, nx._const(fill, S)), -1)
    # o_i = Σ_j P_ij v_j
    O = np.matmul(P, v)                                                     # (B, H, Tq, Dv)
    return _zero_queries(O, qm)


def _zero_queries(O, qm):
    """Rows of invalid queries (qm False) set to 0, with zero gradient."""
    if qm is None:
        return O
    return np.where(qm[:, None, :, None], O, nx._const(0.0, O))


# ---------------------------------------------------------------------------
# Shared by the self-attention patterns and their blocked forms
# ---------------------------------------------------------------------------

def _pattern_args(q, k, v, mask, causal, compat):
    """Checked arguments of a self-attention pattern: q, k, v, mask (B, T) or None, causal, T."""
    q, k, v, (B, H, T, _, D, Dv) = _check_qkv(q, k, v, self_attention=True)
    m = _seq_mask(mask, "mask", B, T)
    causal = _check_flag(causal, "causal")
    check_choice(compat, "compat", (None, "keras"))
    return q, k, v, m, causal, T


def _with_key_mask(A, m):
    """(T, T) pattern → broadcastable (B|1, 1, T, T) with padded keys removed."""
    return A if m is None else A & m[:, None, None, :]
