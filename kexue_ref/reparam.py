r"""Reparameterization: Normal, Gumbel-Max, Gumbel-Softmax, score-function and pathwise gradients.

Post: Su Jianlin, "漫谈重参数：从正态分布到Gumbel Softmax" (Random talk on
reparameterization: from the Normal distribution to Gumbel Softmax), 2019-06-10,
https://kexue.fm/archives/6705. Author code: ``bojone/vae`` ``vae_keras_cnn_gs.py``.
Papers: Jang, Gu & Poole, arXiv 1611.01144 (Gumbel-Softmax); Maddison, Mnih & Teh,
arXiv 1611.00712 (the Concrete distribution); Kusner & Hernández-Lobato, arXiv 1611.04051.

Notation (the post's): the objective is :math:`L_\theta = \mathbb{E}_{z\sim p_\theta}[f(z)]`;
``o`` are logits with :math:`p = \mathrm{softmax}(o)`; ``u`` uniform noise, ``g`` Gumbel noise,
``eps`` (ε) standard Normal noise; τ (``tau``) the temperature, which **divides** the scores.
Shapes use the legend of SPEC §1.2: K categories, S Monte-Carlo samples; ``...`` any batch.

Conventions: every random quantity is an argument (decision D2); the convenience samplers
take a ``numpy.random.Generator``. The categories run along ``axis=-1`` unless stated; the
noise carries the sample shape (logits broadcast to it). Gumbel noise from uniforms has one
named mode per public convention (``docs/reparam.md`` has the table). Extensions that the post
does not describe are marked as such: straight-through ``hard=True`` and the relaxed one-hot
(Concrete) log-density. Nothing mutates its inputs; everything but the samplers and the
integer outputs of :func:`gumbel_max` is traceable by autograd and keeps float32 as float32.
"""
import math
import numbers

import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref import _numerics as nx
from kexue_ref._validate import (
    as_float, check_axis, check_choice, check_float_array, check_positive, check_range, value_of,
)

__all__ = [
    "normal_reparam", "gumbel_from_uniform", "gumbel_from_exponential",
    "sample_uniform", "sample_gumbel", "sample_normal",
    "gumbel_max", "gumbel_softmax", "relaxed_onehot_log_prob",
    "categorical_expectation", "categorical_exact_grad", "score_function_grad",
    "categorical_score_function_grad", "gumbel_softmax_pathwise_grad",
    "normal_score_function_grad", "normal_pathwise_grad",
    "GUMBEL_MODES", "SIMPLEX_ATOL",
]

POST = "https://kexue.fm/archives/6705"

#: The named conventions of :func:`gumbel_from_uniform`.
GUMBEL_MODES = ("exact", "keras", "clip", "tiny")

#: How far a given probability vector may be from summing to 1 (|Σ p − 1|), in every dtype.
#: Loose enough for float32 sums and for finite-difference probes of a gradient check,
#: tight enough to refuse unnormalised weights.
SIMPLEX_ATOL = 1e-4


# ---------------------------------------------------------------------------
# Continuous reparameterization
# ---------------------------------------------------------------------------

def normal_reparam(mu, sigma, eps):
    r"""Normal reparameterization: a sample of N(μ, σ²) from standard Normal noise.

    .. math:: z = \mu + \sigma\,\varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, 1),
              \qquad \mathbb{E}_{z\sim\mathcal{N}(\mu,\sigma^2)}[f(z)]
              = \mathbb{E}_{\varepsilon\sim\mathcal{N}(0,1)}[f(\mu + \sigma\varepsilon)]

    Parameters
    ----------
    mu : array broadcastable to ``eps.shape``, the means μ.
    sigma : array broadcastable to ``eps.shape``, the standard deviations σ ≥ 0 (not variances,
        not log-σ).
    eps : array (S, ...), the noise ε; it carries the sample shape.

    Returns
    -------
    array of ``eps.shape``.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "连续情形" (the continuous case): a change
    of variables moves the parameters from the distribution into the sampled expression.
    σ = 0 is allowed (z = μ); σ < 0 is refused.

    Examples
    --------
    >>> normal_reparam(onp.array(1.0), onp.array(2.0), onp.array([-1.0, 0.0, 0.5])).tolist()
    [-1.0, 1.0, 2.0]
    """
    eps = _finite(eps, "eps")
    mu = _finite(mu, "mu")
    sigma = _finite(sigma, "sigma")
    shape = value_of(eps).shape
    _broadcasts_to(mu, "mu", shape, "eps")
    _broadcasts_to(sigma, "sigma", shape, "eps")
    _check_nonnegative(sigma, "sigma", "a standard deviation")
    # z = μ + σ ε
    return mu + sigma * eps


