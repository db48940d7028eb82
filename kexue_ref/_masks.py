r"""Boolean attention patterns: the post's atrous / local / sparse masks, OpenAI's factors, block layouts.

Post: Su Jianlin, "Born to save: from standard attention to sparse attention", 2019-07-27,
https://kexue.fm/archives/6853. Paper: Child, Gray, Radford, Sutskever, "Generating Long
Sequences with Sparse Transformers", arXiv 1904.10509 (code: ``openai/sparse_attention``).

Every function here is a plain predicate on positions: it returns a NumPy boolean array, True
where query i **may attend** to key j (decision D4), with 0-based positions i (rows) and j
(columns). The predicates are written once, from the formulas, and are deliberately *not*
shared with the numba kernels (``kexue_ref.kernels``), which compute their allowed key ranges
by their own index arithmetic, so that one mistake cannot hide in both (cf. NVIDIA/cutlass#2336).

Shape letters: T sequence length, R rate, W neighbours on each side (half-window), and for the
block layouts n = ⌈T / block⌉ blocks. Nothing here is differentiable or traced by autograd.
"""
import numbers

import numpy as onp

__all__ = ["causal_mask", "atrous_mask", "local_mask", "sparse_mask", "strided_mask",
           "openai_local_mask", "openai_fixed_layout", "mask_to_layout", "layout_to_mask",
           "key_index_from_mask", "mask_from_key_index", "row_counts", "format_mask"]

POST = "https://kexue.fm/archives/6853"


