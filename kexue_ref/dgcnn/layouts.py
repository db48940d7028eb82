r"""Weight-layout converters between Keras (the author's code) and PyTorch (most ports).

* ``Conv1D``: Keras kernel (k, D_in, D_out) ↔ PyTorch ``nn.Conv1d.weight`` (D_out, D_in, k).
* ``Dense``: Keras kernel (D_in, D_out) ↔ PyTorch ``nn.Linear.weight`` (D_out, D_in).
* GRU: Keras (``reset_after=True``) W (D_in, 3N), U (N, 3N) columns [z | r | h], bias (2, 3N)
  ↔ PyTorch ``weight_ih`` (3N, D_in), ``weight_hh`` (3N, N) rows [r | z | n], ``bias_ih``,
  ``bias_hh`` (3N,).

Both frameworks compute a cross-correlation; only the axis order differs. :func:`conv1d_torch`
is a NumPy reading of PyTorch's ``F.conv1d`` with ``padding=(k // 2)·r`` (what ports write for
'same'), so the conversions can be checked without torch. All maps here are exact (pure
transposes and permutations) and traceable by autograd.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_float_array, check_int, check_ndim, value_of

__all__ = ["conv1d_keras_to_torch", "conv1d_torch_to_keras", "dense_keras_to_torch",
           "dense_torch_to_keras", "gru_keras_to_torch", "conv1d_torch"]


def conv1d_keras_to_torch(w):
    r"""Keras ``Conv1D`` kernel → PyTorch ``Conv1d`` weight.

    .. math:: W^{\text{torch}}_{o,i,j} = W^{\text{keras}}_{j,i,o}

    Parameters
    ----------
    w : array (k, D_in, D_out).

    Returns
    -------
    array (D_out, D_in, k).

    Notes
    -----
    Source: Keras ``Conv1D`` and PyTorch ``nn.Conv1d`` documentation (their kernel layouts);
    ``docs/dgcnn.md`` §11.

    Examples
    --------
    >>> conv1d_keras_to_torch(onp.zeros((3, 4, 5))).shape
    (5, 4, 3)
    """
    w = _array(w, "w", 3, "(k, D_in, D_out)")
    return np.transpose(w, (2, 1, 0))


def conv1d_torch_to_keras(w):
    r"""PyTorch ``Conv1d`` weight → Keras ``Conv1D`` kernel (the inverse of :func:`conv1d_keras_to_torch`).

    .. math:: W^{\text{keras}}_{j,i,o} = W^{\text{torch}}_{o,i,j}

    Parameters
    ----------
    w : array (D_out, D_in, k).

    Returns
    -------
    array (k, D_in, D_out).

    Notes
    -----
    Source: Keras ``Conv1D`` and PyTorch ``nn.Conv1d`` documentation; ``docs/dgcnn.md`` §11.
    """
    w = _array(w, "w", 3, "(D_out, D_in, k)")
    return np.transpose(w, (2, 1, 0))


def dense_keras_to_torch(w):
    r"""Keras ``Dense`` kernel → PyTorch ``Linear`` weight (a transpose; ``y = x W`` vs ``y = x Wᵀ``).

    .. math:: W^{\text{torch}} = (W^{\text{keras}})^{\top}

    Parameters
    ----------
    w : array (D_in, D_out).

    Returns
    -------
    array (D_out, D_in).

    Notes
    -----
    Source: Keras ``Dense`` (y = x W) and PyTorch ``nn.Linear`` (y = x Wᵀ + b) documentation;
    ``docs/dgcnn.md`` §11.
    """
    return np.transpose(_array(w, "w", 2, "(D_in, D_out)"))


def dense_torch_to_keras(w):
    r"""PyTorch ``Linear`` weight → Keras ``Dense`` kernel.

    .. math:: W^{\text{keras}} = (W^{\text{torch}})^{\top}

    Parameters
    ----------
    w : array (D_out, D_in).

    Returns
    -------
    array (D_in, D_out).

    Notes
    -----
    Source: Keras ``Dense`` and PyTorch ``nn.Linear`` documentation; ``docs/dgcnn.md`` §11.
    """
    return np.transpose(_array(w, "w", 2, "(D_out, D_in)"))


def gru_keras_to_torch(w, u, b):
    r"""Keras GRU (``reset_after=True`` / ``CuDNNGRU``) weights → PyTorch ``nn.GRU`` parameters.

    .. math:: W_{ih} = [W_r \,;\, W_z \,;\, W_h]^{\top}, \quad W_{hh} = [U_r \,;\, U_z \,;\, U_h]^{\top},
              \quad b_{ih} = [b^x_r, b^x_z, b^x_h], \quad b_{hh} = [b^h_r, b^h_z, b^h_h]

    Parameters
    ----------
    w : array (D_in, 3N), Keras columns [z | r | h].
    u : array (N, 3N).
    b : array (2, 3N), rows [input bias; recurrent bias].

    Returns
    -------
    (weight_ih (3N, D_in), weight_hh (3N, N), bias_ih (3N,), bias_hh (3N,)), PyTorch rows [r | z | n].

    Notes
    -----
    Source: PyTorch ``nn.GRU`` documentation (gate order r, z, n; n = tanh(W_in x + b_in +
    r ⊙ (W_hn h + b_hn))), the same equations as :func:`kexue_ref.dgcnn.gru`.
    """
    w = _array(w, "w", 2, "(D_in, 3N)")
    u = _array(u, "u", 2, "(N, 3N)")
    b = _array(b, "b", 2, "(2, 3N)")
    N = value_of(u).shape[0]
    if value_of(w).shape[1] != 3 * N or value_of(u).shape[1] != 3 * N or value_of(b).shape != (2, 3 * N):
        raise ValueError(f"GRU weights must be w (D_in, 3N), u (N, 3N), b (2, 3N) with N = {N}, got "
                         f"{value_of(w).shape}, {value_of(u).shape}, {value_of(b).shape}")
    # Keras [z | r | h] → PyTorch [r | z | n]
    order = onp.concatenate([onp.arange(N, 2 * N), onp.arange(0, N), onp.arange(2 * N, 3 * N)])
    return np.transpose(w[:, order]), np.transpose(u[:, order]), b[0, order], b[1, order]


def conv1d_torch(x, weight, bias=None, dilation=1):
    r"""PyTorch's ``F.conv1d`` in NumPy, channels-first, with the 'same'-for-odd-k padding of ports.

    .. math:: y_{b,o,t} = \mathrm{bias}_o + \sum_{i} \sum_{j=0}^{k-1}
              \mathrm{weight}_{o,i,j}\, x_{b,i,\,t + j r - p}, \qquad p = \lfloor k/2 \rfloor\, r

    Parameters
    ----------
    x : array (B, D_in, T), PyTorch's channels-first layout.
    weight : array (D_out, D_in, k).
    bias : array (D_out,) or None.
    dilation : int r ≥ 1.

    Returns
    -------
    array (B, D_out, T') with T' = T + 2p − r(k − 1): T for odd k, T + 1 for even k (where Keras
    'same' keeps T: the two paddings agree only for odd k).

    Notes
    -----
    Source: PyTorch ``torch.nn.functional.conv1d`` documentation (cross-correlation, symmetric
    zero padding); third-party PyTorch ports of DGCNN write ``padding=(k // 2)·dilation`` for
    'same' (``docs/dgcnn.md`` §11).
    """
    x = _array(x, "x", 3, "(B, D_in, T)")
    weight = _array(weight, "weight", 3, "(D_out, D_in, k)")
    B, Din, T = value_of(x).shape
    Dout, Din_w, k = value_of(weight).shape
    if Din_w != Din:
        raise ValueError(f"weight must have shape (D_out, D_in, k) with D_in = {Din}, got {value_of(weight).shape}")
    r = check_int(dilation, "dilation", min_value=1)
    p = (k // 2) * r
    dt = value_of(x).dtype
    xp = np.concatenate([onp.zeros((B, Din, p), dt), x, onp.zeros((B, Din, p), dt)], axis=2)
    T_out = T + 2 * p - r * (k - 1)
    # y_{b,o,t} = Σ_{i,j} weight_{o,i,j} x_{b,i,t + j r − p}
    y = sum(np.einsum("oi,bit->bot", weight[:, :, j], xp[:, :, j * r: j * r + T_out]) for j in range(k))
    if bias is not None:
        y = y + np.reshape(_array(bias, "bias", 1, "(D_out,)"), (1, Dout, 1))
    return y


def _array(a, name, ndim, legend):
    a = as_float(a, name)
    check_float_array(a, name)
    check_ndim(a, name, ndim, legend)
    return a
