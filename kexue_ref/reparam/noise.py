r"""Noise: the Normal reparameterization and standard Gumbel noise, with the samplers.

Post: https://kexue.fm/archives/6705, section "连续情形" (the continuous case: z = μ + σε)
and the noise of section "Gumbel Max" (g = −log(−log u), u ∼ U(0, 1)). Gumbel noise from
uniforms has one named mode per public convention (the table of ``docs/reparam.md``, "Gumbel
noise: conventions of the public implementations"); Gumbel noise from Exponential draws is the
form of ``torch.nn.functional.gumbel_softmax``.

Every random quantity is an argument (``docs/conventions.md``, decision D2); the three
samplers at the end are the only functions that draw, and they take a
``numpy.random.Generator``.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_choice, check_float_array, check_positive, check_range, value_of
from kexue_ref.reparam._common import _broadcasts_to, _check_nonnegative, _finite, _first

#: The named conventions of :func:`gumbel_from_uniform`.
GUMBEL_MODES = ("exact", "keras", "clip", "tiny")


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
    ε ∼ U[0, 1] in the post's symbols); the modes are the table of ``docs/reparam.md``, "Gumbel
    noise: conventions of the public implementations". Every mode refuses u outside its domain
    with a ``ValueError`` rather than returning ±inf or NaN (pytorch#22557, #101620,
    tensorflow/probability#1738 are NaN reports of this kind). In
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
    (``-torch.empty_like(logits).exponential_().log()``); ``docs/reparam.md``, "Gumbel noise:
    conventions of the public implementations". E = 0 (which the CPU ``exponential_`` returns
    with probability about 2⁻⁵³, pytorch#22557) would give g = +∞ and is refused.

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
    Source: ``docs/conventions.md``, decision D2 (random inputs are arguments);
    https://kexue.fm/archives/6705, section "Gumbel Max" (u = 0 gives g = −log(−log 0) = −∞).
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
# Checks of the noise
# ---------------------------------------------------------------------------

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
