r"""Convolutions as matrices: im2col patches and the Keras / PyTorch kernel layouts.

Post: https://kexue.fm/archives/7169 treats a fully connected layer Y = XW only. A convolution
is the same product once each patch of the input is a row (a sample, :func:`im2col`) and each
output channel a column (a filter, :func:`kernel_matrix`); that reading is a library choice,
``docs/orthogonality.md`` §"Convolutions". Layouts: ``keras.layers.Conv2D`` stores
(kh, kw, C_in, C_out), ``torch.nn.Conv2d`` (C_out, C_in, kh, kw); SRIP's Keras regulariser
(``VITA-Group/Orthogonality-in-CNNs`` ``ResNet/resnet_cifar_new.py``) reshapes the former to
(kh·kw·C_in, C_out), the order used here.

Image shapes are spelled out (B, H_in, W_in, C_in): the legend of ``docs/conventions.md`` has no
letters for image height, width or channels. Nothing here mutates its inputs; everything is
traceable by autograd.
"""
import numbers

import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import check_choice, check_int, value_of
from kexue_ref.orthogonality._common import _array

__all__ = ["im2col", "torch_to_keras_kernel", "keras_to_torch_kernel", "kernel_matrix"]


def im2col(x, kernel_size, *, stride=1, padding=0, dilation=1, data_format="channels_last"):
    r"""Unfold a 1-D or 2-D input into patches, one row per output position (each a SOM sample).

    .. math:: P_{(b,i,j),\,(a,c,q)} = x^{\mathrm{pad}}_{b,\; i s_h + a d_h,\; j s_w + c d_w,\; q}

    so that ``im2col(x, k) @ kernel_matrix(w)`` is the convolution (cross-correlation, as in
    every deep-learning framework) of ``x`` with ``w``, flattened over (B, H_out, W_out).

    Parameters
    ----------
    x : array (B, L_in, C_in) or (B, H_in, W_in, C_in) with ``data_format="channels_last"``
        (Keras); (B, C_in, L_in) or (B, C_in, H_in, W_in) with "channels_first" (PyTorch).
    kernel_size : int or one int per spatial axis (kh, kw), each ≥ 1.
    stride, dilation : int or one int per spatial axis, each ≥ 1.
    padding : zeros added on each side: an int, one int per spatial axis, or one
        (before, after) pair per spatial axis (Keras "same" with an even kernel is asymmetric).
    data_format : "channels_last" (default) or "channels_first".

    Returns
    -------
    array (B·L_out, k·C_in) or (B·H_out·W_out, kh·kw·C_in); row (b, i, j) in row-major order;
    columns in (tap_h, tap_w, channel) order whatever ``data_format`` is, matching
    :func:`kernel_matrix`. ``H_out = ⌊(H_in + pad_h − d_h (kh − 1) − 1) / s_h⌋ + 1``.

    Notes
    -----
    Source: a library ``decision`` (``docs/orthogonality.md``): for convolutions each im2col
    patch is one sample, B·H_out·W_out rows of length kh·kw·C_in; the post treats a fully
    connected layer only.

    Examples
    --------
    >>> im2col(onp.arange(5.0).reshape(1, 5, 1), 3).tolist()
    [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]
    """
    x = _array(x, "x")
    check_choice(data_format, "data_format", ("channels_last", "channels_first"))
    shape = value_of(x).shape
    if len(shape) not in (3, 4):
        legend = ("(B, L_in, C_in) or (B, H_in, W_in, C_in)" if data_format == "channels_last"
                  else "(B, C_in, L_in) or (B, C_in, H_in, W_in)")
        raise ValueError(f"x must have shape {legend} ({data_format}), got shape {shape}")
    if 0 in shape:
        raise ValueError(f"x must not be empty, got shape {shape}")
    n = len(shape) - 2
    k = _per_axis(kernel_size, n, "kernel_size")
    s = _per_axis(stride, n, "stride")
    d = _per_axis(dilation, n, "dilation")
    pads = _padding(padding, n)
    if data_format == "channels_first":
        # (B, C_in, *spatial) → (B, *spatial, C_in)
        x = np.moveaxis(x, 1, -1)
    if n == 1:
        # a 1-D input is a 2-D input of height 1 with a kernel of height 1
        x = x[:, None, :, :]                                             # (B, 1, L_in, C_in)
        k, s, d, pads = (1,) + k, (1,) + s, (1,) + d, ((0, 0),) + pads
    B, H, W, C = value_of(x).shape
    out = []
    for axis, size in enumerate((H, W)):
        span = d[axis] * (k[axis] - 1) + 1
        padded = size + sum(pads[axis])
        if span > padded:
            raise ValueError(f"kernel_size {k[axis]} with dilation {d[axis]} spans {span} positions, "
                             f"more than the padded input length {padded} along spatial axis {axis - 2 + n}")
        out.append((padded - span) // s[axis] + 1)
    H_out, W_out = out
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), "constant")      # (B, H_pad, W_pad, C_in)
    # row of tap a at output row i: i·s_h + a·d_h; column of tap c at output column j: j·s_w + c·d_w
    rows = onp.arange(H_out)[:, None] * s[0] + onp.arange(k[0])[None, :] * d[0]   # (H_out, kh)
    cols = onp.arange(W_out)[:, None] * s[1] + onp.arange(k[1])[None, :] * d[1]   # (W_out, kw)
    patches = xp[:, rows[:, None, :, None], cols[None, :, None, :], :]  # (B, H_out, W_out, kh, kw, C_in)
    return np.reshape(patches, (B * H_out * W_out, k[0] * k[1] * C))


