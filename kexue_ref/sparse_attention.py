r"""Sparse attention: the dense masked oracle, the post's patterns, its blocked forms, the Keras quirks.

Post: Su Jianlin, "Born to save: from standard attention to sparse attention" (为节约而生：从标准
Attention到稀疏Attention), 2019-07-27, https://kexue.fm/archives/6853. Author's code:
``bojone/attention`` ``attention_keras.py``. Paper: Child, Gray, Radford, Sutskever,
"Generating Long Sequences with Sparse Transformers", arXiv 1904.10509.

Notation: Q, K, V the query, key and value tensors; S = QKᵀ/√D the scores; A the boolean
allowed-mask (True = may attend, decision D4); P the attention weights; O = PV the output.
The post's k (rate and window) is R for the atrous/sparse rate and W for the local half-window.

Shapes (D5): q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), output (B, H, Tq, Dv);
the patterns are self-attention, Tq = Tk = T. A sequence mask ``mask`` (B, T) is True for valid
tokens: it removes padded keys *and* sets padded query rows to 0.

Levels (STYLE §4): :func:`attention` is the specification (a dense T × T computation);
:func:`atrous_attention`, :func:`local_attention`, :func:`sparse_attention` and
:func:`indexed_attention` call it with a predicate mask from :mod:`kexue_ref._masks`; the
``*_blocked`` functions are the post's second, memory-saving forms (regrouping and window
extraction), tested equal to the oracle; ``compat="keras"`` reproduces the author's Keras code
where it departs from the post (``docs/sparse_attention.md``). The fast numba twins are separate
(``kexue_ref.kernels.sparse_attention``). Nothing here mutates its inputs; every function is
traceable by autograd, keeps float32 as float32 and never returns NaN for valid input.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

from kexue_ref import _masks
from kexue_ref import _numerics as nx
from kexue_ref._masks import (  # noqa: F401  (the pattern predicates, re-exported)
    atrous_mask, causal_mask, key_index_from_mask, layout_to_mask, local_mask, mask_to_layout,
    openai_fixed_layout, openai_local_mask, sparse_mask, strided_mask,
)
from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, value_of

__all__ = ["attention", "atrous_attention", "local_attention", "sparse_attention",
           "indexed_attention", "atrous_attention_blocked", "local_attention_blocked",
           "sparse_attention_blocked",
           # pattern predicates (kexue_ref._masks)
           "causal_mask", "atrous_mask", "local_mask", "sparse_mask", "strided_mask",
           "openai_local_mask", "openai_fixed_layout", "mask_to_layout", "layout_to_mask",
           "key_index_from_mask"]

POST = "https://kexue.fm/archives/6853"
KERAS_CONSTANT = 1e10          # the additive mask constant of attention_keras.py


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
# The post's patterns (self-attention), each calling the oracle with a predicate mask
# ---------------------------------------------------------------------------

def _pattern_args(q, k, v, mask, causal, compat):
    q, k, v, (B, H, T, _, D, Dv) = _check_qkv(q, k, v, self_attention=True)
    m = _seq_mask(mask, "mask", B, T)
    causal = _check_flag(causal, "causal")
    check_choice(compat, "compat", (None, "keras"))
    return q, k, v, m, causal, T


def _with_key_mask(A, m):
    """(T, T) pattern → broadcastable (B|1, 1, T, T) with padded keys removed."""
    return A if m is None else A & m[:, None, None, :]


def atrous_attention(q, k, v, rate, *, causal=False, mask=None, compat=None):
    r"""Atrous self-attention: each query attends to the keys at distances that are multiples of R.

    .. math:: o_i = \sum_{j:\ (i - j) \bmod R = 0} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1; R = 1 is full attention, R ≥ T gives o_i = v_i exactly.
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token (padded keys removed, padded query
        rows set to 0).
    compat : None (the post) or ``"keras"`` (``AtrousSelfAttention`` of ``attention_keras.py``:
        pads by R − T mod R zero tokens that are attended when ``mask`` is None, additive −1e10
        masks, and, when ``causal=False``, the always-true ``mask_right`` branch that subtracts
        1e10 from every score, rounded to float32: see :func:`_atrous_keras`).

    Returns
    -------
    array (B, H, T, Dv).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Atrous Self Attention"; pattern
    :func:`kexue_ref._masks.atrous_mask`. Cost O(T²/R) when computed by groups
    (:func:`atrous_attention_blocked`); this function is the dense specification.

    Examples
    --------
    >>> q = onp.zeros((1, 1, 4, 1)); v = onp.arange(4.0).reshape(1, 1, 4, 1)
    >>> atrous_attention(q, q, v, 2).ravel().tolist()     # means of {v0, v2} and {v1, v3}
    [1.0, 2.0, 1.0, 2.0]
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, compat)
    R = check_int(rate, "rate", min_value=1)
    if compat == "keras":
        return _atrous_keras(q, k, v, R, causal, m)
    # A_ij = [(i − j) mod R = 0] ∧ [j ≤ i]_causal
    A = _masks.atrous_mask(T, R, causal)
    return _attend(q, k, v, _with_key_mask(A, m), m, None)