# ---------------------------------------------------------------------------
# Gumbel noise: one named mode per public convention
# ---------------------------------------------------------------------------

def gumbel_from_uniform(u, *, mode="exact", eps=None):
    r"""Standard Gumbel noise from uniform noise, in each framework's convention.

    .. math:: g = -\log(-\log u), \qquad u \sim U(0, 1), \qquad
              P(g \le x) = e^{-e^{-x}}

    The modes (each is what one public implementation does with the same uniforms):

    ``"exact"`` (default, the post): :math:`g = -\log(-\log u)`; u must lie in the open
    interval (0, 1), since u = 0 gives −∞ and u = 1 gives +∞.

    ``"keras"`` (the author's ``bojone/vae`` code, ε = ``K.epsilon()`` = 1e-7; ε = 1e-20 is the
    Jang et al. notebook): :math:`g = -\log(-\log(u + \varepsilon) + \varepsilon)`; u ∈ [0, 1),
    the range of the frameworks' uniform generators. u = 0 gives the finite value
    :math:`-\log(-\log\varepsilon + \varepsilon)`.

    ``"clip"`` (``torch.distributions`` ``clamp_probs``, ε = ``finfo(dtype).eps`` by default):
    :math:`g = -\log(-\log \mathrm{clip}(u, \varepsilon, 1 - \varepsilon))`; u ∈ [0, 1].

    ``"tiny"`` (TFP ``RelaxedOneHotCategorical`` and ``jax.random.gumbel``, which draw u from
    [``finfo.tiny``, 1)): :math:`g = -\log(-\log\max(u, \varepsilon))` with
    ε = ``finfo(dtype).tiny`` by default; u ∈ [0, 1).

    Parameters
    ----------
    u : array, any shape, the uniform noise.
    mode : "exact", "keras", "clip" or "tiny".
    eps : float or None, the mode's constant (None: the default above). Not used by "exact".

    Returns
    -------
    array of ``u.shape``, finite, in the dtype of ``u``.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Max" (g = −log(−log ε) with
    ε ∼ U[0, 1] in the post's symbols); SPEC §6.2 "Noise transforms" and §6.5. Every mode
    refuses u outside its domain with a ``ValueError`` rather than returning ±inf or NaN
    (pytorch#22557, #101620, tensorflow/probability#1738 are NaN reports of this kind). In
    float32, u = 1 under "keras" would give a NaN (1 + ε rounds up, so −log(1 + ε) + ε < 0),
    which is one reason the mode refuses u = 1.

    Examples
    --------
    >>> round(float(gumbel_from_uniform(onp.exp(-1.0))), 12)     # −log(−log e⁻¹) = 0
    0.0
    >>> round(float(gumbel_from_uniform(0.0, mode="keras")), 4)  # −log(−log 1e-7 + 1e-7)
    -2.78
    """
    u = as_float(u, "u")
    arr = check_float_array(u, "u")
    check_choice(mode, "mode", GUMBEL_MODES)
    dt = arr.dtype
    if mode == "exact":
        if eps is not None:
            raise ValueError("eps is not used by mode='exact' (pass eps=None)")
        _check_uniform(arr, mode, low_open=True, high_open=True)
        # g = −log(−log u), with −log u > 0 on (0, 1)
        return -np.log(-np.log(u))
    if mode == "keras":
        e = 1e-7 if eps is None else check_positive(eps, "eps")
        _check_uniform(arr, mode, low_open=False, high_open=True)
        e = nx._const(e, u)
        # inner = −log(u + ε) + ε, positive in exact arithmetic for u ∈ [0, 1)
        inner = -np.log(u + e) + e
        _check_positive_values(inner, u, "−log(u + eps) + eps", mode)
        # g = −log(inner)
        return -np.log(inner)
    if mode == "clip":
        e = float(onp.finfo(dt).eps) if eps is None else check_range(eps, "eps", 0.0, 0.5)
        _check_uniform(arr, mode, low_open=False, high_open=False)
        lo, hi = nx._const(e, u), nx._const(1.0, u) - nx._const(e, u)
        if not (0 < lo and hi < 1):
            raise ValueError(f"eps = {e} is too small for mode='clip' in {dt}: the clamp bounds "
                             f"eps and 1 - eps round to 0 or 1; use eps >= finfo({dt}).eps or "
                             "mode='tiny' for a lower bound only")
        # ū = clip(u, ε, 1 − ε)
        uc = np.where(u < lo, lo, np.where(u > hi, hi, u))
        # g = −log(−log ū)
        return -np.log(-np.log(uc))
    # mode == "tiny"
    e = float(onp.finfo(dt).tiny) if eps is None else check_range(eps, "eps", 0.0, 1.0)
    _check_uniform(arr, mode, low_open=False, high_open=True)
    lo = nx._const(e, u)
    if not lo > 0:
        raise ValueError(f"eps = {e} rounds to 0 in {dt}; mode='tiny' needs a positive lower bound")
    # ū = max(u, ε)
    uc = np.where(u < lo, lo, u)
    # g = −log(−log ū)
    return -np.log(-np.log(uc))


