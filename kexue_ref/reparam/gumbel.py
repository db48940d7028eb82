r"""The Gumbel family: Gumbel-Max and Gumbel-Softmax, with the accurate softmax they need.

Post: https://kexue.fm/archives/6705, sections "Gumbel Max" (an exact categorical sample,
argmax(o + g)) and "Gumbel Softmax" (its relaxation softmax((o + g)/τ)); papers: Jang, Gu &
Poole, arXiv 1611.01144; Maddison, Mnih & Teh, arXiv 1611.00712. Straight-through
(``hard=True``) is an extension the post does not describe.

The private softmax here (:func:`_softmax`, the shared max-shifted kernel with its own VJP/JVP
:func:`_softmax_jtp`) and the tempered scores (:func:`_tempered_scores`) keep the values and
the gradients accurate at small τ; ``docs/reparam.md`` ("Accuracy of the softmax gradients and
at small τ") explains both. :mod:`~kexue_ref.reparam.estimators` uses them too.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_positive, value_of
from kexue_ref.reparam._common import _onehot, _scores


# ---------------------------------------------------------------------------
# Gumbel-Max and Gumbel-Softmax
# ---------------------------------------------------------------------------

def gumbel_max(logits, g, *, axis=-1, onehot=False, given="logits"):
    r"""Gumbel-Max: an exact sample of the categorical distribution softmax(o).

    .. math:: \hat{y} = \mathop{\mathrm{argmax}}_i \big(\log p_i - \log(-\log u_i)\big)
              = \mathop{\mathrm{argmax}}_i (o_i + g_i), \qquad P(\hat{y} = i) = p_i

    Parameters
    ----------
    logits : array broadcastable to ``g.shape`` with the K categories along ``axis``:
        logits o (any real numbers; log p is a special case and gives the same sample;
        ``-inf`` marks a category of probability 0), or probabilities p with
        ``given="probs"`` (p ≥ 0, summing to 1 within :data:`SIMPLEX_ATOL`).
    g : array (S, ..., K, ...), standard Gumbel noise; it carries the sample shape.
    axis : int, the category axis of ``g``.
    onehot : bool, return the one-hot vector instead of the index.
    given : "logits" (default) or "probs".

    Returns
    -------
    int64 array, ``g.shape`` without ``axis`` (0-based indices); or with ``onehot=True`` a
    float array of ``g.shape`` (the dtype of ``logits + g``). Ties, which have probability 0,
    go to the first index.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Max": given u₁, category 1 beats
    j iff u_j < u₁^{p_j/p₁}; the events are independent, so P(1 wins | u₁) = u₁^{1/p₁ − 1}
    and ∫₀¹ u^{1/p₁ − 1} du = p₁ (checked numerically in ``docs/reparam.md``). It is a
    reparameterization, but not a differentiable one.

    Examples
    --------
    >>> o = onp.log(onp.array([0.1, 0.2, 0.3, 0.4]))
    >>> int(gumbel_max(o, onp.array([2.0, 0.0, 0.0, 0.0])))   # log 0.1 + 2 > log 0.4
    0
    >>> gumbel_max(o, onp.zeros(4), onehot=True).tolist()
    [0.0, 0.0, 0.0, 1.0]
    """
    o, g, axis = _scores(logits, g, axis, given)
    if not isinstance(onehot, bool):
        raise TypeError(f"onehot must be True or False, got {onehot!r}")
    # ŷ = argmax_i (o_i + g_i)
    index = onp.argmax(value_of(o) + value_of(g), axis=axis)  # g.shape without axis
    if not onehot:
        return index.astype(onp.int64)
    return _onehot(index, value_of(g).shape[axis], axis, onp.result_type(value_of(o), value_of(g)))


def gumbel_softmax(logits, g, tau, *, hard=False, axis=-1, given="logits"):
    r"""Gumbel-Softmax: a differentiable relaxation of the Gumbel-Max sample.

    .. math:: \tilde{y} = \mathrm{softmax}\!\left(\frac{o + g}{\tau}\right),
              \qquad \tau > 0

    With ``hard=True`` (straight-through, an **extension** the post does not describe) the
    forward value is exactly :math:`\mathrm{onehot}(\mathrm{argmax}_i (o_i + g_i))` and the
    gradient is that of ỹ:

    .. math:: y = y_{\mathrm{hard}} + \big(\tilde{y} - \mathrm{sg}(\tilde{y})\big)

    Parameters
    ----------
    logits : array broadcastable to ``g.shape`` with the K categories along ``axis``: logits o
        (log p gives identical results, the post's tip: softmax is shift-invariant), or
        probabilities p with ``given="probs"``. ``-inf`` logits (p = 0) get weight 0.
    g : array (S, ..., K, ...), standard Gumbel noise (see :func:`gumbel_from_uniform`).
    tau : float τ > 0; τ **divides** the scores. τ → 0 gives the Gumbel-Max one-hot, τ → ∞ the
        uniform vector 1/K.
    hard : bool, straight-through (see above).
    axis : int, the category axis of ``g``.
    given : "logits" (default) or "probs".

    Returns
    -------
    array of ``g.shape``; every slice along ``axis`` sums to 1.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Softmax"; Jang et al. arXiv
    1611.01144; Maddison et al. arXiv 1611.00712. ỹ is *not* a categorical sample: E[ỹ] ≠ p
    for moderate τ (Monte-Carlo values in ``docs/reparam.md``, "Gumbel-Softmax"), and its
    gradients grow like 1/τ. The author's Keras layer is the soft form (no straight-through).

    Straight-through is written so that the forward value is exactly one-hot (y_hard plus an
    exact zero), unlike torch's ``y_hard - y_soft.detach() + y_soft``, whose "1" can be
    1 ± ulp; both have the gradient of ỹ. The hard index is argmax(o + g), the Gumbel-Max
    sample of :func:`gumbel_max` (torch takes the argmax of ỹ, which is the same index except
    when rounding ties two entries of ỹ).

    Examples
    --------
    >>> o = onp.log(onp.array([0.1, 0.2, 0.3, 0.4]))
    >>> g = onp.array([0.5, -0.3, 1.2, 0.1])
    >>> gumbel_softmax(o, g, 1.0).round(4).tolist()
    [0.0942, 0.0846, 0.5688, 0.2524]
    >>> gumbel_softmax(o, g, 0.1).round(4).tolist()
    [0.0, 0.0, 0.9997, 0.0003]
    >>> gumbel_softmax(o, g, 1.0, hard=True).tolist()
    [0.0, 0.0, 1.0, 0.0]
    """
    o, g, axis = _scores(logits, g, axis, given)
    t = check_positive(tau, "tau")
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be True or False, got {hard!r}")
    # ỹ = softmax((o + g)/τ), the scores shifted by their maximum before the division by τ
    y_soft = _softmax(_tempered_scores(o, g, t, axis), axis)  # g.shape
    if not hard:
        return y_soft
    # y_hard = onehot(argmax_i (o_i + g_i))
    index = onp.argmax(value_of(o) + value_of(g), axis=axis)
    y_hard = _onehot(index, value_of(g).shape[axis], axis, value_of(y_soft).dtype)
    # y = y_hard + (ỹ − sg(ỹ)): the bracket is exactly 0 in value and has the gradient of ỹ
    return y_hard + (y_soft - nx.stop_gradient(y_soft))


# ---------------------------------------------------------------------------
# Softmax with a well-conditioned Jacobian product
# ---------------------------------------------------------------------------

def _softmax_jtp(y, c, axis):
    r"""The softmax Jacobian times a vector, ỹ ⊙ (c − <c, ỹ>), without cancellation.

    .. math:: \tilde y_r\Big(c_r - \sum_i \tilde y_i c_i\Big)
              = -\tilde y_r \sum_{i\ne r} \tilde y_i\,(c_i - c_r),
              \qquad r = \mathop{\mathrm{argmax}}_i \tilde y_i

    (equal since Σ_i ỹ_i = 1); the other entries are ỹ_j (c_j − Σ_i ỹ_i c_i) as written.
    Written as ``y * (c - sum(c * y))`` the entry of the dominant category cancels: at
    τ = 10⁻³ its ỹ_r is 1 − 10⁻²⁰⁰, ``sum(c * y)`` rounds to c_r and the result to 0 instead of
    −ỹ_r Σ_{i≠r} ỹ_i (c_i − c_r). The right-hand form has no cancellation (its i = r term is
    exactly 0). For the other entries the plain form is kept: there 1 − ỹ_j is not small, and
    shifting by c_r would add the rounding of c_i − c_r when |c_r| is large.

    Parameters
    ----------
    y : array, a softmax along ``axis`` (entries ≥ 0 summing to 1).
    c : array broadcastable to ``y``, the vector (a cotangent, a tangent, or ∇f).
    axis : int.

    Returns
    -------
    array of the broadcast shape. (The Jacobian diag(ỹ) − ỹỹᵀ is symmetric, so this is both
    the VJP and the JVP of softmax.)

    Notes
    -----
    Source: the softmax Jacobian of https://kexue.fm/archives/6705, section "Gumbel Softmax";
    ``docs/reparam.md`` ("Accuracy of the softmax gradients").
    """
    yv = value_of(y)
    shape = onp.broadcast_shapes(yv.shape, value_of(c).shape)
    c = c + np.zeros(shape, dtype=yv.dtype)
    # r = argmax_i ỹ_i, as a constant one-hot mask along the axis
    r = _onehot(onp.argmax(onp.broadcast_to(yv, shape), axis=axis), shape[axis], axis, yv.dtype)
    # d_i = c_i − c_r (exactly 0 at i = r: the sum adds zeros to c_r)
    d = c - np.sum(c * r, axis=axis, keepdims=True)
    # at r: ỹ_r (0 − Σ_{i≠r} ỹ_i d_i), no cancellation however close ỹ_r is to 1
    dominant = y * (d - np.sum(y * d, axis=axis, keepdims=True))
    # elsewhere: ỹ_j (c_j − Σ_i ỹ_i c_i), which rounds less than the shifted form when |c_r| is large
    plain = y * (c - np.sum(y * c, axis=axis, keepdims=True))
    return np.where(r > 0, dominant, plain)


def _tempered_scores(o, g, t, axis):
    r"""The scores of Gumbel-Softmax, :math:`(o + g - \max(o + g))/\tau`, with o + g compensated.

    softmax((o + g)/τ) equals softmax of this (a shift along ``axis``). At small τ the rounding
    of the float sum o + g (half an ulp of |o + g|) is multiplied by 1/τ in the exponent: at
    τ = 10⁻³ and |o + g| ≈ 5 a category with weight e⁻⁴⁶⁰ would carry a relative error of
    ~10⁻¹², and dividing the unshifted scores by τ first adds the rounding of numbers ~5000.
    Here the exact error of each sum (Knuth's TwoSum, a constant for autograd: it has no
    derivative) is added back after the shift, and the division comes last.

    Parameters
    ----------
    o : array broadcastable to ``g.shape`` (−∞ allowed, not in every entry of a slice).
    g : array, the Gumbel noise; ``g.shape`` is the result's shape.
    t : float τ > 0.
    axis : int, the category axis.

    Returns
    -------
    array of ``g.shape``; its maximum along ``axis`` is 0. The derivative w.r.t. o and g is
    1/τ, as for (o + g)/τ (the shift is a constant, which softmax does not see).

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Softmax"; TwoSum: Knuth, TAOCP
    vol. 2, §4.2.2; ``docs/reparam.md`` ("Accuracy at small τ").
    """
    s = o + g
    sv = value_of(s)
    ov = onp.broadcast_to(value_of(o), sv.shape)
    gv = onp.broadcast_to(value_of(g), sv.shape)
    with onp.errstate(invalid="ignore"):
        # TwoSum: s + err = o + g exactly (NaN from −∞ − (−∞) is replaced by 0 below)
        bp = sv - ov
        err = (ov - (sv - bp)) + (gv - bp)
    err = onp.where(onp.isfinite(sv), err, 0).astype(sv.dtype)
    # the shift: the maximum of s and the error of that entry, constants along axis
    r = onp.expand_dims(onp.argmax(sv, axis=axis), axis)
    m = onp.take_along_axis(sv, r, axis=axis)
    em = onp.take_along_axis(err, r, axis=axis)
    # ((s − m) + (err − err_m)) / τ
    return ((s - m) + (err - em)) / t


@primitive
def _softmax(x, axis):
    """softmax(x) along ``axis`` (the shared max-shifted kernel) with the VJP/JVP of :func:`_softmax_jtp`."""
    return nx._softmax(x, axis)


defvjp(_softmax, lambda ans, x, axis: lambda c: _softmax_jtp(ans, c, axis))
defjvp(_softmax, lambda v, ans, x, axis: _softmax_jtp(ans, v, axis))
