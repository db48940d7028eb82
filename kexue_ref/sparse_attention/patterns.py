r"""The post's three patterns, Atrous, Local and Sparse, as the dense oracle with a predicate mask.

Post: https://kexue.fm/archives/6853, sections "Atrous Self Attention", "Local Self Attention"
and "Sparse Self Attention". Each function builds the post's (T, T) allowed-mask from
:mod:`kexue_ref._masks` and calls the oracle (:func:`kexue_ref.sparse_attention.dense._attend`):
these are the specifications. ``compat="keras"`` hands over to the author's Keras code as it
runs (:mod:`kexue_ref.sparse_attention.keras_compat`); the memory-saving forms are in
:mod:`kexue_ref.sparse_attention.blocked`.

Shapes (D5): q, k (B, H, T, D), v (B, H, T, Dv), output (B, H, T, Dv); ``mask`` (B, T),
True = valid token (padded keys removed, padded query rows set to 0).
"""
import numpy as onp  # noqa: F401  (used by the doctests)

from kexue_ref import _masks
from kexue_ref._validate import check_int
from kexue_ref.sparse_attention.dense import _attend, _pattern_args, _with_key_mask
from kexue_ref.sparse_attention.keras_compat import _atrous_keras, _local_keras, _sparse_keras

__all__ = ["atrous_attention", "local_attention", "sparse_attention"]


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
        1e10 from every score, rounded to float32: see :func:`.keras_compat._atrous_keras`).

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
        "subtract 1e10 from every score" collapse when ``causal=False``:
        :func:`.keras_compat._local_keras`).

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
        ``mask`` is None: :func:`.keras_compat._sparse_keras`).

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