def gumbel_from_exponential(e):
    r"""Standard Gumbel noise from standard Exponential noise, as ``torch.nn.functional`` does.

    .. math:: g = -\log E, \qquad E \sim \mathrm{Exp}(1)

    (E = −log u for u ∼ U(0, 1), so this is the exact mode of :func:`gumbel_from_uniform`.)

    Parameters
    ----------
    e : array, any shape, the Exponential noise; every entry > 0 and finite.

    Returns
    -------
    array of ``e.shape``.

    Notes
    -----
    Source: ``pytorch/pytorch`` ``torch/nn/functional.py`` ``gumbel_softmax``
    (``-torch.empty_like(logits).exponential_().log()``), SPEC §6.2. E = 0 (which the CPU
    ``exponential_`` returns with probability about 2⁻⁵³, pytorch#22557) would give g = +∞
    and is refused.

    Examples
    --------
    >>> gumbel_from_exponential(onp.array([1.0, onp.e])).tolist()
    [-0.0, -1.0]
    """
    e = as_float(e, "e")
    arr = check_float_array(e, "e")
    if arr.size and arr.min() <= 0:
        raise ValueError(f"e must hold Exponential draws > 0 (e = 0 gives g = +inf), got "
                         f"{arr.min()} at index {_first(arr <= 0)}")
    # g = −log E
    return -np.log(e)


# ---------------------------------------------------------------------------
# Convenience samplers (the only functions that draw; they take a Generator, D2)
# ---------------------------------------------------------------------------

def sample_uniform(rng, shape, dtype=onp.float64):
    r"""Uniform noise on the open interval (0, 1), drawn from ``rng``.

    .. math:: u \sim U(0, 1)

    Parameters
    ----------
    rng : numpy.random.Generator (never a seed or the global state, decision D2).
    shape : int or tuple of ints.
    dtype : numpy.float64 or numpy.float32.

    Returns
    -------
    array of ``shape`` in (0, 1): ``rng.random`` draws [0, 1) and exact zeros (probability
    2⁻⁵³ in float64, 2⁻²⁴ in float32) are drawn again, so :func:`gumbel_from_uniform` with
    ``mode="exact"`` accepts every sample.

    Notes
    -----
    Source: SPEC §1.3 (random inputs), §6.3 (u = 0 gives g = −∞).
    """
    rng, dtype = _check_rng(rng), _check_dtype(dtype)
    u = rng.random(shape, dtype=dtype)
    while (u == 0).any():
        zero = u == 0
        u[zero] = rng.random(int(zero.sum()), dtype=dtype)
    return u


def sample_gumbel(rng, shape, dtype=onp.float64):
    r"""Standard Gumbel noise, ``gumbel_from_uniform(sample_uniform(rng, shape), mode="exact")``.

    .. math:: g = -\log(-\log u), \qquad u \sim U(0, 1)

    Parameters
    ----------
    rng : numpy.random.Generator.
    shape : int or tuple of ints.
    dtype : numpy.float64 or numpy.float32.

    Returns
    -------
    array of ``shape``: mean γ ≈ 0.5772 (Euler's constant), variance π²/6.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Max".
    """
    return gumbel_from_uniform(sample_uniform(rng, shape, dtype), mode="exact")