def _int_at_least(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, onp.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _positions(T):
    """Query positions i as a column (T, 1) and key positions j as a row (1, T), int64."""
    T = _int_at_least(T, "T", 1)
    i = onp.arange(T, dtype=onp.int64)[:, None]   # (T, 1)
    j = onp.arange(T, dtype=onp.int64)[None, :]   # (1, T)
    return i, j


def causal_mask(T):
    r"""The causal (lower-triangular) pattern: a query sees itself and the past.

    .. math:: A_{ij} = [\, j \le i \,]

    Parameters
    ----------
    T : int ≥ 1, the sequence length.

    Returns
    -------
    bool array (T, T).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 (the causal variants of every pattern); OpenAI's
    ``get_attn_mask(n, "all")`` is this matrix.

    Examples
    --------
    >>> print(format_mask(causal_mask(3)))
    # . .
    # # .
    # # #
    """
    i, j = _positions(T)
    # A_ij = [j ≤ i]
    return j <= i


def atrous_mask(T, rate, causal=False):
    r"""Atrous ("dilated") self-attention: a query sees the keys whose distance is a multiple of R.

    .. math:: A_{ij} = [\, (i - j) \bmod R = 0 \,] \;\wedge\; [\, j \le i \,]_{\text{causal}}

    Parameters
    ----------
    T : int ≥ 1, the sequence length.
    rate : int R ≥ 1. R = 1 is full attention; R ≥ T leaves only the diagonal.
    causal : bool, AND the pattern with :func:`causal_mask`.

    Returns
    -------
    bool array (T, T). Row i has ⌊(T − 1 − (i mod R)) / R⌋ + 1 allowed keys (non-causal).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Atrous Self Attention" (cost O(T²/R)). It is full
    attention inside each of the R interleaved subsequences {t ≡ s (mod R)}. OpenAI's
    ``strided`` factor is its causal version (:func:`strided_mask`).

    Examples
    --------
    >>> print(format_mask(atrous_mask(5, 2)))
    # . # . #
    . # . # .
    # . # . #
    . # . # .
    # . # . #
    """
    R = _int_at_least(rate, "rate", 1)
    i, j = _positions(T)
    # A_ij = [(i − j) mod R = 0]
    allowed = (i - j) % R == 0
    return allowed & (j <= i) if causal else allowed


def local_mask(T, neighbors, causal=False):
    r"""Local self-attention: a query sees the W neighbours on each side and itself.

    .. math:: A_{ij} = [\, |i - j| \le W \,] \;\wedge\; [\, j \le i \,]_{\text{causal}}

    Parameters
    ----------
    T : int ≥ 1, the sequence length.
    neighbors : int W ≥ 1, the half-window; the full window has 2W + 1 positions, fewer at
        the edges (no padding key is ever counted). W ≥ T − 1 is full attention.
    causal : bool, AND with :func:`causal_mask` (then the window is the last W + 1 positions).

    Returns
    -------
    bool array (T, T). Row i has min(i, W) + min(T − 1 − i, W) + 1 allowed keys (non-causal).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Local Self Attention". Peers: OpenAI's ``local``
    with bandwidth l is the causal version with W = l − 1 (:func:`openai_local_mask`);
    xformers' ``local_1d_pattern(T, w)`` (w odd) is W = w // 2.

    Examples
    --------
    >>> print(format_mask(local_mask(5, 1)))
    # # . . .
    # # # . .
    . # # # .
    . . # # #
    . . . # #
    """
    W = _int_at_least(neighbors, "neighbors", 1)
    i, j = _positions(T)
    # A_ij = [|i − j| ≤ W]
    allowed = onp.abs(i - j) <= W
    return allowed & (j <= i) if causal else allowed


def sparse_mask(T, rate, causal=False):
    r"""The post's Sparse self-attention: local up to distance R, atrous beyond.

    .. math:: A_{ij} = \big([\, |i - j| \le R \,] \vee [\, (i - j) \bmod R = 0 \,]\big)
              \wedge [\, j \le i \,]_{\text{causal}}

    Parameters
    ----------
    T : int ≥ 1, the sequence length.
    rate : int R ≥ 1 (the post's k for both the stride and the local range).
    causal : bool, AND with :func:`causal_mask`.

    Returns
    -------
    bool array (T, T), the union ``local_mask(T, R) | atrous_mask(T, R)``; since distance R is a
    multiple of R, it also equals ``local_mask(T, R - 1) | atrous_mask(T, R)`` (for R ≥ 2).

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Sparse Self Attention" (OpenAI's two factors
    merged into one attention). The author's Keras ``SparseSelfAttention`` departs from this
    (a dilated local branch, double counting): see ``compat="keras"`` in
    :mod:`kexue_ref.sparse_attention`.

    Examples
    --------
    >>> print(format_mask(sparse_mask(6, 2)))
    # # # . # .
    # # # # . #
    # # # # # .
    . # # # # #
    # . # # # #
    . # . # # #
    """
    R = _int_at_least(rate, "rate", 1)
    i, j = _positions(T)
    # A_ij = [|i − j| ≤ R] ∨ [(i − j) mod R = 0]
    allowed = (onp.abs(i - j) <= R) | ((i - j) % R == 0)
    return allowed & (j <= i) if causal else allowed


def strided_mask(T, stride):
    r"""OpenAI's ``strided`` factor: causal atrous attention.

    .. math:: A_{ij} = [\, j \le i \,] \wedge [\, (i - j) \bmod l = 0 \,]

    Parameters
    ----------
    T : int ≥ 1.
    stride : int l ≥ 1.

    Returns
    -------
    bool array (T, T), equal to ``atrous_mask(T, stride, causal=True)``.

    Notes
    -----
    Source: arXiv 1904.10509 §4.2; ``openai/sparse_attention`` ``attention.py``,
    ``get_attn_mask(n, "strided", local_attn_ctx=l)`` (always causal; OpenAI ships the two
    factors as separate heads or layers, see openai/sparse_attention#7).
    """
    l = _int_at_least(stride, "stride", 1)
    i, j = _positions(T)
    # A_ij = [j ≤ i] ∧ [(i − j) mod l = 0]
    return (j <= i) & ((i - j) % l == 0)


def openai_local_mask(T, bandwidth):
    r"""OpenAI's ``local`` factor: the last ``bandwidth`` keys, the query included.

    .. math:: A_{ij} = [\, i - l < j \le i \,]

    Parameters
    ----------
    T : int ≥ 1.
    bandwidth : int l ≥ 1.

    Returns
    -------
    bool array (T, T), equal to ``local_mask(T, l - 1, causal=True)`` for l ≥ 2 (l = 1 is the
    diagonal).

    Notes
    -----
    Source: ``openai/sparse_attention`` ``attention.py``, ``get_attn_mask(n, "local")``, which
    keeps min(n − 1, l − 1) sub-diagonals of the lower triangle; arXiv 1904.10509 §4.2.
    """
    l = _int_at_least(bandwidth, "bandwidth", 1)
    i, j = _positions(T)
    # A_ij = [i − l < j ≤ i]
    return (j <= i) & (j > i - l)


def openai_fixed_layout(n_blocks, stride, heads=1, num_verts=1, vertsize=1):
    r"""OpenAI's block-level ``fixed`` pattern: local windows of blocks plus "summary" blocks.

    With blocks r (query) and c (key), window size ``stride`` in blocks and head h:

    .. math:: L_{hrc} = [\, c \le r \,] \wedge \Big( [\, \lfloor c / s \rfloor = \lfloor r / s
              \rfloor \,] \vee [\, c \bmod s \in S_h \,] \Big), \quad
              S_h = \{ s - 1 - v\,u - t : t = 0..v-1 \},\ u = h \bmod n_v

    where s = ``stride``, v = ``vertsize``, n_v = ``num_verts``: head h uses the u-th group of v
    summary positions counted from the *end* of each window (the last block of every window for
    the default v = n_v = 1).

    Parameters
    ----------
    n_blocks : int n ≥ 1, the number of blocks (``n_ctx // blocksize`` in OpenAI's code).
    stride : int s ≥ 1, the window length in blocks (``local_attn_ctx // blocksize``).
    heads : int ≥ 1, with ``heads % num_verts == 0``.
    num_verts : int n_v ≥ 1, how many different summary groups rotate over the heads
        (at most s / v).
    vertsize : int v ≥ 1, summary blocks per window, dividing s.

    Returns
    -------
    bool array (heads, n, n). Expand with :func:`layout_to_mask`; OpenAI's kernel then also
    masks j > i *inside* the diagonal blocks, i.e. the token pattern is
    ``layout_to_mask(L, block) & causal_mask(n * block)``.

    Notes
    -----
    Source: ``openai/sparse_attention`` ``attention.py`` ``get_blocksparse_obj`` (mode
    ``"fixed"``) and its ``get_callback``; arXiv 1904.10509 §4.2 ("fixed" attention, Fig. 3c).
    DeepSpeed's ``FixedSparsityConfig`` also puts the global blocks at the end of each window;
    fairseq and LRA differ by one position (``docs/sparse_attention.md``, conventions table).

    Examples
    --------
    >>> print(format_mask(openai_fixed_layout(6, 3)[0]))
    # . . . . .
    # # . . . .
    # # # . . .
    . . # # . .
    . . # # # .
    . . # # # #
    """
    n = _int_at_least(n_blocks, "n_blocks", 1)
    s = _int_at_least(stride, "stride", 1)
    heads = _int_at_least(heads, "heads", 1)
    nv = _int_at_least(num_verts, "num_verts", 1)
    v = _int_at_least(vertsize, "vertsize", 1)
    if s % v != 0:
        raise ValueError(f"vertsize must divide stride, got vertsize={v}, stride={s}")
    if nv > s // v:
        raise ValueError(f"num_verts must be <= stride // vertsize = {s // v}, got {nv}")
    if heads % nv != 0:
        raise ValueError(f"heads must be a multiple of num_verts, got heads={heads}, num_verts={nv}")
    r, c = _positions(n)                                   # block rows r, block columns c
    layouts = []
    for h in range(heads):
        u = h % nv
        # S_h = {s − 1 − v·u − t : t = 0..v−1}, the summary offsets inside each window
        summary = onp.isin(c % s, [s - 1 - v * u - t for t in range(v)])   # (1, n)
        # L_hrc = [c ≤ r] ∧ ([⌊c/s⌋ = ⌊r/s⌋] ∨ [c mod s ∈ S_h])
        layouts.append((c <= r) & ((c // s == r // s) | summary))
    return onp.stack(layouts)                              # (heads, n, n)


def _bool_array(x, name):
    arr = onp.asarray(x)
    if arr.dtype != onp.bool_:
        raise TypeError(f"{name} must be a boolean array (True = may attend), got dtype {arr.dtype}")
    return arr


def mask_to_layout(mask, block):
    r"""Block layout of a token mask: a block is on if **any** token pair in it is on.

    .. math:: L_{rc} = \bigvee_{i \in \text{block } r,\ j \in \text{block } c} A_{ij}

    Parameters
    ----------
    mask : bool array (..., Tq, Tk).
    block : int ≥ 1, the block size. When T is not a multiple of it the last block is partial
        (its missing tokens count as off).

    Returns
    -------
    bool array (..., ⌈Tq/block⌉, ⌈Tk/block⌉).

    Notes
    -----
    Source: the block-sparse kernels of arXiv 1904.10509 and DeepSpeed/xformers work on such
    layouts (``docs/sparse_attention.md``). Semantics (stated here, not taken from a peer): "any" is max-pooling, as xformers'
    ``pattern_to_layout``, so ``layout_to_mask(mask_to_layout(A))`` **covers** A (a superset),
    and equals it exactly when A is block-aligned; a kernel driven by the layout alone attends
    more pairs than A. ``mask_to_layout(layout_to_mask(L)) == L`` always.

    Examples
    --------
    >>> print(format_mask(mask_to_layout(local_mask(6, 1), 2)))
    # # .
    # # #
    . # #
    """
    A = _bool_array(mask, "mask")
    if A.ndim < 2:
        raise ValueError(f"mask must have shape (..., Tq, Tk), got shape {A.shape}")
    b = _int_at_least(block, "block", 1)
    Tq, Tk = A.shape[-2:]
    nq, nk = -(-Tq // b), -(-Tk // b)
    # pad with "off" up to whole blocks, then OR over each b × b tile
    padded = onp.zeros(A.shape[:-2] + (nq * b, nk * b), dtype=bool)
    padded[..., :Tq, :Tk] = A
    tiles = padded.reshape(A.shape[:-2] + (nq, b, nk, b))             # (..., nq, b, nk, b)
    return tiles.any(axis=(-3, -1))                                   # (..., nq, nk)


def layout_to_mask(layout, block, T=None):
    r"""Token mask of a block layout: every token pair of an "on" block is on.

    .. math:: A_{ij} = L_{\lfloor i / b \rfloor\, \lfloor j / b \rfloor}

    Parameters
    ----------
    layout : bool array (..., nq, nk).
    block : int b ≥ 1.
    T : None or int, crop both token axes to T (default: nq·b and nk·b, no cropping).

    Returns
    -------
    bool array (..., nq·b, nk·b), or (..., T, T) when T is given.

    Notes
    -----
    Source: the Kronecker expansion of xformers' ``layout_to_pattern``; OpenAI's blocksparse kernels
    additionally apply a per-block callback (e.g. causal inside diagonal blocks).
    """
    L = _bool_array(layout, "layout")
    if L.ndim < 2:
        raise ValueError(f"layout must have shape (..., nq, nk), got shape {L.shape}")
    b = _int_at_least(block, "block", 1)
    # A_ij = L[i // b, j // b]
    A = onp.repeat(onp.repeat(L, b, axis=-2), b, axis=-1)
    if T is not None:
        T = _int_at_least(T, "T", 1)
        if T > min(A.shape[-2:]):
            raise ValueError(f"T = {T} exceeds the layout's token size {A.shape[-2:]}")
        A = A[..., :T, :T]
    return A


def row_counts(mask):
    r"""The number of allowed keys of every query row, :math:`\sum_j A_{ij}`.

    Parameters
    ----------
    mask : bool array (..., Tq, Tk).

    Returns
    -------
    int64 array (..., Tq).

    Notes
    -----
    Source: https://kexue.fm/archives/6853 (the cost of each pattern is its total count).
    """
    return _bool_array(mask, "mask").sum(axis=-1, dtype=onp.int64)


def key_index_from_mask(mask):
    r"""Per-row key lists of a (T, Tk) mask, the input of ``indexed_attention``.

    .. math:: \mathrm{key\_index}_i = (j_1 < j_2 < \dots < j_{n_i}, -1, \dots, -1), \qquad
              \{j_1, \dots, j_{n_i}\} = \{ j : A_{ij} \}

    Parameters
    ----------
    mask : bool array (T, Tk).

    Returns
    -------
    int64 array (T, Kmax), Kmax = max(1, largest row count): row i lists the allowed key
    positions j in increasing order, padded with −1 at the end.

    Notes
    -----
    Source: the per-query key lists of sparse kernels (https://kexue.fm/archives/6853 patterns
    as row iterations). Inverse of :func:`mask_from_key_index`.

    Examples
    --------
    >>> key_index_from_mask(local_mask(3, 1)).tolist()
    [[0, 1, -1], [0, 1, 2], [1, 2, -1]]
    """
    A = _bool_array(mask, "mask")
    if A.ndim != 2:
        raise ValueError(f"mask must have shape (T, Tk), got shape {A.shape}")
    kmax = max(1, int(A.sum(axis=1).max())) if A.size else 1
    out = onp.full((A.shape[0], kmax), -1, dtype=onp.int64)
    for i, row in enumerate(A):
        js = onp.flatnonzero(row)
        out[i, :js.size] = js
    return out


def mask_from_key_index(key_index, Tk):
    r"""The (T, Tk) boolean mask of per-row key lists (−1 entries are padding).

    .. math:: A_{ij} = [\, j \in \mathrm{key\_index}_i \,]

    Parameters
    ----------
    key_index : int array (T, Kmax), entries in [−1, Tk).
    Tk : int ≥ 1, the number of keys.

    Returns
    -------
    bool array (T, Tk).

    Notes
    -----
    Source: the inverse of :func:`key_index_from_mask`. No ordering check here; ``indexed_attention`` validates its lists.
    """
    idx = onp.asarray(key_index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"key_index must be an integer array, got dtype {idx.dtype}")
    if idx.ndim != 2:
        raise ValueError(f"key_index must have shape (T, Kmax), got shape {idx.shape}")
    Tk = _int_at_least(Tk, "Tk", 1)
    if idx.size and (idx.min() < -1 or idx.max() >= Tk):
        raise ValueError(f"key_index entries must lie in [-1, {Tk}), got values in "
                         f"[{idx.min()}, {idx.max()}]")
    T = idx.shape[0]
    A = onp.zeros((T, Tk), dtype=bool)
    rows, cols = onp.nonzero(idx >= 0)
    A[rows, idx[rows, cols]] = True
    return A


def format_mask(mask, on="#", off="."):
    """An ASCII picture of a 2-D mask, one text line per query row (row 0 at the top).

    Parameters
    ----------
    mask : bool array (Tq, Tk).
    on, off : the characters for allowed and disallowed pairs.

    Returns
    -------
    str, Tq lines of Tk characters separated by spaces.

    Notes
    -----
    The layout of the post's pattern figures (https://kexue.fm/archives/6853): query i is
    row i, key j is column j.
    """
    A = _bool_array(mask, "mask")
    if A.ndim != 2:
        raise ValueError(f"mask must be 2-D (Tq, Tk), got shape {A.shape}")
    return "\n".join(" ".join(on if a else off for a in row) for row in A)
