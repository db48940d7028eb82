r"""Kernel orthogonality: the Self-Orthogonality Module (SOM) and the classic penalties.

Post: Su Jianlin, "Self-Orthogonality Module: a plug-and-play kernel orthogonalisation module",
2020-01-12, https://kexue.fm/archives/7169. Paper: Z. Zhang, W. Ma, Y. Wu, G. Wang,
"Self-Orthogonality Module: A Network Architecture Plug-in for Learning Orthogonal Filters",
WACV 2020, arXiv 2001.01275. Baselines: BigGAN's ``ortho`` / ``default_ortho``
(``ajbrock/BigGAN-PyTorch`` ``utils.py``) and SRIP (``VITA-Group/Orthogonality-in-CNNs``).

Notation. The post writes column vectors, :math:`y^\top = x^\top W` with
:math:`W = (w_1, \dots, w_k) \in \mathbb{R}^{d \times k}`; this module is batch-first (D5):
``x`` is (B, D), ``w`` is (D, M) and ``Y = X W`` is (B, M), so the post's d is D and its k
is M. Each column :math:`w_i` is one filter ("view"); :math:`\theta_{ij}` is the angle between
:math:`w_i` and :math:`w_j`; :math:`\vartheta_{ij} = 1 - 2\theta_{ij}/\pi`; Θ is the SOM's
estimate of ϑ from a batch. The classic penalties take ``filters="columns"`` (filters along
the last axis, the Keras layout) or ``filters="rows"`` (along the first axis, the PyTorch and
BigGAN layout). Convolutions become matrices through :func:`im2col` (each patch is a sample)
and :func:`kernel_matrix` (each output channel is a column, flattened in (taps, C_in) order).

Image shapes are spelled out (B, H_in, W_in, C_in): the legend of ``docs/conventions.md`` has no
letters for image height, width or channels.

Nothing here mutates its inputs; every function but :func:`sign_gram` is traceable by autograd
(the sign estimator is piecewise constant, a diagnostic for the tanh one). NaN and ±inf inputs
are refused.
"""
import numbers

import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, check_positive, value_of

__all__ = ["angle_gram", "sign_gram", "som_gram", "som_penalty", "im2col", "torch_to_keras_kernel",
           "keras_to_torch_kernel", "kernel_matrix", "orthonormal_penalty", "offdiag_penalty",
           "biggan_ortho_grad"]

POST = "https://kexue.fm/archives/7169"


# ---------------------------------------------------------------------------
# The angle statistic: exact (from the kernel), sign estimator, tanh estimator
# ---------------------------------------------------------------------------