def sample_normal(rng, shape, dtype=onp.float64):
    r"""Standard Normal noise ε for :func:`normal_reparam`.

    .. math:: \varepsilon \sim \mathcal{N}(0, 1)

    Parameters
    ----------
    rng : numpy.random.Generator.
    shape : int or tuple of ints.
    dtype : numpy.float64 or numpy.float32.

    Returns
    -------
    array of ``shape``.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "连续情形".
    """
    rng, dtype = _check_rng(rng), _check_dtype(dtype)
    return rng.standard_normal(shape, dtype=dtype)


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
    for moderate τ (SPEC §6.4), and its gradients grow like 1/τ. The author's Keras layer is
    the soft form (no straight-through).

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


# ---------------------------------------------------------------------------
# Gradient estimators for ∇_θ E_{z∼p_θ}[f(z)]
# ---------------------------------------------------------------------------

def categorical_expectation(logits, f_values):
    r"""The objective for one categorical variable, by enumeration.

    .. math:: L_\theta = \mathbb{E}_{y\sim p_\theta}[f(y)] = \sum_{y=1}^{K} p_\theta(y)\,f(y),
              \qquad p_\theta = \mathrm{softmax}(o)

    Parameters
    ----------
    logits : array (..., K), the logits o.
    f_values : array broadcastable to ``logits.shape``, the table f(y) of the K values.

    Returns
    -------
    array (...). Its autograd gradient w.r.t. ``logits`` is :func:`categorical_exact_grad`.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, eq. of the objective (离散情形, the discrete case).
    Enumeration is exact and feasible only for small K (the post: not for |V|^l sequences).

    Examples
    --------
    >>> round(float(categorical_expectation(onp.log([0.1, 0.2, 0.3, 0.4]), [1.0, 2.0, 3.0, 4.0])), 12)
    3.0
    """
    o, f = _logits_and_values(logits, f_values)
    # L = Σ_y softmax(o)_y f(y)
    return np.sum(_softmax(o, -1) * f, axis=-1)


def categorical_exact_grad(logits, f_values):
    r"""The exact gradient of the categorical objective w.r.t. the logits, by enumeration.

    .. math:: \nabla_o L = \sum_y f(y)\,p(y)\,\nabla_o \log p(y)
              = \sum_y f(y)\,p(y)\,(e_y - p) = p \odot (f - L)

    Parameters
    ----------
    logits : array (..., K), the logits o.
    f_values : array broadcastable to ``logits.shape``, the table f(y).

    Returns
    -------
    array of the broadcast shape (..., K): the ascent direction of L (negate it to minimise
    L). Its entries sum to 0 (softmax is shift-invariant).

    Notes
    -----
    Source: https://kexue.fm/archives/6705 (the score-function identity
    ∇E[f] = E[f ∇ log p], here summed exactly). The unbiasedness checks of the Monte-Carlo
    estimators compare with this value.

    Examples
    --------
    >>> categorical_exact_grad(onp.zeros(2), [0.0, 1.0]).tolist()   # p = ½: ∂L/∂o = ±¼
    [-0.25, 0.25]
    """
    o, f = _logits_and_values(logits, f_values)
    p = _softmax(o, -1)
    # ∇_o L = Σ_y f_y p_y (e_y − p) = p ⊙ (f − L), L = Σ_y p_y f_y, without cancellation
    return _softmax_jtp(p, f, -1)


def score_function_grad(f_values, score, *, baseline=0.0):
    r"""Per-sample score-function (REINFORCE) estimates from f values and scores.

    .. math:: \hat{g}_s = \big(f(z_s) - b\big)\,\nabla_\theta \log p_\theta(z_s),
              \qquad \nabla_\theta L_\theta \approx \frac{1}{S}\sum_{s=1}^{S} \hat{g}_s

    Parameters
    ----------
    f_values : array (S,), f(z_s) for the S samples; f need not be differentiable.
    score : array (S, ...), the score ∇_θ log p_θ(z_s) of each sample.
    baseline : float b (default 0: the plain estimator), or "loo" for the leave-one-out
        baseline :math:`b_s = \frac{1}{S-1}\sum_{t\ne s} f(z_t)` (needs S ≥ 2). Both keep the
        estimator unbiased, since E[∇ log p] = 0 and b_s does not depend on z_s.

    Returns
    -------
    array of ``score.shape``: one estimate per sample; ``.mean(0)`` is the estimate of
    ∇_θ L and ``.var(0)`` shows its noise. Sign: the gradient of L (ascent direction).

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section on the score function: ∇_θ E[f] =
    E[f ∇_θ log p_θ]; single draws are noisy (the post's [4, 5, 6] versus [0, 5, 10]).
    Conventions of peers (SPEC §6.5): ``tfp.monte_carlo.expectation`` builds the surrogate
    f·p/sg(p) whose gradient is this estimate averaged; optax returns per-sample values like
    here, with control variates kept separate.

    Examples
    --------
    >>> score_function_grad(onp.array([1.0, 3.0]), onp.array([[1.0], [-1.0]])).tolist()
    [[1.0], [-3.0]]
    >>> score_function_grad(onp.array([1.0, 3.0]), onp.array([[1.0], [-1.0]]), baseline="loo").tolist()
    [[-2.0], [-2.0]]
    """
    f = _finite(f_values, "f_values")
    score = _finite(score, "score")
    sv = value_of(score)
    if value_of(f).ndim != 1 or sv.ndim < 1 or value_of(f).shape[0] != sv.shape[0]:
        raise ValueError(f"f_values must have shape (S,) and score (S, ...) with the same S, "
                         f"got {value_of(f).shape} and {sv.shape}")
    # (f(z_s) − b_s), one value per sample; shape (S, 1, ..., 1) against the score
    fb = _minus_baseline(f, baseline)
    return np.reshape(fb, (-1,) + (1,) * (sv.ndim - 1)) * score


