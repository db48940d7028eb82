r"""Multi-head self-attention of the DGCNN extractor: no Q/K/V bias, masked keys, optional query mask.

Post: https://kexue.fm/archives/6671 ("self attention" after the encoder); author code
``bojone/kg-2019`` ``kg_without_ds.py`` class ``Attention`` (8 heads × 16, called as
``Attention(8, 16)([t, t, t, mask])``: only the key mask is passed).

Notation: X (B, T, D_in) the encoder output; W_Q, W_K, W_V (D_in, H·D) without bias; H heads of
size D. Masks follow D4: True = valid token; a key that is not valid gets weight 0.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, check_ndim, value_of
from kexue_ref.dgcnn.conv import _check_mask

__all__ = ["multihead_attention"]

#: The additive key-mask constant of the author's code (``x - (1 - mask) * 1e10``).
KERAS_MASK_CONSTANT = 1e10


def multihead_attention(x, mask, wq, wk, wv, heads, compat=None):
    r"""Multi-head scaled dot-product self-attention with masked keys.

    .. math:: Q = X W_Q,\; K = X W_K,\; V = X W_V \ \text{(split into H heads of size D)}

    .. math:: A_{hij} = \frac{[m_j]\, \exp(Q_{hi} \cdot K_{hj} / \sqrt{D})}
              {\sum_{j': m_{j'}} \exp(Q_{hi} \cdot K_{hj'} / \sqrt{D})}, \qquad
              O_{hi} = m_i \sum_j A_{hij} V_{hj}

    Parameters
    ----------
    x : array (B, T, D_in).
    mask : bool array (B, T), True at valid tokens, or None (all valid).
    wq, wk, wv : arrays (D_in, H·D), no bias (as the code).
    heads : int H; the head size D is the second axis of ``wq`` divided by H.
    compat : None (default) or "keras".
        None: the key mask is exact (D4: masked keys get weight 0, a sample with no valid token
        gives 0) and rows of padded *queries* are zeroed (the ``m_i`` factor above), so the output
        at padding is 0.
        "keras": the author's code: scores − 1e10·(1 − m_j), an ordinary softmax, and padded
        query rows are **not** zeroed. Those rows hold an average of the valid values; the next
        Conv1D (kernel 3) reads them at the last valid character, so batched results depend on
        the amount of padding (the *padding leak*, see ``docs/dgcnn.md``).

    Returns
    -------
    array (B, T, H·D), the heads concatenated in order.

    Notes
    -----
    Source: https://kexue.fm/archives/6671; ``bojone/kg-2019`` ``Attention`` (scores divided by
    √D with D = ``size_per_head``). Masked softmax: ``kexue_ref._numerics._masked_softmax`` (D4).
    In float64 the keras form agrees with the default at valid queries to ~e^{-1e10}, i.e. exactly.
    The 1e10 penalty is applied relative to its minimum over the keys of the sample (the same
    softmax), so a sample with no valid key gets the exact plain softmax of its scores rather
    than scores rounded to the spacing of 1e10 (2e-6 in float64).
    """
    x = as_float(x, "x")
    check_float_array(x, "x")
    B, T, Din = check_ndim(x, "x", 3, "(B, T, D)")
    H = check_int(heads, "heads", min_value=1)
    ws = []
    for name, w in (("wq", wq), ("wk", wk), ("wv", wv)):
        w = as_float(w, name)
        check_float_array(w, name)
        if value_of(w).ndim != 2 or value_of(w).shape[0] != Din:
            raise ValueError(f"{name} must have shape (D_in, H·D) with D_in = {Din}, got {value_of(w).shape}")
        if value_of(w).shape[1] % H:
            raise ValueError(f"{name} has {value_of(w).shape[1]} columns, not a multiple of heads = {H}")
        ws.append(w)
    if not value_of(ws[0]).shape == value_of(ws[1]).shape == value_of(ws[2]).shape:
        raise ValueError("wq, wk and wv must have the same shape (D_in, H·D), got "
                         f"{[value_of(w).shape for w in ws]}")
    mask = _check_mask(mask, B, T)
    check_choice(compat, "compat", (None, "keras"))
    return _attention(x, mask, *ws, H, compat)


def _attention(x, mask, wq, wk, wv, H, compat):
    B, T, _ = value_of(x).shape
    D = value_of(wq).shape[1] // H
    dt = value_of(x).dtype

    def split(z):                       # (B, T, H·D) -> (B, H, T, D)
        return np.transpose(np.reshape(z, (B, T, H, D)), (0, 2, 1, 3))

    # Q = X W_Q, K = X W_K, V = X W_V, split into heads
    q, k, v = split(np.matmul(x, wq)), split(np.matmul(x, wk)), split(np.matmul(x, wv))   # (B, H, T, D)
    # S_hij = Q_hi · K_hj / √D
    s = np.matmul(q, np.swapaxes(k, 2, 3)) / onp.asarray(onp.sqrt(D), dt)     # (B, H, T, T)
    if mask is None:
        a = nx._softmax(s, 3)
    elif compat == "keras":
        # the code: S − 1e10·(1 − m_j), then an ordinary softmax (queries unmasked). The penalty
        # is taken relative to its smallest value in the sample (softmax is shift-invariant):
        # 0 at valid keys, and 0 at every key of a sample without a valid one, whose row is then
        # the plain softmax of S instead of S − 1e10 rounded to the 2e-6 spacing of 1e10.
        pen = onp.asarray(KERAS_MASK_CONSTANT, dt) * (1 - mask.astype(dt))                 # (B, T)
        pen = pen - pen.min(axis=1, keepdims=True, initial=onp.inf)
        a = nx._softmax(s - pen[:, None, None, :], 3)
    else:
        # A_hij = softmax over the valid keys j (exact, D4)
        a = nx._masked_softmax(s, mask[:, None, None, :], 3)
    # O_hi = Σ_j A_hij V_hj, heads concatenated
    o = np.reshape(np.transpose(np.matmul(a, v), (0, 2, 1, 3)), (B, T, H * D))  # (B, T, H·D)
    if mask is not None and compat is None:
        # zero the rows of padded queries (the D4 library decision)
        o = o * mask[..., None]
    return o
