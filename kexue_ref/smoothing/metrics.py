r"""Smooth metrics: accuracy, precision, recall and F1 with soft counts.

Post https://kexue.fm/archives/6620, sections "accuracy" (:func:`smooth_accuracy`) and "F1"
(:func:`smooth_f1`); :func:`smooth_precision` and :func:`smooth_recall` are the library's
reading of the post's "the other counts are smoothed similarly" (``docs/smoothing.md``
§ "F1 (positive class)").

Notation: ``p`` predicted probabilities, ``t`` targets in [0, 1], ``y`` integer labels
(0-based); B the batch, K the class count. The soft counts are TP ≈ Σ t·p, predicted
positives ≈ Σ p, actual positives = Σ t, each summed exactly and rounded once.
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref._validate import (
    as_float, check_choice, check_float_array, check_labels, check_ndim, check_same_shape, value_of,
)

__all__ = ["smooth_accuracy", "smooth_f1", "smooth_precision", "smooth_recall"]


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
    formula: a library decision, ``docs/smoothing.md`` § "F1 (positive class)".
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
    Source: https://kexue.fm/archives/6620; formula: a library decision, ``docs/smoothing.md``
    § "F1 (positive class)".
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
