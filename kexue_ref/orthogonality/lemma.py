r"""The post's lemma: the angle between two filters from the signs of their responses.

Post: https://kexue.fm/archives/7169, the lemma that opens the derivation of the module: for
x uniform on the sphere, :math:`\mathbb{E}_x[\mathrm{sgn}(x^\top w_i)\,\mathrm{sgn}(x^\top w_j)]
= 1 - 2\theta_{ij}/\pi` (the random-hyperplane / SimHash result of Goemans–Williamson and
Charikar 2002). :func:`angle_gram` evaluates the right-hand side ϑ from the kernel alone;
:func:`sign_gram` is its Monte-Carlo estimate SᵀS/B on a batch, the quantity the module then
smooths (:mod:`kexue_ref.orthogonality.som`).

Shapes (batch-first, ``docs/conventions.md`` D5): ``x`` (B, D), ``w`` (D, M), filters as
columns. Nothing here mutates its inputs; :func:`angle_gram` is traceable by autograd,
:func:`sign_gram` is piecewise constant (no gradient).
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import value_of
from kexue_ref.orthogonality._common import _affine, _array, _check_2d, _layer_inputs, _sqrt0

__all__ = ["angle_gram", "sign_gram"]


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
