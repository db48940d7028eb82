r"""Smooth maxima: max and min as log-sum-exp, |x| and ReLU from them, and the soft-k-max.

Post https://kexue.fm/archives/6620, sections "max → logsumexp" (:func:`smooth_max`,
:func:`smooth_min`) and "soft-k-max" (:func:`soft_kmax`, re-quoted in
https://kexue.fm/archives/10373); the extensions of https://kexue.fm/archives/3290 (smooth
absolute value, :func:`smooth_abs`) and the soft ReLU derived from them (:func:`soft_relu`).

Notation: ``x`` the scores, K the smoothing constant that *multiplies* them (``scale``).
Reductions run along ``axis``; ``-inf`` entries are "no mass" where a maximum is taken (D4 of
``docs/conventions.md``).
"""
import autograd.numpy as np
import numpy as onp  # noqa: F401  (used by the doctests)

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_axis, check_float_array, check_int, check_positive, value_of

__all__ = ["smooth_max", "smooth_min", "soft_kmax", "smooth_abs", "soft_relu"]


def smooth_max(x, scale=1.0, axis=-1):
    r"""Smooth maximum: the log-sum-exp of the scaled scores, divided by the scale.

    .. math:: \max(x_1, \dots, x_n) \approx \frac{1}{K} \log \sum_{i=1}^n e^{K x_i},
              \qquad \max(x) \le \frac{1}{K}\mathrm{LSE}(Kx) \le \max(x) + \frac{\log n}{K}

    Parameters
    ----------
    x : array (..., n, ...); ``-inf`` entries are ignored; no ``+inf`` or NaN.
    scale : float K > 0; larger is closer to the hard max.
    axis : int, the axis of the n entries.

    Returns
    -------
    array, ``x``'s shape without ``axis``. Its gradient is ``soft_onehot(x, scale)``.

    Notes
    -----
    Source: https://kexue.fm/archives/6620, "max → logsumexp" (the post stresses that the
    smooth max is logsumexp, not softmax); https://kexue.fm/archives/3290.
    Conventions: K multiplies the scores (kornia's temperature multiplies too; TF's
    ``spatial_softmax`` divides: K = 1/temperature). An all ``-inf`` slice gives ``-inf`` with
    gradient 0 (D4).

    Examples
    --------
    >>> x = onp.array([2., 1., 4., 5., 3.])
    >>> round(float(smooth_max(x)), 6), round(float(smooth_max(x, scale=10.0)), 7)
    (5.451914, 5.0000045)
    """
    x = as_float(x, "x")
    check_float_array(x, "x", allow_neg_inf=True)
    axis = check_axis(x, axis, "x")
    k = check_positive(scale, "scale")
    # max(x) ≈ (1/K) · LSE(K x)
    return nx._logsumexp(k * x, axis) / k


def smooth_min(x, scale=1.0, axis=-1):
    r"""Smooth minimum, the mirror image of :func:`smooth_max`.

    .. math:: \min(x) \approx -\frac{1}{K} \log \sum_i e^{-K x_i}

    Parameters
    ----------
    x : array (..., n, ...); ``+inf`` entries are ignored; no ``-inf`` or NaN.
    scale : float K > 0.
    axis : int

    Returns
    -------
    array, ``x``'s shape without ``axis``; ``min(x) - log(n)/K <= result <= min(x)``.

    Notes
    -----
    Source: https://kexue.fm/archives/6620 (min(x) = −max(−x)).
    """
    x = as_float(x, "x")
    check_float_array(x, "x", allow_pos_inf=True)
    axis = check_axis(x, axis, "x")
    k = check_positive(scale, "scale")
    # min(x) = −max(−x) ≈ −(1/K) · LSE(−K x)
    return -nx._logsumexp(-k * x, axis) / k