def categorical_score_function_grad(logits, f_values, g, *, baseline=0.0):
    r"""Per-sample score-function estimates of ∇_o E_{y∼softmax(o)}[f(y)], sampling by Gumbel-Max.

    .. math:: y_s = \mathop{\mathrm{argmax}}_i(o_i + g_{s,i}), \qquad
              \hat{g}_s = \big(f(y_s) - b\big)\,\big(e_{y_s} - \mathrm{softmax}(o)\big)

    (:math:`\nabla_o \log \mathrm{softmax}(o)_y = e_y - \mathrm{softmax}(o)`.)

    Parameters
    ----------
    logits : array (K,), the logits o.
    f_values : array (K,), the table f(y).
    g : array (S, K), Gumbel noise; the same g can drive
        :func:`gumbel_softmax_pathwise_grad` (common random numbers).
    baseline : float or "loo", as in :func:`score_function_grad`.

    Returns
    -------
    array (S, K); the mean over S is unbiased for :func:`categorical_exact_grad`.

    Notes
    -----
    Source: https://kexue.fm/archives/6705 (score function for discrete y, Gumbel-Max
    sampling). The sample y_s is piecewise constant in o, so the estimate's derivative w.r.t.
    o only sees the score term.

    Examples
    --------
    >>> categorical_score_function_grad(onp.zeros(2), onp.array([0.0, 1.0]),
    ...                                 onp.array([[0.0, 1.0], [1.0, 0.0]])).tolist()
    [[-0.5, 0.5], [0.0, 0.0]]
    """
    o, f = _logits_and_values(logits, f_values, one_d=True)
    g = _finite(g, "g")
    K = value_of(o).shape[0]
    if value_of(g).ndim != 2 or value_of(g).shape[1] != K:
        raise ValueError(f"g must have shape (S, K) = (S, {K}), got {value_of(g).shape}")
    # y_s = argmax_i (o_i + g_{s,i}), as one-hot rows e_{y_s}
    e_y = _onehot(onp.argmax(value_of(o) + value_of(g), axis=-1), K, -1, value_of(o).dtype)  # (S, K)
    # f(y_s) = <e_{y_s}, f>
    f_y = np.sum(e_y * f, axis=-1)  # (S,)
    # ∇_o log p(y_s) = e_{y_s} − softmax(o)
    score = e_y - _softmax(o, -1)  # (S, K)
    return score_function_grad(f_y, score, baseline=baseline)