def angle_gram(w):
    r"""The exact angle statistic of the filters, :math:`\vartheta_{ij} = 1 - 2\theta_{ij}/\pi`.

    .. math:: \vartheta_{ij} = \mathbb{E}_{x}\left[\mathrm{sgn}(x^\top w_i)\,\mathrm{sgn}(x^\top w_j)\right]
              = 1 - \frac{2\theta_{ij}}{\pi}, \qquad
              \theta_{ij} = \arccos\frac{w_i^\top w_j}{\|w_i\|\,\|w_j\|}

    for x uniform on the unit sphere (or any isotropic distribution, e.g. Gaussian).

    Parameters
    ----------
    w : array (D, M), the filters as columns; no zero column.

    Returns
    -------
    array (M, M), symmetric, unit diagonal, entries in [−1, 1]; 0 exactly for orthogonal filters.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (the lemma E[sgn·sgn] = 1 − 2θ/π, i.e. the
    random-hyperplane / SimHash result of Goemans–Williamson and Charikar 2002).
    ϑ is computed as :math:`\tfrac{2}{\pi}\,\mathrm{atan2}(2\cos\theta_{ij},\,
    \|\hat w_i - \hat w_j\|\,\|\hat w_i + \hat w_j\|)`, since π/2 − θ = atan2(cos θ, sin θ) and
    2 sin θ = ‖ŵ_i − ŵ_j‖‖ŵ_i + ŵ_j‖: equal to 1 − 2 arccos(·)/π, but accurate near θ = 0 and π
    (where arccos loses half the digits) and near θ = π/2 (where 1 − 2θ/π cancels).
    θ is not differentiable where two filters are parallel or antiparallel (θ ∈ {0, π}); there
    the pair contributes the zero (sub)gradient, as |x| at 0, instead of NaN.

    Examples
    --------
    >>> angle_gram(onp.array([[1.0, 1.0], [0.0, 1.0]])).round(12).tolist()   # θ = π/4
    [[1.0, 0.5], [0.5, 1.0]]
    """
    w = _array(w, "w")
    _check_2d(w, "w", "(D, M)")
    norm2 = onp.sum(value_of(w) ** 2, axis=0)
    if onp.any(norm2 == 0):
        raise ValueError(f"w has a zero column (index {int(onp.argmax(norm2 == 0))}): "
                         "its angle to the other filters is undefined")
    # ‖w_i‖ and ŵ_i = w_i / ‖w_i‖
    norm = np.sqrt(np.sum(w ** 2, axis=0))                               # (M,)
    w_hat = w / norm                                                     # (D, M)
    # cos θ_ij = w_iᵀw_j / (‖w_i‖ ‖w_j‖): one division after the dot product
    cos = np.dot(w.T, w) / (norm[:, None] * norm[None, :])               # (M, M)
    # ‖ŵ_i − ŵ_j‖² = 4 sin²(θ/2) and ‖ŵ_i + ŵ_j‖² = 4 cos²(θ/2), summed over the D features
    d2 = np.sum((w_hat[:, :, None] - w_hat[:, None, :]) ** 2, axis=0)   # (M, M)
    s2 = np.sum((w_hat[:, :, None] + w_hat[:, None, :]) ** 2, axis=0)   # (M, M)
    # 2 sin θ_ij = ‖ŵ_i − ŵ_j‖·‖ŵ_i + ŵ_j‖ ≥ 0, accurate at θ ≈ 0 and π (no 1 − cos² cancellation).
    # A zero root (the diagonal, parallel or antiparallel filters) is a kink of θ: it gets
    # gradient 0, not ∞·0 = NaN
    sin2 = _sqrt0(d2) * _sqrt0(s2)                                       # (M, M)
    # ϑ_ij = 1 − 2θ_ij/π = (2/π)(π/2 − θ_ij) = (2/π)·atan2(cos θ_ij, sin θ_ij): the complement
    # angle directly, so ϑ ≈ 0 (θ ≈ π/2) keeps its relative accuracy instead of 1 − 2θ/π cancelling
    return 2 * np.arctan2(2 * cos, sin2) / onp.pi


def sign_gram(x, w, *, bias=None):
    r"""The sign (LSH) estimator of ϑ from a batch: :math:`\hat\vartheta = S^\top S / B`.

    .. math:: S = \mathrm{sgn}(X W + b) \in \{\pm 1\}^{B \times M}, \qquad
              \hat\vartheta_{ij} = \frac{1}{B}\sum_{b=1}^{B} S_{bi} S_{bj}
              = 1 - \frac{2\,\mathrm{Hamming}(S_{:,i}, S_{:,j})}{B}

    Parameters
    ----------
    x : array (B, D), the samples (rows).
    w : array (D, M), the filters (columns).
    bias : None or array (M,), added to every row of ``X W``.

    Returns
    -------
    array (M, M), symmetric, unit diagonal, entries in [−1, 1] on the grid 2k/B − 1.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (the unbiased Monte-Carlo estimate of the lemma's
    expectation, with the sample x_b drawn from the data instead of the sphere).
    Convention: sgn(0) = −1 (a library choice, ``docs/orthogonality.md``; tables avoid exact
    zeros). Each column of S has norm √B, so dividing by B equals normalising the columns. The estimate is unchanged by a positive
    rescaling of any filter w_i (with b_i) or any sample x_b. It is piecewise constant: no
    gradient is defined (autograd sees a constant); use :func:`som_gram` for training.

    Examples
    --------
    >>> x = onp.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    >>> sign_gram(x, onp.eye(2)).tolist()          # one sign disagreement in B = 4
    [[1.0, 0.5], [0.5, 1.0]]
    """
    x, w, bias = _layer_inputs(x, w, bias)
    # Y = X W + b on plain values: the estimator is piecewise constant
    y = value_of(_affine(x, w, bias))                                    # (B, M)
    # S = sgn(Y) with sgn(0) = −1
    s = onp.where(y > 0, 1, -1).astype(y.dtype)                          # (B, M)
    # ϑ̂ = SᵀS / B
    return s.T @ s / y.shape[0]                                          # (M, M)


