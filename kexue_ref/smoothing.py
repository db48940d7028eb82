r"""Function smoothing: differentiable stand-ins for max, argmax, accuracy, F1 and top-k.

Post: Su Jianlin, "Random talk on function smoothing: differentiable approximations of
non-differentiable functions", 2019-05-20, https://kexue.fm/archives/6620 (English translation
in ``rohin-garg/kexue-en``). Supporting posts: https://kexue.fm/archives/3290 (smooth maximum,
absolute value) and https://kexue.fm/archives/10373 (the soft-k-max re-quoted and criticised).

Notation (the post's): ``x`` a vector of scores, ``K`` the smoothing constant that
*multiplies* the scores (``scale`` here), ``p`` predicted probabilities, ``t`` or ``y`` targets.
Shapes use the legend of ``docs/conventions.md``: B batch, K classes (the class count; the
post's K the constant is always called ``scale`` in code), n the length of the reduced axis.

Conventions: reductions run along ``axis=-1``; positions are 0-based unless ``base=1`` (D6);
``-inf`` scores are allowed where a maximum is taken and mean "no mass"; NaN and ``+inf`` are
refused. Nothing here mutates its inputs, and every function is traceable by autograd.
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref import _numerics as nx
from kexue_ref._validate import (
    as_float, check_axis, check_choice, check_float_array, check_int, check_labels,
    check_ndim, check_positive, check_same_shape, value_of,
)

__all__ = ["smooth_max", "smooth_min", "soft_onehot", "soft_argmax", "smooth_accuracy",
           "smooth_f1", "smooth_precision", "smooth_recall", "soft_kmax", "smooth_abs",
           "soft_relu"]

POST = "https://kexue.fm/archives/6620"


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


def smooth_accuracy(p, y):
    r"""Smooth accuracy: the batch mean of the probability given to the true class.

    .. math:: \mathrm{acc} = \frac{1}{B}\sum_b \langle \mathrm{onehot}(y_b),
              \mathrm{onehot}(\mathrm{argmax}\, p_b)\rangle \;\approx\;
              \frac{1}{B}\sum_b \langle \mathrm{onehot}(y_b), p_b \rangle

    Parameters
    ----------
    p : array (B, K), predicted class probabilities in [0, 1] (rows usually sum to 1).
    y : int array (B,), true labels in [0, K), 0-based.

    Returns
    -------
    0-d array, in [0, 1]; with one-hot ``p`` it equals the hard accuracy. The training loss
    is its negative.

    Notes
    -----
    Source: https://kexue.fm/archives/6620, "accuracy".

    Examples
    --------
    >>> p = onp.array([[0.9, 0.1], [0.3, 0.7]])
    >>> round(float(smooth_accuracy(p, onp.array([0, 0]))), 6)
    0.6
    """
    p = as_float(p, "p")
    B, K = check_ndim(p, "p", 2, "(B, K)")
    if B == 0 or K == 0:
        raise ValueError(f"p must have at least one sample and one class, got shape {(B, K)}")
    _check_prob(p, "p")
    y = check_labels(y, "y", K)
    if y.shape != (B,):
        raise ValueError(f"y must have shape (B,) = ({B},) to match p, got {y.shape}")
    # onehot(y_b), shape (B, K)
    onehot = (onp.arange(K) == y[:, None]).astype(value_of(p).dtype)
    # (1/B) Σ_b <onehot(y_b), p_b>
    return np.mean(np.sum(onehot * p, axis=-1))


def _prf_counts(p, t, average):
    """Soft counts Σ t·p, Σ p, Σ t over the batch (micro: every entry; macro: per column)."""
    p = as_float(p, "p")
    t = as_float(t, "t")
    check_same_shape(p, t, "p", "t")
    check_choice(average, "average", ("micro", "macro"))
    if value_of(p).size == 0:
        raise ValueError("p and t must not be empty")
    _check_prob(p, "p")
    _check_prob(t, "t")
    if average == "macro":
        check_ndim(p, "p", 2, "(B, K) for average='macro'")
        axis = 0
    else:
        axis = None
    # TP ≈ Σ t·p, predicted positives ≈ Σ p, actual positives = Σ t (correctly rounded sums)
    return _fsum(t * p, axis), _fsum(p, axis), _fsum(t, axis), axis


@primitive
def _fsum(a, axis):
    r"""Σ a over ``axis`` (None: every entry), correctly rounded (``math.fsum``).

    A plain summation of B terms can be off by ~B/2 ulp; the soft counts are the whole of the
    smooth metrics, so they are summed exactly and rounded once. The derivative is the
    ordinary one (every term has weight 1).
    """
    a = onp.asarray(a)
    if axis is None:
        return onp.asarray(math.fsum(a.reshape(-1).tolist()), dtype=a.dtype)
    moved = onp.moveaxis(a, axis, -1)
    sums = [math.fsum(row) for row in moved.reshape(-1, moved.shape[-1]).tolist()]
    return onp.asarray(sums, dtype=a.dtype).reshape(moved.shape[:-1])


def _unsum(g, a, axis):
    """The VJP of a sum: g broadcast back over the summed axis (traceable)."""
    if axis is not None:
        g = np.expand_dims(g, axis)
    return g * onp.ones(onp.shape(value_of(a)), dtype=value_of(a).dtype)


defvjp(_fsum, lambda ans, a, axis: lambda g: _unsum(g, a, axis))
defjvp(_fsum, lambda v, ans, a, axis: _fsum(v, axis))


@primitive
def _share(a, r):
    r"""a / (a + r) for a, r ≥ 0, with the derivatives r/(a + r)² and −a/(a + r)².

    Written so because the quotient rule applied to a / (a + r) subtracts a/(a + r)² from
    1/(a + r): when r ≪ a (a precision near 1) the two agree to many digits and the
    difference, the whole derivative, keeps only the rest.
    """
    return a / (a + r)


defvjp(_share,
       lambda ans, a, r: lambda g: g * r / (a + r) ** 2,
       lambda ans, a, r: lambda g: -g * a / (a + r) ** 2)
defjvp(_share,
       lambda v, ans, a, r: v * r / (a + r) ** 2,
       lambda v, ans, a, r: -v * a / (a + r) ** 2)


def smooth_f1(p, t, eps=1e-7, average="micro"):
    r"""Smooth F1 of the positive class, the post's batch-level form.

    .. math:: F_1 = \frac{2\,TP}{2\,TP + FP + FN} \;\approx\;
              \frac{2 \sum_b t_b p_b}{\sum_b (t_b + p_b) + \varepsilon}

    Parameters
    ----------
    p : array, predicted positive probabilities in [0, 1]: any shape for "micro", (B, K) for
        "macro".
    t : array of the same shape, targets in [0, 1] (usually 0/1).
    eps : float ≥ 0 added to the denominator (0 requires a non-zero denominator).
    average : "micro" (default: sums over every entry, the post's form) or "macro" (F1 per
        column over the batch axis, then the mean over the K columns).

    Returns
    -------
    0-d array in [0, 1]. With p ∈ {0, 1} and eps = 0 it equals the hard F1 2TP/(2TP + FP + FN).

    Notes
    -----
    Source: https://kexue.fm/archives/6620, "F1". The post warns the estimate is biased (the
    denominator is a batch sum too) and advises fine-tuning with −F1 only after cross-entropy.
    It is not a per-sample loss: splitting a batch changes it. "macro" follows
    ``ashrefm/multi-label-soft-f1`` (whose ε varies between 1e-16 and 1e-7 across copies).

    Examples
    --------
    >>> p = onp.array([1., 1., 0., 0.]); t = onp.array([1., 0., 1., 0.])
    >>> round(float(smooth_f1(p, t, eps=0.0)), 6)   # TP = 1, FP = 1, FN = 1
    0.5
    """
    tp, pp, ap, _ = _prf_counts(p, t, average)
    # F1 ≈ 2 Σ t p / (Σ t + Σ p + ε)
    f1 = 2 * tp / _denominator(ap + pp, eps, "Σ t + Σ p")
    return np.mean(f1) if average == "macro" else f1


def smooth_precision(p, t, eps=1e-7, average="micro"):
    r"""Smooth precision (library decision; the post says "similarly" without a formula).

    .. math:: P \approx \frac{\sum_b t_b p_b}{\sum_b p_b + \varepsilon}

    Parameters
    ----------
    p, t, eps, average : as in :func:`smooth_f1`.

    Returns
    -------
    0-d array in [0, 1].

    Notes
    -----
    Source: https://kexue.fm/archives/6620 ("the other counts are smoothed similarly");
    formula: SPEC §3.2, ``decision``.
    """
    tp, pp, _, axis = _prf_counts(p, t, average)
    _denominator(pp, eps, "Σ p")
    # false positives FP = Σ (1 − t) p, summed directly rather than as Σ p − Σ t p
    fp = _fsum((1 - as_float(t, "t")) * as_float(p, "p"), axis)
    # P ≈ Σ t p / (Σ p + ε) = TP / (TP + (FP + ε))
    out = _share(tp, fp + float(eps))
    return np.mean(out) if average == "macro" else out


def smooth_recall(p, t, eps=1e-7, average="micro"):
    r"""Smooth recall (library decision, as :func:`smooth_precision`).

    .. math:: R \approx \frac{\sum_b t_b p_b}{\sum_b t_b + \varepsilon}

    Parameters
    ----------
    p, t, eps, average : as in :func:`smooth_f1`.

    Returns
    -------
    0-d array in [0, 1].

    Notes
    -----
    Source: https://kexue.fm/archives/6620; formula: SPEC §3.2, ``decision``.
    """
    tp, _, ap, _ = _prf_counts(p, t, average)
    # R ≈ Σ t p / (Σ t + ε)
    out = tp / _denominator(ap, eps, "Σ t")
    return np.mean(out) if average == "macro" else out


def _denominator(d, eps, what):
    eps = float(eps)
    if not onp.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if eps == 0 and onp.any(value_of(d) == 0):
        raise ValueError(f"the denominator {what} is 0 and eps = 0: the score is undefined; "
                         "pass eps > 0")
    return d + eps


def _check_prob(p, name):
    arr = check_float_array(p, name)
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1], "
                         f"got values in [{arr.min()}, {arr.max()}]")


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
    max(x, 0); the posts do not write it down (SPEC §3.2, §8).
    """
    x = as_float(x, "x")
    check_float_array(x, "x")
    k = check_positive(scale, "scale")
    # relu(x) = max(x, 0) ≈ (1/K) LSE(Kx, 0)
    return nx._softplus(k * x) / k