def torch_to_keras_kernel(w):
    r"""A PyTorch weight (out, in, *spatial) as a Keras kernel (*spatial, in, out).

    .. math:: K_{a,c,q,m} = W_{m,q,a,c}

    Parameters
    ----------
    w : array (C_out, C_in) (Linear), (C_out, C_in, k) (Conv1d) or (C_out, C_in, kh, kw) (Conv2d).

    Returns
    -------
    array (C_in, C_out), (k, C_in, C_out) or (kh, kw, C_in, C_out): a transpose, never a
    reshape. ``w.reshape(-1, C_out)`` reinterprets memory and scrambles the filters.

    Notes
    -----
    Source: ``docs/orthogonality.md``, "Convolutions" (the recurring port error ``view(in·kh·kw, out)`` on a
    (out, in, kh, kw) weight); ``torch.nn.Conv2d`` and ``keras.layers.Conv2D`` weight layouts.

    Examples
    --------
    >>> torch_to_keras_kernel(onp.zeros((8, 3, 5, 4))).shape
    (5, 4, 3, 8)
    """
    w = _array(w, "w")
    nd = _kernel_ndim(w, "(C_out, C_in, *spatial)")
    # (out, in, k_1, …) → (k_1, …, in, out)
    return np.transpose(w, tuple(range(2, nd)) + (1, 0))


def keras_to_torch_kernel(w):
    r"""A Keras kernel (*spatial, in, out) as a PyTorch weight (out, in, *spatial).

    .. math:: W_{m,q,a,c} = K_{a,c,q,m}

    Parameters
    ----------
    w : array (C_in, C_out) (Dense), (k, C_in, C_out) (Conv1D) or (kh, kw, C_in, C_out) (Conv2D).

    Returns
    -------
    array (C_out, C_in), (C_out, C_in, k) or (C_out, C_in, kh, kw); the inverse of
    :func:`torch_to_keras_kernel`.

    Notes
    -----
    Source: as :func:`torch_to_keras_kernel`.

    Examples
    --------
    >>> keras_to_torch_kernel(onp.zeros((5, 4, 3, 8))).shape
    (8, 3, 5, 4)
    """
    w = _array(w, "w")
    nd = _kernel_ndim(w, "(*spatial, C_in, C_out)")
    # (k_1, …, in, out) → (out, in, k_1, …)
    return np.transpose(w, (nd - 1, nd - 2) + tuple(range(nd - 2)))


def kernel_matrix(w, layout="keras"):
    r"""The (kh·kw·C_in, C_out) matrix view of a kernel: column m is filter m.

    .. math:: W_{(a,c,q),\,m} = K_{a,c,q,m}

    Parameters
    ----------
    w : array, a Keras kernel (*spatial, C_in, C_out) with ``layout="keras"`` (default) or a
        PyTorch weight (C_out, C_in, *spatial) with ``layout="torch"``; 2-D for dense layers.
    layout : "keras" or "torch".

    Returns
    -------
    array (D, M) = (kh·kw·C_in, C_out), rows in (tap_h, tap_w, channel) order, the order of
    :func:`im2col`'s columns; ready for :func:`som_penalty` and the classic penalties.

    Notes
    -----
    Source: SRIP's Keras regulariser reshapes (kh, kw, in, out) to (kh·kw·in, out).
    A PyTorch weight is transposed first (:func:`torch_to_keras_kernel`). The Gram matrix of
    the filters does not depend on the order inside a filter, so the classic penalties agree
    with BigGAN's ``w.view(out, -1)`` rows (``filters="rows"``).

    Examples
    --------
    >>> kernel_matrix(onp.zeros((8, 3, 5, 4)), layout="torch").shape
    (60, 8)
    """
    check_choice(layout, "layout", ("keras", "torch"))
    w = torch_to_keras_kernel(w) if layout == "torch" else _array(w, "w")
    if layout == "keras":
        _kernel_ndim(w, "(*spatial, C_in, C_out)")
    # (k_1, …, in, out) → (k_1·…·in, out)
    return np.reshape(w, (-1, value_of(w).shape[-1]))


def _kernel_ndim(w, legend):
    shape = value_of(w).shape
    if len(shape) < 2:
        raise ValueError(f"w must have shape {legend} with at least 2 dimensions, got shape {shape}")
    return len(shape)


def _per_axis(value, n, name):
    """An int ≥ 1 for every spatial axis (an int applies to all of them)."""
    values = (value,) * n if isinstance(value, (numbers.Integral, onp.integer)) else value
    if isinstance(values, bool) or not isinstance(values, (tuple, list)) or len(values) != n:
        raise ValueError(f"{name} must be an int or {n} int(s), one per spatial axis, got {value!r}")
    return tuple(check_int(v, name, min_value=1) for v in values)


def _padding(value, n):
    """((before, after), …) per spatial axis from an int, n ints or n pairs, all ≥ 0."""
    if isinstance(value, (numbers.Integral, onp.integer)) and not isinstance(value, bool):
        value = (value,) * n
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise ValueError(f"padding must be an int, {n} int(s) or {n} (before, after) pair(s), got {value!r}")
    pads = []
    for p in value:
        pair = tuple(p) if isinstance(p, (tuple, list)) else (p, p)
        if len(pair) != 2:
            raise ValueError(f"padding pairs must be (before, after), got {p!r}")
        pads.append(tuple(check_int(q, "padding", min_value=0) for q in pair))
    return tuple(pads)
