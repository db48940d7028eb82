r"""Soft one-hot and soft argmax: the softmax as a smooth ``onehot(argmax)``, and its mean position.

Post https://kexue.fm/archives/6620, sections "softmax ≈ onehot(argmax)" (:func:`soft_onehot`)
and "argmax" (:func:`soft_argmax`, with its accurate derivative :func:`_mean_position`).

Notation: ``x`` the scores, K the smoothing constant that *multiplies* them (``scale``);
positions are 0-based unless ``base=1``, the post's count (D6 of ``docs/conventions.md``).
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_axis, check_choice, check_float_array, check_positive, value_of

__all__ = ["soft_onehot", "soft_argmax"]


def soft_onehot(x, scale=1.0, axis=-1):
    r"""Smooth one-hot of the argmax: the softmax of the scaled scores.

    .. math:: \mathrm{onehot}(\mathrm{argmax}\, x) \approx \mathrm{softmax}(K x)

    Parameters
    ----------
    x : array (..., n, ...); ``-inf`` entries get 0; no ``+inf`` or NaN.
    scale : float K > 0.
    axis : int

    Returns
    -------
    array, the shape of ``x``, each slice summing to 1 (all 0 for an all ``-inf`` slice, D4).

    Notes
    -----
    Source: https://kexue.fm/archives/6620, "softmax ≈ onehot(argmax)": shifting by the max
    and replacing it by LSE gives the softmax. With m tied maxima each gets 1/m as K → ∞,
    whereas a hard argmax picks the first.

    Examples
    --------
    >>> soft_onehot(onp.array([2., 1., 4., 5., 3.]), scale=50.0).round(6).tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0]
    """
    x = as_float(x, "x")
    check_float_array(x, "x", allow_neg_inf=True)
    axis = check_axis(x, axis, "x")
    k = check_positive(scale, "scale")
    # onehot(argmax x) ≈ softmax(K x)
    return nx._softmax(k * x, axis)


def soft_argmax(x, scale=1.0, axis=-1, base=0):
    r"""Smooth argmax: the expected position under ``softmax(K x)``.

    .. math:: \mathrm{argmax}(x) \approx \sum_{i=0}^{n-1} (i + \mathrm{base})\,
              \mathrm{softmax}(K x)_i

    Parameters
    ----------
    x : array (..., n, ...); no ``+inf`` or NaN; ``-inf`` entries get weight 0.
    scale : float K > 0.
    axis : int
    base : 0 (default, 0-based positions) or 1 (the post's 1-based positions), decision D6.

    Returns
    -------
    array, ``x``'s shape without ``axis``. For constant ``x`` it is (n − 1)/2 + base; as K → ∞
    it tends to the hard argmax + base (distinct entries). An all ``-inf`` slice gives 0.

    Notes
    -----
    Source: https://kexue.fm/archives/6620, "argmax" (the post counts from 1 and gets 3.7336
    for [2, 1, 4, 5, 3]; it notes that 0-based code gives one less). Related: kornia's
    ``spatial_soft_argmax2d`` (temperature multiplies, coordinates normalised to [−1, 1]).

    Examples
    --------
    >>> x = onp.array([2., 1., 4., 5., 3.])
    >>> round(float(soft_argmax(x, base=1)), 4), round(float(soft_argmax(x)), 4)
    (3.7336, 2.7336)
    """
    x = as_float(x, "x")
    check_float_array(x, "x", allow_neg_inf=True)
    axis = check_axis(x, axis, "x")
    k = check_positive(scale, "scale")
    check_choice(base, "base", (0, 1))
    n = value_of(x).shape[axis]
    z = k * x
    # base, in every slice that has mass (an all −inf slice has P = 0 and stays 0)
    has_mass = onp.any(onp.isfinite(value_of(z)), axis=axis)
    offset = (base * has_mass).astype(value_of(z).dtype)
    # argmax(x) ≈ Σ_i (i + base) · softmax(K x)_i = base + Σ_i i · softmax(K x)_i
    # (the offset is added once, after the weighted sum, instead of rounding into each term)
    return offset + _mean_position(z, axis)


def _positions_like(a, axis):
    """0-based positions i along ``axis``, shaped to broadcast against ``a``."""
    a = value_of(a)
    shape = [1] * a.ndim
    shape[axis] = a.shape[axis]
    return onp.arange(a.shape[axis]).astype(a.dtype).reshape(shape)


@primitive
def _mean_position(z, axis):
    r"""E[i] = Σ_i i · softmax(z)_i along ``axis`` (0-based), with an accurate derivative."""
    return onp.sum(_positions_like(z, axis) * nx._softmax(z, axis), axis=axis)


def _signed_distance_sum(p, axis):
    r"""Σ_j P_j (i − j) for every i, as A_i − C_i with A, C sums of non-negative terms.

    A_i = Σ_{j<i} P_j (i − j) = Σ_{m<i} Σ_{j≤m} P_j and C_i = Σ_{j>i} P_j (j − i)
    = Σ_{m>i} Σ_{j≥m} P_j are nested cumulative sums, so each keeps full relative precision;
    the naive i − Σ_j j P_j instead subtracts two numbers of the size of the positions.
    """
    p = np.moveaxis(p, axis, -1)
    zero = np.zeros_like(p[..., :1])
    # A_i: exclusive cumulative sum of the inclusive cumulative sum
    A = np.concatenate([zero, np.cumsum(np.cumsum(p, axis=-1), axis=-1)[..., :-1]], axis=-1)
    # C_i: the same on the reversed slice, reversed back
    r = p[..., ::-1]
    C = np.concatenate([zero, np.cumsum(np.cumsum(r, axis=-1), axis=-1)[..., :-1]], axis=-1)[..., ::-1]
    return np.moveaxis(A - C, -1, axis)


def _mean_position_vjp(ans, z, axis):
    # ∂E[i]/∂z_i = P_i (i − E[i]) = P_i Σ_j P_j (i − j)
    def vjp(g):
        p = nx._softmax(z, axis)
        return np.expand_dims(g, axis) * p * _signed_distance_sum(p, axis)
    return vjp


defvjp(_mean_position, _mean_position_vjp)
defjvp(_mean_position, lambda v, ans, z, axis: np.sum(
    v * nx._softmax(z, axis) * _signed_distance_sum(nx._softmax(z, axis), axis), axis=axis))