def local_attention(q, k, v, neighbors, *, causal=False, mask=None, compat=None):
    r"""Local self-attention: each query attends to the W neighbours on each side and itself.

    .. math:: o_i = \sum_{j:\ |i - j| \le W} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    neighbors : int W ≥ 1; windows are cut at the sequence edges (no padding key is attended);
        W ≥ T − 1 is full attention.
    causal : bool, keep only j ≤ i (the last W + 1 positions).
    mask : None or bool array (B, T), True = valid token.
    compat : None (the post) or ``"keras"`` (``LocalSelfAttention``: zero-padded windows of
        2W + 1 slots whose padding is attended when ``mask`` is None, and the float32
        "subtract 1e10 from every score" collapse when ``causal=False``: :func:`_local_keras`).

    Returns
    -------
    array (B, H, T, Dv).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Local Self Attention"; pattern
    :func:`kexue_ref._masks.local_mask`. OpenAI's ``local`` with bandwidth l is
    ``causal=True`` with W = l − 1.
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, compat)
    W = check_int(neighbors, "neighbors", min_value=1)
    if compat == "keras":
        return _local_keras(q, k, v, W, causal, m)
    # A_ij = [|i − j| ≤ W] ∧ [j ≤ i]_causal
    A = _masks.local_mask(T, W, causal)
    return _attend(q, k, v, _with_key_mask(A, m), m, None)


def sparse_attention(q, k, v, rate, *, causal=False, mask=None, compat=None):
    r"""The post's Sparse self-attention: local up to distance R plus atrous beyond, one softmax.

    .. math:: o_i = \sum_{j \in \mathcal{N}(i)} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j, \qquad
              \mathcal{N}(i) = \{ j : |i - j| \le R \} \cup \{ j : (i - j) \bmod R = 0 \}

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1 (R = 1 is full attention; ``compat="keras"`` needs R ≥ 2).
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token.
    compat : None (the post: every key of the union counted once) or ``"keras"``
        (``SparseSelfAttention``: the "local" branch is dilated by R, the two score blocks are
        concatenated into one softmax so shared keys count twice, zero padding is attended when
        ``mask`` is None: :func:`_sparse_keras`).

    Returns
    -------
    array (B, H, T, Dv).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Sparse Self Attention" (OpenAI's strided factors
    merged into one attention); pattern :func:`kexue_ref._masks.sparse_mask`.
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, compat)
    R = check_int(rate, "rate", min_value=1)
    if compat == "keras":
        return _sparse_keras(q, k, v, R, causal, m)
    # A_ij = ([|i − j| ≤ R] ∨ [(i − j) mod R = 0]) ∧ [j ≤ i]_causal
    A = _masks.sparse_mask(T, R, causal)
    return _attend(q, k, v, _with_key_mask(A, m), m, None)


def indexed_attention(q, k, v, key_index, *, mask=None):
    r"""Self-attention over arbitrary per-query key lists.

    .. math:: o_i = \sum_{j \in \mathrm{key\_index}_i} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    key_index : int array (T, Kmax), Kmax ≥ 1: row i lists the keys query i may attend, strictly
        increasing, padded with −1 at the end (the same lists for every batch and head). A row of
        −1 is a fully masked row (output 0, D4).
    mask : None or bool array (B, T), True = valid token.

    Returns
    -------
    array (B, H, T, Dv).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 (a sparse pattern as per-query key lists, the row
    iteration of sparse kernels): any pattern given as key lists, e.g.
    ``_masks.key_index_from_mask(_masks.sparse_mask(T, R))``. The readable version builds the
    boolean mask (:func:`kexue_ref._masks.mask_from_key_index`) and calls :func:`attention`.
    """
    q, k, v, (B, H, T, _, D, Dv) = _check_qkv(q, k, v, self_attention=True)
    m = _seq_mask(mask, "mask", B, T)
    idx = _check_key_index(key_index, T)
    # A_ij = [j ∈ key_index_i]
    A = _masks.mask_from_key_index(idx, T)
    return _attend(q, k, v, _with_key_mask(A, m), m, None)