def gumbel_softmax_pathwise_grad(logits, g, df_dy, tau):
    r"""Per-sample pathwise (reparameterization) estimates through Gumbel-Softmax.

    .. math:: \tilde{y}_s = \mathrm{softmax}\!\left(\frac{o + g_s}{\tau}\right), \qquad
              \hat{g}_s = \left(\frac{\partial \tilde{y}_s}{\partial o}\right)^{\!\top}
              \nabla f = \frac{1}{\tau}\,\tilde{y}_s \odot
              \big(\nabla f - \langle \nabla f, \tilde{y}_s\rangle\big)

    Parameters
    ----------
    logits : array (K,), the logits o.
    g : array (S, K), Gumbel noise.
    df_dy : array (S, K) or (K,), the gradient of f at each sample: at ỹ_s for the soft
        estimator, at the one-hot y_hard for straight-through (``gumbel_softmax(hard=True)``);
        for a linear f(y) = <f, y> it is the table f itself, and both coincide.
    tau : float τ > 0.

    Returns
    -------
    array (S, K). The mean is unbiased for ∇_o E[f(ỹ)] (the relaxed objective), **not** for
    ∇_o E[f(y)]: the bias vanishes as τ → 0, while the variance grows like 1/τ.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "Gumbel Softmax" (the reparameterized
    gradient of the relaxed sample); Jang et al. arXiv 1611.01144. The Jacobian of the softmax
    of s = (o + g)/τ is diag(ỹ) − ỹỹᵀ, times 1/τ from s.

    Examples
    --------
    >>> gumbel_softmax_pathwise_grad(onp.zeros(2), onp.zeros((1, 2)), onp.array([0.0, 1.0]), 0.5).tolist()
    [[-0.5, 0.5]]
    """
    o = _finite(logits, "logits")
    g = _finite(g, "g")
    df = _finite(df_dy, "df_dy")
    if value_of(o).ndim != 1:
        raise ValueError(f"logits must have shape (K,), got {value_of(o).shape}")
    K = value_of(o).shape[0]
    if value_of(g).ndim != 2 or value_of(g).shape[1] != K:
        raise ValueError(f"g must have shape (S, K) = (S, {K}), got {value_of(g).shape}")
    if value_of(df).shape not in ((K,), value_of(g).shape):
        raise ValueError(f"df_dy must have shape (S, K) = {value_of(g).shape} or (K,) = ({K},), "
                         f"got {value_of(df).shape}")
    t = check_positive(tau, "tau")
    # ỹ_s = softmax((o + g_s)/τ), the scores shifted by their maximum before the division by τ
    y = _softmax(_tempered_scores(o, g, t, -1), -1)  # (S, K)
    # ĝ_s = (1/τ) ỹ_s ⊙ (∇f − <∇f, ỹ_s>), without cancellation at the dominant category
    return _softmax_jtp(y, df, -1) / t


def normal_score_function_grad(f_values, sigma, eps, *, baseline=0.0):
    r"""Per-sample score-function estimates of ∇_{μ,σ} E_{z∼N(μ,σ²)}[f(z)].

    .. math:: z_s = \mu + \sigma\varepsilon_s, \qquad
              \nabla_\mu \log \mathcal{N}(z_s;\mu,\sigma^2) = \frac{\varepsilon_s}{\sigma},
              \qquad \nabla_\sigma \log \mathcal{N}(z_s;\mu,\sigma^2)
              = \frac{\varepsilon_s^2 - 1}{\sigma},

    .. math:: \hat{g}_{\mu,s} = (f(z_s) - b)\,\frac{\varepsilon_s}{\sigma}, \qquad
              \hat{g}_{\sigma,s} = (f(z_s) - b)\,\frac{\varepsilon_s^2 - 1}{\sigma}

    Parameters
    ----------
    f_values : array (S,), f(z_s) at z_s = ``normal_reparam(mu, sigma, eps)[s]``.
    sigma : array broadcastable to ``eps.shape``, σ > 0.
    eps : array (S, ...), the noise that produced the samples.
    baseline : float or "loo", as in :func:`score_function_grad`.

    Returns
    -------
    (d_mu, d_sigma) : two arrays of ``eps.shape``, one estimate per sample and coordinate.

    Notes
    -----
    Source: https://kexue.fm/archives/6705. μ enters only through the f values: the scores
    are written with ε = (z − μ)/σ. For the post's example f(z) = z², μ = 1, σ = 2,
    the μ-estimate z²ε/σ has variance (μ⁴ + 18μ²σ² + 15σ⁴)/σ² − 4μ² = 74.25, against 16 for
    the pathwise estimate (SPEC §6.4).

    Examples
    --------
    >>> d_mu, d_sigma = normal_score_function_grad(onp.array([9.0]), 2.0, onp.array([1.0]))
    >>> float(d_mu[0]), float(d_sigma[0])     # z = 3, f = 9: 9·1/2 and 9·0/2
    (4.5, 0.0)
    """
    f = _finite(f_values, "f_values")
    eps = _finite(eps, "eps")
    sigma = _finite(sigma, "sigma")
    shape = value_of(eps).shape
    if len(shape) < 1 or value_of(f).shape != shape[:1]:
        raise ValueError(f"f_values must have shape (S,) and eps (S, ...) with the same S, "
                         f"got {value_of(f).shape} and {shape}")
    _broadcasts_to(sigma, "sigma", shape, "eps")
    sv = value_of(sigma)
    if sv.size and sv.min() <= 0:
        raise ValueError(f"sigma must be > 0 for the score (it divides by σ), got {sv.min()}")
    # (f(z_s) − b_s), shaped (S, 1, ..., 1)
    fb = np.reshape(_minus_baseline(f, baseline), (-1,) + (1,) * (len(shape) - 1))
    # ĝ_μ = (f − b) ε/σ
    d_mu = fb * eps / sigma
    # ĝ_σ = (f − b)(ε² − 1)/σ
    d_sigma = fb * (eps * eps - 1) / sigma
    return d_mu, d_sigma


