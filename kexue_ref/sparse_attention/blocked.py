r"""The post's memory-saving forms: atrous by regrouping, local by window extraction, sparse by merging.

Post: https://kexue.fm/archives/6853, sections "Atrous Self Attention" (reshape the sequence
into R interleaved subsequences, attend inside each, reshape back), "Local Self Attention"
(extract each position's window of 2W + 1 keys) and "Sparse Self Attention" (Local ∪ Atrous).
No function here builds a T × T array: memory is O(B·H·T²/R) for the groups and
O(B·H·T·(b + 2W)) for the windows. Each public function equals its dense pattern of
:mod:`kexue_ref.sparse_attention.patterns` (tested); the private helpers (padding, regrouping,
windows with their row log-sum-exps) are also used by the Keras forms of
:mod:`kexue_ref.sparse_attention.keras_compat`.

Shapes (D5): q, k (B, H, T, D), v (B, H, T, Dv); ``mask`` (B, T), True = valid token.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_int, value_of
from kexue_ref.sparse_attention.dense import _T, _pattern_args, _zero_queries

__all__ = ["atrous_attention_blocked", "local_attention_blocked", "sparse_attention_blocked"]


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
    array (B, H, T, Dv), equal to :func:`.patterns.atrous_attention` (tested, including T mod R ≠ 0).

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
    array (B, H, T, Dv), equal to :func:`.patterns.local_attention` (tested).

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
    array (B, H, T, Dv), equal to :func:`.patterns.sparse_attention` (tested).

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