def _check_key_index(key_index, T):
    idx = onp.asarray(key_index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"key_index must be an int64 array (T, Kmax), got dtype {idx.dtype}")
    if idx.ndim != 2 or idx.shape[0] != T or idx.shape[1] < 1:
        raise ValueError(f"key_index must have shape (T, Kmax) = ({T}, Kmax >= 1), got shape {idx.shape}")
    if idx.min() < -1 or idx.max() >= T:
        raise ValueError(f"key_index entries must lie in [-1, {T}) (-1 = padding), got values in "
                         f"[{idx.min()}, {idx.max()}]")
    valid = idx >= 0
    if onp.any(valid[:, 1:] & ~valid[:, :-1]):
        raise ValueError("key_index rows must list their keys first and pad with -1 at the end")
    if onp.any(valid[:, 1:] & (idx[:, 1:] <= idx[:, :-1])):
        raise ValueError("key_index rows must be strictly increasing (no repeated key)")
    return idx.astype(onp.int64)


# ---------------------------------------------------------------------------
# The post's blocked forms (readable NumPy, memory O(T²/R) and O(T·(block + 2W)))
# ---------------------------------------------------------------------------

def _pad_time(x, before, after):
    """Zero rows added before and after the time axis (axis 2) of a (B, H, T, E) array."""
    if before == 0 and after == 0:
        return x
    B, H, T, E = value_of(x).shape
    dtype = value_of(x).dtype
    return np.concatenate([np.zeros((B, H, before, E), dtype), x, np.zeros((B, H, after, E), dtype)], axis=2)