def normal_pathwise_grad(df_dz, eps):
    r"""Per-sample pathwise (reparameterization) estimates of ∇_{μ,σ} E[f(μ + σε)].

    .. math:: \hat{g}_{\mu,s} = f'(z_s)\,\frac{\partial z_s}{\partial \mu} = f'(z_s),
              \qquad \hat{g}_{\sigma,s} = f'(z_s)\,\frac{\partial z_s}{\partial \sigma}
              = f'(z_s)\,\varepsilon_s

    Parameters
    ----------
    df_dz : array (S, ...), the derivative of f at z_s = μ + σε_s.
    eps : array of the same shape, the noise.

    Returns
    -------
    (d_mu, d_sigma) : two arrays of ``eps.shape``.

    Notes
    -----
    Source: https://kexue.fm/archives/6705, section "连续情形": the gradient is
    E_ε[(∂f/∂g)(∂g_θ/∂θ)]. Only the values of f' at the samples enter; the score-function
    estimator needs f itself but not its derivative. For f = z², μ = 1, σ = 2 the μ-estimate
    2z has variance 4σ² = 16.

    Examples
    --------
    >>> d_mu, d_sigma = normal_pathwise_grad(onp.array([6.0]), onp.array([1.0]))
    >>> float(d_mu[0]), float(d_sigma[0])     # f = z², z = 3: f' = 6
    (6.0, 6.0)
    """
    df = _finite(df_dz, "df_dz")
    eps = _finite(eps, "eps")
    if value_of(df).shape != value_of(eps).shape:
        raise ValueError(f"df_dz and eps must have the same shape (S, ...), got "
                         f"{value_of(df).shape} and {value_of(eps).shape}")
    # ∂f/∂μ = f'(z)·1,  ∂f/∂σ = f'(z)·ε
    return df * np.ones_like(eps), df * eps


# ---------------------------------------------------------------------------
# Private helpers
# ---------------------------------------------------------------------------

def _first(mask):
    return tuple(int(i) for i in onp.argwhere(mask)[0])


def _finite(x, name):
    x = as_float(x, name)
    check_float_array(x, name)
    return x


def _broadcasts_to(x, name, shape, target):
    xs = value_of(x).shape
    try:
        ok = onp.broadcast_shapes(xs, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {xs} must broadcast to the shape {shape} of {target} "
                         f"(the noise carries the sample shape)")


def _check_nonnegative(x, name, what):
    v = value_of(x)
    if v.size and v.min() < 0:
        raise ValueError(f"{name} must be >= 0 ({what}), got {v.min()} at index {_first(v < 0)}")


def _check_uniform(arr, mode, low_open, high_open):
    low_bad = arr <= 0 if low_open else arr < 0
    high_bad = arr >= 1 if high_open else arr > 1
    bad = low_bad | high_bad
    if bad.any():
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"u must lie in {interval} for mode={mode!r}, got {arr[bad].flat[0]} at "
                         f"index {_first(bad)}" + (" (u = 0 gives g = -inf, u = 1 gives g = +inf; "
                                                   "mode='keras', 'clip' or 'tiny' clamp as the "
                                                   "frameworks do)" if mode == "exact" else ""))


def _check_positive_values(inner, u, what, mode):
    v = value_of(inner)
    if (v <= 0).any():
        raise ValueError(f"mode={mode!r}: {what} rounds to {v.min()} <= 0 in {v.dtype} at u = "
                         f"{value_of(u)[v <= 0].flat[0]}, where g would be NaN")


def _check_rng(rng):
    if not isinstance(rng, onp.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)); "
                        f"got {type(rng).__name__}. Seeds and global state are not accepted (D2)")
    return rng


def _check_dtype(dtype):
    dtype = onp.dtype(dtype)
    if dtype not in (onp.float64, onp.float32):
        raise TypeError(f"dtype must be float64 or float32, got {dtype}")
    return dtype