def som_gram(x, w, gamma=10.0, *, bias=None, eps=1e-12):
    r"""The SOM estimate Θ: Gram matrix of the batch-normalised columns of tanh(γY).

    .. math:: Y = XW + b, \quad T = \tanh(\gamma Y), \quad
              \hat T_{:,i} = \frac{T_{:,i}}{\sqrt{\sum_b T_{bi}^2 + \varepsilon^2}}, \quad
              \Theta = \hat T^\top \hat T

    Parameters
    ----------
    x : array (B, D), the samples (rows). Sequences: pass ``x.reshape(-1, D)``; convolutions:
        pass :func:`im2col` patches.
    w : array (D, M), the filters (columns).
    gamma : float γ > 0, the sharpness of tanh (the paper's 10); γ → ∞ gives :func:`sign_gram`.
    bias : None (default) or array (M,).
    eps : float ε ≥ 0 in the column norm; a dead column (T_{:,i} = 0) gives a zero row and
        column of Θ instead of 0/0. ``eps=0`` with a dead column raises.

    Returns
    -------
    array (M, M), symmetric; unit diagonal (to within ε²/‖T_{:,i}‖²) for live columns.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (sgn → tanh(γ·) and normalisation over the batch);
    Zhang et al. 2020 (γ = 10). ``decision`` (``docs/orthogonality.md``): no bias by default, ε = 1e-12 inside
    the root. Unlike sgn, tanh is not scale invariant: how close Θ is to ϑ depends on the size of
    Y against 1/γ. At a dead unit the value is defined but the gradient is of order 1/ε.

    Examples
    --------
    >>> x = onp.array([[1.0], [-2.0]]); w = onp.array([[1.0, -1.0]])   # w_2 = −w_1
    >>> som_gram(x, w).round(12).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    x, w, bias = _layer_inputs(x, w, bias)
    gamma = check_positive(gamma, "gamma")
    eps = _nonneg(eps, "eps")
    return _som_gram(x, w, bias, gamma, eps)


def _som_gram(x, w, bias, gamma, eps):
    # T = tanh(γ (X W + b))
    t = nx._tanh(gamma * _affine(x, w, bias))                             # (B, M)
    # ‖T_{:,i}‖ over the batch axis, with ε² inside the root
    norm = np.sqrt(np.sum(t ** 2, axis=0) + eps ** 2)                    # (M,)
    if eps == 0 and onp.any(value_of(norm) == 0):
        raise ValueError(f"column {int(onp.argmax(value_of(norm) == 0))} of tanh(gamma·Y) is zero "
                         "(a dead unit) and eps = 0: its normalisation is 0/0; pass eps > 0")
    # T̂_{:,i} = T_{:,i} / ‖T_{:,i}‖
    t_hat = t / norm                                                     # (B, M)
    # Θ = T̂ᵀ T̂
    return np.dot(t_hat.T, t_hat)                                        # (M, M)


def som_penalty(x, w, lam1=100.0, lam2=1.0, gamma=10.0, *, pairs="ordered", grad_x=True,
                bias=None, eps=1e-12):
    r"""The SOM regulariser: a "soft" term on the sum and a "hard" term on each off-diagonal Θ.

    .. math:: R_\vartheta = \lambda_1 \Big(\sum_{i \ne j} \Theta_{ij}\Big)^2
              + \lambda_2 \sum_{i \ne j} \Theta_{ij}^2

    Parameters
    ----------
    x : array (B, D), the samples.
    w : array (D, M), the filters, M ≥ 2.
    lam1, lam2 : floats λ₁, λ₂ ≥ 0 (the paper's 100 and 1).
    gamma : float γ > 0 (the paper's 10).
    pairs : "ordered" (default: every off-diagonal entry, i ≠ j) or "unordered" (i < j only,
        which divides the inner sums by 2: the λ₁ term by 4 and the λ₂ term by 2).
    grad_x : bool, True (default) differentiates R(X, W) in both arguments; False puts
        ``stop_gradient`` on X, so only W (and the bias) receive gradients.
    bias, eps : as in :func:`som_gram`.

    Returns
    -------
    0-d array, ≥ 0.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (the post's R_ϑ; it writes "θ_ij = 0" once, a typo
    for ϑ_ij); Zhang et al. 2020 (λ₁ = 100, λ₂ = 1, γ = 10). λ₁ only drives the mean
    off-diagonal entry to 0 (soft), λ₂ each entry (hard); λ₁ > λ₂ on purpose. ``decision``:
    ordered pairs, gradients reach X by default (``docs/orthogonality.md``). Since
    Σ_{i,j} Θ_ij = ‖Σ_i T̂_{:,i}‖², the inner sum is ≥ −M. With M > D not every pair can be orthogonal: for isotropic X, R stays
    bounded away from 0 even as B → ∞ (``docs/orthogonality.md``). The
    λ₁ term grows like M⁴ when the entries share a sign; no normalisation is added.

    Examples
    --------
    >>> x = onp.array([[1.0], [-2.0]]); w = onp.array([[1.0, -1.0]])   # Θ_12 = Θ_21 = −1
    >>> round(float(som_penalty(x, w)), 9), round(float(som_penalty(x, w, pairs="unordered")), 9)
    (402.0, 101.0)
    """
    x, w, bias = _layer_inputs(x, w, bias)
    M = value_of(w).shape[1]
    if M < 2:
        raise ValueError(f"w must have at least M = 2 columns: the SOM penalty sums over pairs "
                         f"i != j, which are empty for M = {M}")
    lam1 = _nonneg(lam1, "lam1")
    lam2 = _nonneg(lam2, "lam2")
    gamma = check_positive(gamma, "gamma")
    eps = _nonneg(eps, "eps")
    check_choice(pairs, "pairs", ("ordered", "unordered"))
    if not isinstance(grad_x, (bool, onp.bool_)):
        raise TypeError(f"grad_x must be True or False, got {grad_x!r}")
    if not grad_x:
        # sg(X): the value is X, the gradient reaching X is 0
        x = nx.stop_gradient(x)
    theta = _som_gram(x, w, bias, gamma, eps)                            # (M, M)
    dtype = value_of(theta).dtype
    # the pairs summed over: i ≠ j (ordered) or i < j (unordered)
    mask = (1 - onp.eye(M) if pairs == "ordered" else onp.triu(onp.ones((M, M)), 1)).astype(dtype)
    # Σ Θ_ij and Σ Θ_ij² over the pairs
    total = np.sum(theta * mask)
    squares = np.sum(theta ** 2 * mask)
    # R_ϑ = λ₁ (Σ Θ_ij)² + λ₂ Σ Θ_ij²
    return lam1 * total ** 2 + lam2 * squares


# ---------------------------------------------------------------------------
# Convolutions as matrices: im2col patches and kernel layouts
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Classic penalties: orthonormal (Frobenius / spectral / SRIP), off-diagonal, BigGAN
# ---------------------------------------------------------------------------

def orthonormal_penalty(w, norm="fro", *, v0=None, n_iter=1, filters="columns", squared=True):
    r"""The orthonormality penalty :math:`\|W^\top W - I\|^2` (Frobenius or spectral norm).

    .. math:: A = W^\top W - I_M, \qquad
              \|A\|_F^2 = \sum_{ij} A_{ij}^2, \qquad \|A\|_2 = \max_k |\lambda_k(A)|,

    and with a start vector :math:`v_0` (SRIP), ``n_iter`` power-iteration steps
    :math:`v \leftarrow A v / \|A v\|` from :math:`v = v_0`, then :math:`\hat\sigma = \|A v\|`.

    Parameters
    ----------
    w : array of the filters: (D, M), or a Keras kernel (…, C_out), with ``filters="columns"``
        (filters along the last axis); (M, D), or a PyTorch weight (C_out, …), with "rows".
    norm : "fro" (default) or "spectral".
    v0 : None, or array (M,), the power-iteration start vector (non-zero; spectral only). None
        with "spectral" gives the exact norm from the eigenvalues of the symmetric A.
    n_iter : int ≥ 1, power-iteration steps (SRIP uses 1).
    filters : "columns" (default) or "rows".
    squared : bool, True (default, the post's ‖·‖²) or False (the norm itself, as SRIP's Keras
        code for the spectral estimate).

    Returns
    -------
    0-d array, ≥ 0; 0 exactly when the filters are orthonormal. When M > D this is impossible:
    ‖A‖_F² ≥ M − D and ‖A‖₂ ≥ 1 (A has the eigenvalue −1 with multiplicity ≥ M − D), with
    equality for a tight frame (W Wᵀ = I_D).

    Notes
    -----
    Source: https://kexue.fm/archives/7169 ("‖WᵀW − I‖², spectral or Frobenius norm"); SRIP
    (Bansal, Chen & Wang, NeurIPS 2018; ``VITA-Group/Orthogonality-in-CNNs``): σ̂ = ‖A·(Av₀/‖Av₀‖)‖
    with one step from a U[0, 1) vector drawn once (Keras, not squared) or per call (PyTorch,
    squared). v₀ is an input here (D2). σ̂ ≤ ‖A‖₂ for every v₀. If an iterate A v is exactly 0
    the estimate is 0 and its gradient is taken as 0 (SRIP divides 0/0 there). The exact
    spectral norm is differentiable where its largest |λ| is simple (at a tie, autograd's eigh
    VJP returns one subgradient); second derivatives need all eigenvalues distinct.

    Examples
    --------
    >>> w = 2.0 * onp.eye(2)                                   # A = 3 I
    >>> float(orthonormal_penalty(w)), float(orthonormal_penalty(w, "spectral"))
    (18.0, 9.0)
    >>> float(orthonormal_penalty(w, "spectral", v0=onp.array([1.0, 0.0]), squared=False))
    3.0
    """
    check_choice(norm, "norm", ("fro", "spectral"))
    if not isinstance(squared, (bool, onp.bool_)):
        raise TypeError(f"squared must be True or False, got {squared!r}")
    n_iter = check_int(n_iter, "n_iter", min_value=1)
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    dtype = value_of(wm).dtype
    # A = WᵀW − I
    a = np.dot(wm.T, wm) - onp.eye(M, dtype=dtype)                       # (M, M)
    if norm == "fro":
        if v0 is not None:
            raise ValueError("v0 is the power-iteration start vector of norm='spectral'; "
                             "it must be None for norm='fro'")
        # ‖A‖_F² = Σ_ij A_ij²
        sq = np.sum(a ** 2)
        return sq if squared else _sqrt0(sq)
    if v0 is None:
        # ‖A‖₂ = max_k |λ_k(A)|, A symmetric
        lam = np.linalg.eigh(a)[0]                                       # (M,)
        top = lam[int(onp.argmax(onp.abs(value_of(lam))))]
        return top ** 2 if squared else np.abs(top)
    v = _start_vector(v0, M, dtype)                                      # (M,)
    for _ in range(n_iter):
        # v ← A v / ‖A v‖
        u = np.dot(a, v)                                                 # (M,)
        v = u / _nonzero(_sqrt0(np.sum(u ** 2)))
    # σ̂ = ‖A v‖
    sigma_sq = np.sum(np.dot(a, v) ** 2)
    return sigma_sq if squared else _sqrt0(sigma_sq)


def offdiag_penalty(w, filters="columns"):
    r"""The orthogonality-only penalty: squared Frobenius norm of the off-diagonal Gram entries.

    .. math:: R = \big\| W^\top W \odot (1 - I) \big\|_F^2 = \sum_{i \ne j} (w_i^\top w_j)^2

    Parameters
    ----------
    w : array of the filters, as in :func:`orthonormal_penalty`; M ≥ 2.
    filters : "columns" (default) or "rows" (BigGAN's layout, (C_out, …)).

    Returns
    -------
    0-d array, ≥ 0; 0 for any mutually orthogonal filters (of any norms). With M > D filters of
    unit norm it is ≥ M(M − D)/D (the Welch bound), with equality for a unit-norm tight frame.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (the post writes ⊗ for ⊙); BigGAN's ``ortho``
    (Brock, Donahue & Simonyan, ICLR 2019) is the gradient of (strength/2)·R, see
    :func:`biggan_ortho_grad`. Squares, not signed sums (``kevinzakka/pytorch-goodies`` issue
    #7 summed signed entries, which cancel). Its gradient is 4 W (WᵀW ⊙ (1 − I)) (columns).

    Examples
    --------
    >>> float(offdiag_penalty(onp.array([[1.0, 1.0], [0.0, 1.0]])))   # w_1ᵀw_2 = 1, twice
    2.0
    """
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    if M < 2:
        raise ValueError(f"w must have at least M = 2 filters: the off-diagonal penalty sums "
                         f"over pairs i != j, which are empty for M = {M}")
    # G = WᵀW with the diagonal removed: G ⊙ (1 − I)
    off = np.dot(wm.T, wm) * (1 - onp.eye(M, dtype=value_of(wm).dtype))  # (M, M)
    # ‖G ⊙ (1 − I)‖_F²
    return np.sum(off ** 2)


def biggan_ortho_grad(w, strength=1e-4, mode="ortho", *, filters="rows"):
    r"""The gradient BigGAN adds to ``.grad`` (``ortho`` / ``default_ortho``), with its factor 2.

    .. math:: \Delta = 2s\,\big(W W^\top \odot (1 - I)\big) W \;\; (\texttt{ortho}), \qquad
              \Delta = 2s\,\big(W W^\top - I\big) W \;\; (\texttt{default\_ortho}),

    for W the (M, D) matrix of filters as rows. The true gradients of the squared Frobenius
    norms carry a 4: :math:`\nabla_W \|WW^\top \odot (1-I)\|_F^2 = 4 (WW^\top \odot (1-I)) W`,
    so :math:`\Delta = \nabla_W \tfrac{s}{2}\,\|\cdot\|_F^2`: BigGAN's strength s is the
    coefficient of the loss (s/2)·:func:`offdiag_penalty` (or (s/2)·:func:`orthonormal_penalty`).

    Parameters
    ----------
    w : array, a parameter (C_out, …) with ``filters="rows"`` (default, BigGAN's
        ``w.view(w.shape[0], -1)``), or (D, M) with "columns"; at least 2-D.
    strength : float s ≥ 0 (BigGAN's default 1e-4).
    mode : "ortho" (default, off-diagonal only) or "default" (``default_ortho``, keeps −I).
    filters : "rows" (default) or "columns".

    Returns
    -------
    array, the shape of ``w``: the increment added to ``w.grad`` before the optimizer step.

    Notes
    -----
    Source: ``ajbrock/BigGAN-PyTorch`` ``utils.py`` (``ortho``, ``default_ortho``); Brock et al.,
    "Large Scale GAN Training", ICLR 2019, §3.1. BigGAN skips parameters with fewer than 2 axes;
    here they are refused. A single filter (M = 1) gives 0 for "ortho", as in BigGAN. The sign is
    right (BigGAN-PyTorch#90): the optimizer subtracts ``.grad``.

    Examples
    --------
    >>> biggan_ortho_grad(onp.array([[1.0, 1.0], [0.0, 1.0]]), strength=0.5).tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """
    check_choice(mode, "mode", ("ortho", "default"))
    strength = _nonneg(strength, "strength")
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    eye = onp.eye(M, dtype=value_of(wm).dtype)
    # G = WᵀW in the columns view (= W Wᵀ for BigGAN's rows)
    g = np.dot(wm.T, wm)                                                 # (M, M)
    # ortho: G ⊙ (1 − I); default_ortho: G − I
    a = g * (1 - eye) if mode == "ortho" else g - eye
    # Δ = 2s·A·W_rows, i.e. 2s·W_cols·A in the columns view (A is symmetric)
    delta = 2 * strength * np.dot(wm, a)                                 # (D, M)
    shape = value_of(w).shape
    return np.reshape(delta.T, shape) if filters == "rows" else np.reshape(delta, shape)


# ---------------------------------------------------------------------------
# Private helpers: validation, layouts, safe roots
# ---------------------------------------------------------------------------



def _const(value, like):
    return onp.asarray(value, dtype=value_of(like).dtype)


def _array(x, name):
    x = as_float(x, name)
    check_float_array(x, name)
    return x


def _check_2d(x, name, legend):
    shape = value_of(x).shape
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape {legend}, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return shape


def _nonneg(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, onp.generic, onp.ndarray)):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    v = float(value_of(value))
    if not onp.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


def _layer_inputs(x, w, bias):
    """Check X (B, D), W (D, M) and the optional bias (M,) of a layer Y = X W + b."""
    x = _array(x, "x")
    w = _array(w, "w")
    B, D = _check_2d(x, "x", "(B, D)")
    Dw, M = _check_2d(w, "w", "(D, M)")
    if D != Dw:
        raise ValueError(f"x has D = {D} features per sample but w has {Dw} rows: x must be (B, D) "
                         "and w (D, M), filters as columns (for a PyTorch Linear weight (M, D) pass "
                         "its transpose)")
    if bias is not None:
        if isinstance(bias, (list, tuple)):
            bias = onp.asarray(bias, dtype=onp.result_type(value_of(x).dtype, value_of(w).dtype))
        bias = _array(bias, "bias")
        if value_of(bias).shape != (M,):
            raise ValueError(f"bias must have shape (M,) = ({M},), got shape {value_of(bias).shape}")
    return x, w, bias


def _affine(x, w, bias):
    # Y = X W (+ b)
    y = np.dot(x, w)                                                     # (B, M)
    return y if bias is None else y + bias


def _filters_matrix(w, filters):
    """The (D, M) matrix whose columns are the filters: last axis (columns) or first axis (rows)."""
    check_choice(filters, "filters", ("columns", "rows"))
    w = _array(w, "w")
    shape = value_of(w).shape
    if len(shape) < 2:
        legend = "(D, M) or (…, C_out)" if filters == "columns" else "(M, D) or (C_out, …)"
        raise ValueError(f"w must have at least 2 dimensions, {legend} with filters={filters!r}, "
                         f"got shape {shape}")
    if 0 in shape:
        raise ValueError(f"w must not be empty, got shape {shape}")
    if filters == "columns":
        # filters along the last axis (Keras): (…, M) → (D, M)
        return np.reshape(w, (-1, shape[-1]))
    # filters along the first axis (PyTorch, BigGAN's view(out, −1)): (M, …) → (M, D) → (D, M)
    return np.transpose(np.reshape(w, (shape[0], -1)))


def _kernel_ndim(w, legend):
    shape = value_of(w).shape
    if len(shape) < 2:
        raise ValueError(f"w must have shape {legend} with at least 2 dimensions, got shape {shape}")
    return len(shape)


def _start_vector(v0, M, dtype):
    """The power-iteration start vector: (M,), finite, non-zero; a constant in w's dtype."""
    v = value_of(v0)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"v0 must be a real array of shape (M,), got dtype {v.dtype}")
    check_float_array(v, "v0")
    if v.shape != (M,):
        raise ValueError(f"v0 must have shape (M,) = ({M},), one entry per filter, got shape {v.shape}")
    if not onp.any(v != 0):
        raise ValueError("v0 must not be the zero vector: the power iteration would stay at 0")
    return v.astype(dtype)


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


def _sqrt0(sq):
    """√s with √0 = 0 and a zero gradient there (instead of ∞·0 = NaN)."""
    zero = value_of(sq) == 0
    return np.where(zero, _const(0.0, sq), np.sqrt(np.where(zero, _const(1.0, sq), sq)))


def _nonzero(n):
    """A divisor: n itself, or 1 where n = 0 (so a zero vector is divided into a zero vector)."""
    return np.where(value_of(n) == 0, _const(1.0, n), n)