def _to_groups(x, R):
    """(B, H, N·R, E) → (B, H, R, N, E): position t = n·R + r goes to group r, place n."""
    B, H, NR, E = value_of(x).shape
    return np.transpose(np.reshape(x, (B, H, NR // R, R, E)), (0, 1, 3, 2, 4))


def _from_groups(x, T):
    """(B, H, R, N, E) → (B, H, T, E), the inverse of :func:`_to_groups` followed by a crop."""
    B, H, R, N, E = value_of(x).shape
    return np.reshape(np.transpose(x, (0, 1, 3, 2, 4)), (B, H, N * R, E))[:, :, :T]


def _valid_tokens(m, B, T, before, after):
    """(B, before + T + after) bool: True at real, unmasked tokens, False at padding."""
    valid = onp.ones((B, T), dtype=bool) if m is None else m
    return onp.concatenate([onp.zeros((B, before), bool), valid, onp.zeros((B, after), bool)], axis=1)


def _atrous_groups(q, k, v, R, causal, m, min_gap=0, with_lse=False):
    """Attention inside the R interleaved subsequences: out (B, H, T, Dv) [, lse (B, H, T)].

    Keys at group distance |n − n'| < ``min_gap`` are left out (the sparse form uses 2).
    """
    B, H, T, D = value_of(q).shape
    N = -(-T // R)
    pad = N * R - T                                               # 0..R−1 slots, never attended
    qg, kg, vg = (_to_groups(_pad_time(x, 0, pad), R) for x in (q, k, v))   # (B, H, R, N, ·)
    # key validity by group: (B, R, N); padding slots are invalid
    valid = _to_groups(_valid_tokens(m, B, T, 0, pad)[:, None, :, None], R)[:, 0, :, :, 0]
    n = onp.arange(N)
    A = valid[:, None, :, None, :]                                # (B, 1, R, 1, N)
    if causal:
        # within a group, j ≤ i ⟺ n' ≤ n
        A = A & (n[None, :] <= n[:, None])
    if min_gap:
        A = A & (onp.abs(n[:, None] - n[None, :]) >= min_gap)
    # S_nn' = q_{nR+r} · k_{n'R+r} / √D, per group r
    S = np.matmul(qg, _T(kg)) / nx._const(onp.sqrt(D), q)                  # (B, H, R, N, N)
    # o_n = Σ_n' P_nn' v_n' inside the group
    O = _from_groups(np.matmul(nx._masked_softmax(S, A, -1), vg), T)        # (B, H, T, Dv)
    if not with_lse:
        return O
    # L_n = log Σ_{n' allowed} e^{S_nn'} (−∞ for a row without keys)
    L = nx._logsumexp(np.where(A, S, nx._const(-onp.inf, S)), -1)            # (B, H, R, N)
    return O, _from_groups(L[..., None], T)[..., 0]


def _local_windows(q, k, v, W, causal, m, block, with_lse=False):
    """Local attention by key windows shared by query blocks: out (B, H, T, Dv) [, lse (B, H, T)].

    Query block c holds queries i = c·b + a (a < b) and reads the b + 2W keys
    j = c·b + u − W (u < b + 2W); block b = 1 is the per-query window of the post's code.
    """
    B, H, T, D = value_of(q).shape
    b = min(block, T)
    nb = -(-T // b)
    extra = nb * b - T                                            # query padding of the last block
    kp, vp = (_pad_time(x, W, W + extra) for x in (k, v))         # key j sits at padded j + W
    # window slots: padded index c·b + u, u = 0 .. b + 2W − 1
    idx = (onp.arange(nb)[:, None] * b + onp.arange(b + 2 * W)[None, :]).astype(onp.int64)
    kw, vw = kp[:, :, idx, :], vp[:, :, idx, :]                   # (B, H, nb, b + 2W, ·)
    qb = np.reshape(_pad_time(q, 0, extra), (B, H, nb, b, D))     # (B, H, nb, b, D)
    # i − j = a − u + W, the same for every block
    dist = onp.arange(b)[:, None] - onp.arange(b + 2 * W)[None, :] + W        # (b, b + 2W)
    near = (onp.abs(dist) <= W) & ((dist >= 0) if causal else True)
    valid = _valid_tokens(m, B, T, W, W + extra)[:, idx]          # (B, nb, b + 2W)
    A = valid[:, None, :, None, :] & near                         # (B, 1, nb, b, b + 2W)
    # S_iu = q_i · k_{c·b + u − W} / √D
    S = np.matmul(qb, _T(kw)) / nx._const(onp.sqrt(D), q)                  # (B, H, nb, b, b + 2W)
    # o_i = Σ_u P_iu v_{c·b + u − W}
    O = np.matmul(nx._masked_softmax(S, A, -1), vw)                        # (B, H, nb, b, Dv)
    O = np.reshape(O, (B, H, nb * b, value_of(v).shape[-1]))[:, :, :T]      # (B, H, T, Dv)
    if not with_lse:
        return O
    # L_i = log Σ_{u allowed} e^{S_iu}
    L = nx._logsumexp(np.where(A, S, nx._const(-onp.inf, S)), -1)            # (B, H, nb, b)
    return O, np.reshape(L, (B, H, nb * b))[:, :, :T]


def atrous_attention_blocked(q, k, v, rate, *, causal=False, mask=None):
    r"""Atrous attention by regrouping: full attention inside each of the R interleaved subsequences.

    .. math:: \tilde x_{r, n} = x_{nR + r}, \qquad
              o_{nR + r} = \sum_{n'} \mathrm{softmax}_{n'}\Big(\frac{\tilde q_{r,n}\cdot
              \tilde k_{r,n'}}{\sqrt D}\Big)\, \tilde v_{r,n'}

    T is padded up to N·R (N = ⌈T/R⌉) with zero tokens that are **masked**, so they never enter a
    softmax; the sequence is reshaped to (N, R), each column attends within itself, and the
    reshape is undone and cropped.

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1.
    causal : bool, keep only j ≤ i (n' ≤ n inside a group).
    mask : None or bool array (B, T), True = valid token.

    Returns
    -------
    array (B, H, T, Dv), equal to :func:`atrous_attention` (tested, including T mod R ≠ 0).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 ("Atrous Self Attention": reshape, attend, reshape
    back). Memory O(B·H·T²/R). Unlike the author's Keras
    layer, the padding is 0..R − 1 slots and is never attended (compare ``compat="keras"``).
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, None)
    R = check_int(rate, "rate", min_value=1)
    return _zero_queries(_atrous_groups(q, k, v, R, causal, m), m)


def local_attention_blocked(q, k, v, neighbors, *, causal=False, mask=None, block=64):
    r"""Local attention by window extraction: every block of queries reads one window of keys.

    .. math:: o_i = \sum_{u=0}^{b + 2W - 1} \mathrm{softmax}_u\Big(\frac{q_i\cdot
              k_{cb + u - W}}{\sqrt D}\Big)\, v_{cb + u - W}\ \ \text{over}\ |i - (cb + u - W)|
              \le W, \qquad c = \lfloor i / b \rfloor

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    neighbors : int W ≥ 1.
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token.
    block : int b ≥ 1, queries per block (capped at T). ``block=1`` is the per-query window of
        2W + 1 keys of the post's code (``extract_seq_patches``); larger blocks share the key
        window and cut memory from O(T·W·D) to O(T·D·(1 + 2W/b)).

    Returns
    -------
    array (B, H, T, Dv), equal to :func:`local_attention` (tested).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 ("Local Self Attention", implemented by extracting
    each position's window). Window slots outside [0, T) are masked, so they never
    enter a softmax (unlike ``compat="keras"``). Scores: O(B·H·T·(b + 2W)).
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, None)
    W = check_int(neighbors, "neighbors", min_value=1)
    b = check_int(block, "block", min_value=1)
    return _zero_queries(_local_windows(q, k, v, W, causal, m, b), m)


def sparse_attention_blocked(q, k, v, rate, *, causal=False, mask=None, block=64):
    r"""Sparse attention as two disjoint blocked parts merged by their log-sum-exps.

    .. math:: \mathcal{N}(i) = \underbrace{\{|i - j| \le R\}}_{\text{local, } W = R} \;\sqcup\;
              \underbrace{\{(i - j) \bmod R = 0,\ |i - j| > R\}}_{\text{atrous, group gap} \ge 2},
              \qquad o_i = \sum_{p} e^{L_p(i) - L(i)}\, o^{(p)}_i, \quad
              L = \log \sum_p e^{L_p}

    where o^{(p)} and L_p are the normalised output and the log-sum-exp of the scores of part p.
    Because the parts are disjoint, this is exactly one softmax over the union, each key counted
    once (the Keras code concatenates overlapping parts instead: ``compat="keras"``).

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1.
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token.
    block : int ≥ 1, the query block of the local part (:func:`local_attention_blocked`).

    Returns
    -------
    array (B, H, T, Dv), equal to :func:`sparse_attention` (tested).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 (Sparse = Local ∪ Atrous); the merge is the
    log-sum-exp combination of partial softmaxes used by blockwise attention kernels. A row with
    no allowed key in either part has L = −∞ and outputs 0 (D4).
    """
    q, k, v, m, causal, T = _pattern_args(q, k, v, mask, causal, None)
    R = check_int(rate, "rate", min_value=1)
    b = check_int(block, "block", min_value=1)
    O_local, L_local = _local_windows(q, k, v, R, causal, m, b, with_lse=True)
    O_far, L_far = _atrous_groups(q, k, v, R, causal, m, min_gap=2, with_lse=True)
    # weights e^{L_p − L}, L = log Σ_p e^{L_p}; both −∞ gives weights 0 (D4)
    w = nx._softmax(np.stack([L_local, L_far]), 0)                            # (2, B, H, T)
    O = w[0][..., None] * O_local + w[1][..., None] * O_far
    return _zero_queries(O, m)


# ---------------------------------------------------------------------------
# compat="keras": the author's attention_keras.py as implemented (docs/sparse_attention.md)
# ---------------------------------------------------------------------------
# Our q, k, v stand for the outputs of the layers' bias-free Dense projections, so the zero
# tokens the layers pad with become q = k = v = 0 (score 0, value 0). Masks are additive:
# S − (1 − mask)·1e10. Departure 3, the always-true condition
# ``(mask_right is not False) or (mask_right is not None)`` of ``Attention``, subtracts 1e10
# from every score when mask_right=False (causal=False); this step is done in float32, as in
# the layer's float32 graph, so that its effect shows in float64 tables too. Its derivative is
# that of the casts it is written with (TensorFlow's and PyTorch's cast gradient): the
# cotangent of the scores is rounded to float32 on the way back (docs/sparse_attention.md,
# "compat='keras'", item 3).

def _keras_additive(S, keep):
    """to_mask(a, mask, 'add'): S − (1 − keep)·1e10, in the dtype of S."""
    return S - nx._const(KERAS_CONSTANT, S) * (1.0 - keep.astype(value_of(S).dtype))


@primitive
def _keras_minus_1e10_float32(S):
    r"""The always-true ``mask_right`` branch with mask_right=False: cast(cast32(S) − 1e10).

    .. math:: \tilde S = \mathrm{fl}_{32}\big(\mathrm{fl}_{32}(S) - 10^{10}\big), \qquad
              \frac{\partial L}{\partial S} = \mathrm{fl}_{32}\Big(\frac{\partial L}
              {\partial \tilde S}\Big)

    The float32 spacing at 1e10 is 1024, so every |S| < 512 rounds to −1e10 exactly and the
    softmax becomes uniform over the keys not removed by an additive mask. The step is a cast
    to float32, a float32 subtraction and a cast back to the working dtype; its VJP is that of
    those casts in TensorFlow (``Cast``'s gradient casts the cotangent to the source dtype) and
    in autograd or PyTorch: the subtraction passes the cotangent unchanged and the casts round
    it to float32 (:func:`_keras_float32_cotangent`). In float32 both roundings are no-ops.

    Parameters
    ----------
    S : array (…), the scores after the additive masks.

    Returns
    -------
    array (…) in the dtype of S.

    Notes
    -----
    Source: ``attention_keras.py`` of ``bojone/attention`` (``Attention.call``, the
    ``mask_right`` branch), https://kexue.fm/archives/6853; the choice of derivative is
    explained in ``docs/sparse_attention.md`` ("compat='keras'", item 3).
    """
    dtype = S.dtype
    # fl32(fl32(S) − 1e10), then back to the working dtype (1e10 is exact in float32)
    return (S.astype(onp.float32) - onp.float32(KERAS_CONSTANT)).astype(dtype)


def _keras_float32_cotangent(g):
    """The cotangent (or tangent) g rounded to float32 and returned in its own dtype."""
    dtype = value_of(g).dtype
    # cast64(cast32(g)): the gradient of cast32 followed by that of cast64
    return g.astype(onp.float32).astype(dtype)


defvjp(_keras_minus_1e10_float32, lambda ans, S: _keras_float32_cotangent)
defjvp(_keras_minus_1e10_float32, lambda t, ans, S: _keras_float32_cotangent(t))


def _atrous_keras(q, k, v, R, causal, m):
    """``AtrousSelfAttention(rate=R, mask_right=causal)`` on projected q, k, v (B, H, T, ·).

    Pads R − T mod R zero tokens (1..R, a whole group when R divides T), regroups by residue,
    runs ``Attention`` in each group and crops. Without ``mask`` the padding is attended.
    """
    B, H, T, D = value_of(q).shape
    pad = R - T % R                                               # 1..R, never 0
    N = (T + pad) // R
    qg, kg, vg = (_to_groups(_pad_time(x, 0, pad), R) for x in (q, k, v))   # (B, H, R, N, ·)
    S = np.einsum("bhrnd,bhrmd->bhrnm", qg, kg) / nx._const(onp.sqrt(D), q)  # (B, H, R, N, N)
    if m is not None:
        valid = _to_groups(_valid_tokens(m, B, T, 0, pad)[:, None, :, None], R)[:, 0, :, :, 0]
        # a − (1 − x_mask)·1e10 on keys
        S = _keras_additive(S, valid[:, None, :, None, :])
    if causal:
        n = onp.arange(N)
        # mask_right=True: a − 1e10 above the diagonal of each group
        S = _keras_additive(S, n[None, :] <= n[:, None])
    else:
        S = _keras_minus_1e10_float32(S)
    # plain softmax: nothing is excluded, masked scores are merely very negative
    O = _from_groups(np.einsum("bhrnm,bhrme->bhrne", nx._softmax(S, -1), vg), T)
    return _zero_queries(O, m)                                    # to_mask(o, q_mask, 'mul')


def _local_keras(q, k, v, W, causal, m):
    """``LocalSelfAttention(neighbors=W, rate=1, mask_right=causal)`` on projected q, k, v.

    Every query reads the 2W + 1 slots i − W .. i + W, zero-padded at the edges; without
    ``mask`` the padding slots (score 0, value 0) take part in the softmax.
    """
    B, H, T, D = value_of(q).shape
    K = 2 * W + 1
    kp, vp = (_pad_time(x, W, W) for x in (k, v))                 # temporal_padding (W, W)
    idx = onp.arange(T)[:, None] + onp.arange(K)[None, :]          # slot u ↔ key i + u − W
    kw, vw = kp[:, :, idx, :], vp[:, :, idx, :]                   # (B, H, T, K, ·)
    S = np.einsum("bhid,bhiud->bhiu", q, kw) / nx._const(onp.sqrt(D), q)     # (B, H, T, K)
    if m is not None:
        # xp_mask: the mask's own windows, zero-padded
        S = _keras_additive(S, _valid_tokens(m, B, T, W, W)[:, idx][:, None])
    if causal:
        # mask_right becomes a (1, K) array whose last W entries are 0: a − 1e10 there
        S = _keras_additive(S, onp.arange(K) <= W)
    else:
        S = _keras_minus_1e10_float32(S)
    O = np.einsum("bhiu,bhiue->bhie", nx._softmax(S, -1), vw)     # (B, H, T, Dv)
    return _zero_queries(O, m)


def _sparse_keras(q, k, v, R, causal, m):
    """``SparseSelfAttention(rate=R, mask_right=causal)`` on projected q, k, v.

    Two score blocks per query t = nR + r (after padding R − T mod R zero tokens):
    (1) the atrous group {n'R + r}; (2) ``extract_seq_patches(kw, 2R − 1, R)``, the *dilated*
    window {t + uR : |u| ≤ R − 1}, zero-padded. They are concatenated into one softmax (shared
    keys, always including t itself, count twice) and the two outputs are added.
    """
    if R < 2:
        raise ValueError("compat='keras' needs rate >= 2: SparseSelfAttention asserts rate != 1 "
                         f"(use SelfAttention), got rate={R}")
    B, H, T, D = value_of(q).shape
    pad = R - T % R
    Tp, N, K = T + pad, (T + pad) // R, 2 * R - 1
    scale = nx._const(onp.sqrt(D), q)
    qp, kp, vp = (_pad_time(x, 0, pad) for x in (q, k, v))        # (B, H, Tp, ·)
    valid = _valid_tokens(m, B, T, 0, pad)                        # (B, Tp)
    # (1) atrous block: S_nn' inside group r
    qg, kg, vg = (_to_groups(x, R) for x in (qp, kp, vp))         # (B, H, R, N, ·)
    a = np.einsum("bhrnd,bhrmd->bhrnm", qg, kg) / scale           # (B, H, R, N, N)
    if m is not None:
        a = _keras_additive(a, _to_groups(valid[:, None, :, None], R)[:, 0, :, :, 0][:, None, :, None, :])
    if causal:
        n = onp.arange(N)
        a = _keras_additive(a, n[None, :] <= n[:, None])
    # (2) dilated window: slot u ↔ key t + (u − (R − 1))·R, edge padding R(R − 1) on each side
    edge = R * (R - 1)
    kpp, vpp = (_pad_time(x, edge, edge) for x in (kp, vp))
    idx = onp.arange(Tp)[:, None] + R * onp.arange(K)[None, :]     # (Tp, K)
    kw, vw = kpp[:, :, idx, :], vpp[:, :, idx, :]                  # (B, H, Tp, K, ·)
    ap = np.einsum("bhtd,bhtud->bhtu", qp, kw) / scale             # (B, H, Tp, K)
    if m is not None:
        ap = _keras_additive(ap, _valid_tokens(valid, B, Tp, edge, edge)[:, idx][:, None])
    if causal:
        # the last R − 1 slots (positive offsets) get − 1e10
        ap = _keras_additive(ap, onp.arange(K) <= R - 1)
    apg = _to_groups(ap, R)                                        # (B, H, R, N, K)
    vwg = np.transpose(np.reshape(vw, (B, H, N, R, K, -1)), (0, 1, 3, 2, 4, 5))  # (B, H, R, N, K, Dv)
    # one softmax over the concatenation [a, ap] (N + 2R − 1 entries per query)
    A = nx._softmax(np.concatenate([a, apg], axis=-1), -1)
    o1 = np.einsum("bhrnm,bhrme->bhrne", A[..., :N], vg)
    o2 = np.einsum("bhrnu,bhrnue->bhrne", A[..., N:], vwg)
    return _zero_queries(_from_groups(o1 + o2, T), m)