def _onehot(index, K, axis, dtype):
    """onehot(index) with the new category axis at ``axis`` of the result."""
    ndim = index.ndim + 1
    axis = axis % ndim
    shape = [1] * ndim
    shape[axis] = K
    # e_{i,k} = [k = index_i]
    return (onp.arange(K).reshape(shape) == onp.expand_dims(index, axis)).astype(dtype)


def _category_axis(x, name, shape, axis, target):
    """The axis of ``x`` (broadcast to ``shape``) that holds the K categories of ``target``."""
    xs = value_of(x).shape
    _broadcasts_to(x, name, shape, target)
    xa = axis - (len(shape) - len(xs))
    if xa < 0 or xs[xa] != shape[axis]:
        raise ValueError(f"{name} of shape {xs} must hold the K = {shape[axis]} categories of "
                         f"{target} along axis {axis - len(shape)}")
    return xa


def _check_sum(sums, name, target):
    dev = onp.abs(onp.asarray(sums) - 1.0)
    if dev.size and dev.max() > SIMPLEX_ATOL:
        raise ValueError(f"{name} must sum to {target} along the category axis (within "
                         f"{SIMPLEX_ATOL}); got a deviation of {dev.max():.3g}")


def _scores(logits, g, axis, given):
    """Validate (logits or probs, noise, axis) and return the log-weights o, g and the axis."""
    check_choice(given, "given", ("logits", "probs"))
    g = _finite(g, "g")
    axis = check_axis(g, axis, "g")
    logits = as_float(logits, "logits")
    shape = value_of(g).shape
    la = _category_axis(logits, "logits", shape, axis, "g")
    if given == "logits":
        lv = check_float_array(logits, "logits", allow_neg_inf=True)
        if onp.isneginf(lv).all(axis=la).any():
            raise ValueError("logits has a slice whose entries are all -inf: no category has "
                             "positive probability")
        return logits, g, axis
    lv = check_float_array(logits, "logits (probabilities, given='probs')")
    if lv.size and (lv.min() < 0 or lv.max() > 1):
        raise ValueError(f"logits (probabilities, given='probs') must lie in [0, 1], got values "
                         f"in [{lv.min()}, {lv.max()}]")
    _check_sum(onp.sum(lv, axis=la), "logits (probabilities, given='probs')", "1")
    positive = lv > 0
    # o = log p, with log 0 = −inf taken without evaluating log(0)
    o = np.log(np.where(positive, logits, nx._const(1.0, logits))) + \
        onp.where(positive, 0.0, -onp.inf).astype(lv.dtype)
    return o, g, axis


def _logits_and_values(logits, f_values, one_d=False):
    o = _finite(logits, "logits")
    f = _finite(f_values, "f_values")
    os_, fs = value_of(o).shape, value_of(f).shape
    if one_d:
        if len(os_) != 1 or fs != os_:
            raise ValueError(f"logits and f_values must both have shape (K,), got {os_} and {fs}")
    else:
        if len(os_) < 1 or os_[-1] == 0:
            raise ValueError(f"logits must have shape (..., K) with K >= 1, got {os_}")
        try:
            onp.broadcast_shapes(os_, fs)
        except ValueError:
            raise ValueError(f"f_values of shape {fs} does not broadcast to logits of shape "
                             f"{os_} (..., K)") from None
        if len(fs) < 1 or fs[-1] != os_[-1]:
            raise ValueError(f"f_values must hold the K = {os_[-1]} values f(y) along the last "
                             f"axis, got shape {fs}")
    return o, f


def _minus_baseline(f, baseline):
    """(f_s − b_s) for a constant baseline or the leave-one-out mean."""
    if isinstance(baseline, str):
        check_choice(baseline, "baseline", ("loo",))
        S = value_of(f).shape[0]
        if S < 2:
            raise ValueError(f"baseline='loo' needs at least 2 samples, got S = {S}")
        # b_s = (Σ_t f_t − f_s)/(S − 1)
        b = (np.sum(f) - f) / (S - 1)
        return f - b
    if isinstance(baseline, bool) or not isinstance(baseline, (numbers.Real, onp.floating, onp.integer)):
        raise TypeError(f"baseline must be a real number or 'loo', got {baseline!r}")
    b = float(baseline)
    if not onp.isfinite(b):
        raise ValueError(f"baseline must be finite, got {b}")
    return f - nx._const(b, f)


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
