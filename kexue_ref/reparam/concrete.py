r"""The Concrete (relaxed one-hot) density of the Gumbel-Softmax sample, an extension.

Post: https://kexue.fm/archives/6705 gives the Gumbel-Softmax sample ỹ = softmax((o + g)/τ)
(section "Gumbel Softmax") but no density; the density is that of Maddison, Mnih & Teh,
arXiv 1611.00712, as ``torch.distributions.RelaxedOneHotCategorical`` and TFP's
``RelaxedOneHotCategorical`` implement it. ``docs/reparam.md`` ("The Concrete density, an
extension") checks it against the change of variables for K = 2 and by integration.
"""
import math

import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_axis, check_float_array, check_positive, value_of
from kexue_ref.reparam._common import _category_axis, _check_sum, _finite, _first


def relaxed_onehot_log_prob(y, logits, tau, *, axis=-1, log_space=False):
    r"""Log-density of the relaxed one-hot (Concrete) distribution, an **extension**.

    The density of ỹ = softmax((o + g)/τ) on the open simplex, with respect to the
    Lebesgue measure of its first K − 1 coordinates:

    .. math:: \log p(\tilde y) = \log\Gamma(K) + (K-1)\log\tau
              + \sum_{k=1}^{K}\big(o_k - (\tau + 1)\log\tilde y_k\big)
              - K \log\sum_{k=1}^{K} e^{\,o_k - \tau\log\tilde y_k}

    With ``log_space=True`` the argument is x = log ỹ (the ExpConcrete sample, stable for
    small τ) and the density is that of x, which lacks the Jacobian term :math:`-\sum_k x_k`:

    .. math:: \log p(x) = \log\Gamma(K) + (K-1)\log\tau + \sum_k (o_k - \tau x_k)
              - K\,\mathrm{LSE}_k(o_k - \tau x_k)

    Parameters
    ----------
    y : array (..., K, ...), a point of the open simplex (entries > 0, summing to 1 within
        :data:`SIMPLEX_ATOL`); with ``log_space=True``, its log (entries < 0 whose
        log-sum-exp is 0 within the same tolerance).
    logits : array broadcastable to ``y.shape`` with the K categories along ``axis``, finite.
        Normalising them (log p instead of o) changes nothing.
    tau : float τ > 0.
    axis : int, the category axis of ``y``.
    log_space : bool.

    Returns
    -------
    array, ``y.shape`` without ``axis``.

    Notes
    -----
    Source: Maddison, Mnih & Teh, arXiv 1611.00712, the Concrete density; the same formula as
    ``torch.distributions.RelaxedOneHotCategorical.log_prob`` (``ExpRelaxedCategorical`` for
    ``log_space=True``) and TFP ``RelaxedOneHotCategorical`` / ``ExpRelaxedOneHotCategorical``.
    The post gives no density; ``docs/reparam.md`` checks it against the change of variables
    for K = 2 (y₁ = σ((o₁ − o₂ + L)/τ), L logistic) and by integrating it to 1.

    Examples
    --------
    >>> round(float(relaxed_onehot_log_prob(onp.array([0.5, 0.5]), onp.zeros(2), 1.0)), 6)
    0.0
    """
    y = as_float(y, "y")
    yv = check_float_array(y, "y", allow_neg_inf=False)
    axis = check_axis(y, axis, "y")
    t = check_positive(tau, "tau")
    if not isinstance(log_space, bool):
        raise TypeError(f"log_space must be True or False, got {log_space!r}")
    logits = _finite(logits, "logits")
    _category_axis(logits, "logits", yv.shape, axis, "y")
    K = yv.shape[axis]
    if log_space:
        if (yv >= 0).any():
            raise ValueError(f"y (log_space=True) must hold log-probabilities < 0, got "
                             f"{yv.max()} at index {_first(yv >= 0)}")
        # Σ_k e^{x_k} = 1 on the simplex
        _check_sum(onp.sum(onp.exp(yv), axis=axis), "exp(y) (log_space=True)", "1")
        x = y
    else:
        if (yv <= 0).any():
            raise ValueError(f"y must lie in the open simplex (entries > 0), got {yv.min()} at "
                             f"index {_first(yv <= 0)}")
        _check_sum(onp.sum(yv, axis=axis), "y", "1")
        x = np.log(y)
    # s_k = o_k − τ x_k, with x_k = log ỹ_k
    s = logits - t * x  # y.shape
    # Σ_k s_k − K · LSE_k(s_k) = Σ_k log softmax(s)_k: K terms ≤ 0 instead of two large ones
    terms = nx._log_softmax(s, axis)
    if not log_space:
        # change of variables ỹ = e^x: log p(ỹ) = log p(x) − Σ_k log ỹ_k
        terms = terms - x
    # log p = log Γ(K) + (K − 1) log τ + Σ_k terms_k; the terms are often ~10x the result,
    # so the sum is compensated (the gradient is that of the plain sum)
    return _compensated_sum(terms, axis, (math.lgamma(K), (K - 1) * math.log(t)))


def _compensated_sum(terms, axis, consts=()):
    r"""Σ of ``consts`` and of ``terms`` along ``axis``: the value by Neumaier's compensated sum.

    .. math:: \Sigma = \sum_j c_j + \sum_k t_k

    Parameters
    ----------
    terms : array (..., K, ...), traced by autograd or not.
    axis : int, the axis summed over.
    consts : tuple of Python floats added to every sum (rounded to the dtype of ``terms``).

    Returns
    -------
    array, ``terms.shape`` without ``axis``, in the dtype of ``terms``. The value is the
    compensated sum (error ≲ 1 ulp of the result plus O(n²·eps²)·Σ|terms|, instead of
    O(n·eps)·Σ|terms| for the plain sum when the terms cancel); the gradient is that of the plain
    sum, which is the same function.

    Notes
    -----
    Source: A. Neumaier, "Rundungsfehleranalyse einiger Verfahren zur Summation endlicher
    Summen", ZAMM 54 (1974); ``docs/reparam.md`` ("The Concrete density").
    """
    plain = np.sum(terms, axis=axis) + sum(consts)
    tv = onp.moveaxis(value_of(terms), axis, -1)
    parts = [onp.full(tv.shape[:-1], c, dtype=tv.dtype) for c in consts]
    parts += [tv[..., k] for k in range(tv.shape[-1])]
    total, comp = parts[0].copy(), onp.zeros(tv.shape[:-1], dtype=tv.dtype)
    for p in parts[1:]:
        new = total + p
        # the rounding error of total + p, exactly (the larger operand first)
        comp = comp + onp.where(onp.abs(total) >= onp.abs(p), (total - new) + p, (p - new) + total)
        total = new
    # value: the compensated sum; the correction is a constant for autograd
    return plain + ((total + comp) - value_of(plain))
