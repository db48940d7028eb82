r"""Indexed attention: self-attention over arbitrary per-query key lists.

Post: https://kexue.fm/archives/6853, section "Sparse Self Attention" and its closing remarks: a
sparse pattern is, for each query, a short list of keys, and a sparse kernel iterates over those
rows instead of over a T × T mask. :func:`indexed_attention` takes any pattern in that form
(``key_index`` (T, Kmax), padded with −1) and, as the readable version, rebuilds the boolean mask
and calls the oracle. :func:`_check_key_index` is shared with the numba twin
(:mod:`kexue_ref.kernels.sparse_attention`), which runs the rows directly.

Shapes (D5): q, k (B, H, T, D), v (B, H, T, Dv); ``mask`` (B, T), True = valid token.
"""
import numpy as onp

from kexue_ref import _masks
from kexue_ref.sparse_attention.dense import _attend, _check_qkv, _seq_mask, _with_key_mask

__all__ = ["indexed_attention"]


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
    boolean mask (:func:`kexue_ref._masks.mask_from_key_index`) and calls :func:`.dense.attention`.
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
