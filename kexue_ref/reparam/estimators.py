r"""Gradient estimators for ∇_θ E_{z∼p_θ}[f(z)]: exact enumeration, score function, pathwise.

Post: https://kexue.fm/archives/6705. The objective L_θ = E_{z∼p_θ}[f(z)] of its opening; the
score-function identity ∇_θ E[f] = E[f ∇_θ log p_θ] (exact by enumeration for one categorical
variable, section "离散情形", the discrete case, and as per-sample Monte-Carlo estimates for
the categorical and the Normal); the pathwise (reparameterized) estimates of section "连续情形"
(z = μ + σε) and of section "Gumbel Softmax" (through ỹ = softmax((o + g)/τ)).

Every estimator returns one estimate per sample (shape (S, ...)), so the mean and the variance
can both be read; the sign is that of the gradient of L (the ascent direction).
"""
import numbers

import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_choice, check_positive, value_of
from kexue_ref.reparam._common import _broadcasts_to, _finite, _onehot
from kexue_ref.reparam.gumbel import _softmax, _softmax_jtp, _tempered_scores


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
    Conventions of peers (``docs/reparam.md``, "Score function for the categorical, and
    common random numbers"): ``tfp.monte_carlo.expectation`` builds the surrogate f·p/sg(p)
    whose gradient is this estimate averaged; optax returns per-sample values like here, with
    control variates kept separate.

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
    the pathwise estimate (both computed exactly by a Gauss-Hermite rule in ``docs/reparam.md``,
    "Score function versus reparameterization: the post's Normal example").

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
# Private helpers of the estimators
# ---------------------------------------------------------------------------

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