def soft_kmax(x, k, axis=-1):
    r"""Soft-k-max: a smooth map from the top-k positions to 1 (the post's recursion).

    .. math:: x \leftarrow x - \min(x); \quad p^{(0)} = 0; \quad
              p^{(s)} = p^{(s-1)} + \mathrm{softmax}\big((1 - p^{(s-1)}) \odot x\big),
              \ s = 1..k

    Parameters
    ----------
    x : array (..., n, ...), finite scores.
    k : int, 1 ≤ k ≤ n, how many positions to select.
    axis : int

    Returns
    -------
    array, the shape of ``x``; each slice sums to exactly k (every step adds a distribution).

    Notes
    -----
    Source: https://kexue.fm/archives/6620 ("soft-k-max"), re-quoted in
    https://kexue.fm/archives/10373. Known quirk, kept on purpose (D1): components **can
    exceed 1**, e.g. ``soft_kmax([4.5, 2.8, 2.3], 2) = [1.166863, 0.508450, 0.324687]``; the
    author says in 10373 he could not prove p ∈ [0, 1]. It is shift-invariant (through the
    min) but not scale-invariant, and min(x) is not differentiable at ties. The "weighted
    softmax" variant refuted in 10373 is not implemented.

    Examples
    --------
    >>> soft_kmax(onp.array([4.5, 2.8, 2.3]), 2).round(6).tolist()
    [1.166863, 0.50845, 0.324687]
    """
    x = as_float(x, "x")
    check_float_array(x, "x")
    axis = check_axis(x, axis, "x")
    n = value_of(x).shape[axis]
    k = check_int(k, "k", min_value=1, max_value=n)
    # x ← x − min(x): entries become non-negative, so a zeroed maximum becomes the minimum
    x = x - np.min(x, axis=axis, keepdims=True)
    p = np.zeros_like(x)
    for _ in range(k):
        # p ← p + softmax((1 − p) ⊙ x)
        p = p + nx._softmax((1 - p) * x, axis)
    return p


def smooth_abs(x, scale=1.0):
    r"""Smooth absolute value (extension from post 3290, not in 6620).

    .. math:: |x| = \lim_{K\to\infty} \frac{1}{K} \log\left(e^{Kx} + e^{-Kx}\right)

    Parameters
    ----------
    x : array, any shape, finite.
    scale : float K > 0.

    Returns
    -------
    array, the shape of ``x``; ``|x| <= result <= |x| + log(2)/K``.

    Notes
    -----
    Source: https://kexue.fm/archives/3290 (marked as an extension in ``docs/smoothing.md``).
    From it, max(x, y) = ½(|x + y| + |x − y|) can be smoothed too.

    Examples
    --------
    >>> round(float(smooth_abs(0.0, scale=2.0)), 6) == round(float(onp.log(2) / 2), 6)
    True
    """
    x = as_float(x, "x")
    check_float_array(x, "x")
    k = check_positive(scale, "scale")
    kx = k * x
    # |x| ≈ (1/K) log(e^{Kx} + e^{−Kx})
    return np.logaddexp(kx, -kx) / k


def soft_relu(x, scale=1.0):
    r"""Soft ReLU = scaled softplus, **derived** (not stated in the posts).

    .. math:: \mathrm{relu}(x) = \max(x, 0) \approx \frac{1}{K} \log\left(e^{Kx} + 1\right)
              = \frac{1}{K}\,\mathrm{softplus}(Kx)

    Parameters
    ----------
    x : array, any shape, finite.
    scale : float K > 0.

    Returns
    -------
    array, the shape of ``x``; ``result − relu(x) = log(1 + e^{−K|x|})/K ∈ (0, log(2)/K]``.

    Notes
    -----
    Source: derived by applying the smooth max of https://kexue.fm/archives/3290 to
    max(x, 0); the posts do not write it down (``docs/smoothing.md`` § "Extensions: |x| and the
    soft ReLU").
    """
    x = as_float(x, "x")
    check_float_array(x, "x")
    k = check_positive(scale, "scale")
    # relu(x) = max(x, 0) ≈ (1/K) LSE(Kx, 0)
    return nx._softplus(k * x) / k
