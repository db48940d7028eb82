r"""The Self-Orthogonality Module: the smoothed estimate Θ and the regulariser R_ϑ.

Post: https://kexue.fm/archives/7169, the section that builds the module from the lemma: sgn
becomes tanh(γ·) and the division by B becomes a normalisation of each column over the batch,
giving a differentiable estimate Θ of ϑ; the regulariser R_ϑ = λ₁(Σ_{i≠j}Θ_ij)² + λ₂Σ_{i≠j}Θ_ij²
drives its off-diagonal entries to 0. Paper: Zhang, Ma, Wu & Wang, WACV 2020, arXiv 2001.01275
(λ₁ = 100, λ₂ = 1, γ = 10, as the post reports them).

Shapes (batch-first, ``docs/conventions.md`` D5): ``x`` (B, D), ``w`` (D, M), ``bias`` (M,).
The choices the post leaves open (ordered pairs, gradients reaching X, no bias, ε inside the
root) are the table "Choices the post leaves open" of ``docs/orthogonality.md``. Nothing here
mutates its inputs; everything is traceable by autograd.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_choice, check_positive, value_of
from kexue_ref.orthogonality._common import _affine, _layer_inputs, _nonneg

__all__ = ["som_gram", "som_penalty"]


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
