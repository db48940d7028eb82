r"""Stable primitives shared by every topic: log-sum-exp, softmax, sigmoid, softplus, masking.

This module is the one home of the max-shift and of the fully-masked-row policy (decision
D4 of ``docs/conventions.md``). Every function is written in ``autograd.numpy`` so it can be
differentiated to any order, keeps the floating dtype of its input, and never produces NaN
from valid input:

* the shift ``m`` is the per-axis maximum (``keepdims=True``), never a global maximum, and it
  is treated as a constant (the results do not depend on it, so its derivative is zero);
* an all ``-inf`` slice is a slice with no mass: ``logsumexp = -inf`` and ``softmax = 0``,
  with gradient 0 (SciPy returns NaN for that softmax; torch and JAX return NaN gradients);
* ``+inf`` and NaN inputs are refused with a ``ValueError`` naming the argument.

Shapes: any; the reduction runs along ``axis`` (default -1, the last one).

Reference for the numerics: P. Blanchard, D. J. Higham, N. J. Higham, "Accurate computation
of the log-sum-exp and softmax functions", IMA J. Numer. Anal. 41 (2021),
doi:10.1093/imanum/draa038. Smooth maximum: https://kexue.fm/archives/3290 and
https://kexue.fm/archives/6620.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive
from autograd.scipy.special import expit as _expit
from autograd.tracer import getval

from kexue_ref._validate import as_float, check_axis, check_float_array, value_of

__all__ = [
    "logsumexp", "softmax", "log_softmax", "sigmoid", "log_sigmoid", "softplus", "tanh",
    "masked_softmax", "stop_gradient",
]


# ---------------------------------------------------------------------------
# Public functions (validate, then call the private kernels below)
# ---------------------------------------------------------------------------

def logsumexp(x, axis=-1, keepdims=False):
    r"""Log-sum-exp along one axis, shifted by the per-axis maximum.

    .. math:: \mathrm{LSE}(x) = m + \log \sum_i e^{x_i - m}, \qquad m = \max_i x_i

    Parameters
    ----------
    x : array, any shape; may contain ``-inf`` (a zero weight), not ``+inf`` or NaN.
    axis : int, the axis reduced over (must be non-empty).
    keepdims : bool, keep the reduced axis with length 1.

    Returns
    -------
    array, the shape of ``x`` without ``axis`` (or with length 1 there if ``keepdims``).

    Notes
    -----
    Source: https://kexue.fm/archives/6620 (max ≈ logsumexp); Blanchard, Higham & Higham 2021.
    Conventions: an all ``-inf`` slice gives ``-inf`` with gradient 0 (D4); the gradient of
    LSE is :func:`softmax`.

    Examples
    --------
    >>> import numpy as onp
    >>> float(logsumexp(onp.array([1000.0, 1000.0])))  # the naive form overflows
    1000.6931471805599
    >>> float(logsumexp(onp.array([-onp.inf, -onp.inf])))
    -inf
    """
    x = _checked(x, "x")
    return _logsumexp(x, check_axis(x, axis, "x"), keepdims)


def softmax(x, axis=-1):
    r"""Softmax along one axis, shifted by the per-axis maximum.

    .. math:: \mathrm{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j

    Parameters
    ----------
    x : array, any shape; ``-inf`` entries get probability 0; no ``+inf`` or NaN.
    axis : int, the axis normalised over.

    Returns
    -------
    array, the shape of ``x``; each slice sums to 1, or is all 0 for an all ``-inf`` slice (D4).

    Notes
    -----
    Source: https://kexue.fm/archives/6620 ("softmax is the smooth one-hot of argmax").
    softmax is the gradient of :func:`logsumexp`.

    Examples
    --------
    >>> import numpy as onp
    >>> softmax(onp.array([0.0, onp.log(3.0)])).round(6).tolist()
    [0.25, 0.75]
    >>> softmax(onp.array([-onp.inf, -onp.inf])).tolist()  # SciPy gives [nan, nan]
    [0.0, 0.0]
    """
    x = _checked(x, "x")
    return _softmax(x, check_axis(x, axis, "x"))


def log_softmax(x, axis=-1):
    r"""Log of the softmax along one axis.

    .. math:: \log\mathrm{softmax}(x)_i = x_i - \mathrm{LSE}(x)

    Parameters
    ----------
    x : array, any shape; ``-inf`` entries map to ``-inf``; no ``+inf`` or NaN.
    axis : int

    Returns
    -------
    array, the shape of ``x``. An all ``-inf`` slice gives all ``-inf`` (log 0), with a finite
    gradient.

    Notes
    -----
    Source: Blanchard, Higham & Higham 2021 (computed as ``(x - m) - log Σ e^{x - m}``).
    """
    x = _checked(x, "x")
    return _log_softmax(x, check_axis(x, axis, "x"))


def sigmoid(x):
    r"""Logistic sigmoid, overflow-free for any finite input.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}

    Parameters
    ----------
    x : array, any shape; ``±inf`` give exactly 1 and 0; no NaN.

    Returns
    -------
    array, the shape of ``x``, values in [0, 1].

    Notes
    -----
    Source: SciPy's ``expit`` (with autograd's VJP ``σ(1 − σ)``).

    Examples
    --------
    >>> float(sigmoid(0.0)), float(sigmoid(-800.0))
    (0.5, 0.0)
    """
    x = _checked(x, "x", allow_pos_inf=True)
    return _sigmoid(x)


def log_sigmoid(x):
    r"""Log of the sigmoid, without underflow for large negative inputs.

    .. math:: \log \sigma(x) = -\mathrm{softplus}(-x)

    Parameters
    ----------
    x : array, any shape, finite.

    Returns
    -------
    array, the shape of ``x``, values ≤ 0.

    Notes
    -----
    Source: the identity above; ``scipy.special.log_expit`` gives the same values.
    """
    x = _checked(x, "x")
    return -_softplus(-x)


def softplus(x):
    r"""Softplus, the log-sum-exp of (x, 0): a smooth ReLU.

    .. math:: \mathrm{softplus}(x) = \log(1 + e^{x}) = \mathrm{LSE}(x, 0)

    Parameters
    ----------
    x : array, any shape, finite.

    Returns
    -------
    array, the shape of ``x``, values > 0 (``softplus(x) - relu(x)`` lies in (0, log 2]).

    Notes
    -----
    Source: derived from https://kexue.fm/archives/3290 (relu = max(x, 0) ≈ LSE(x, 0));
    the post does not state it, see ``docs/smoothing.md``.

    Examples
    --------
    >>> float(softplus(0.0)) == float(onp.log(2.0))
    True
    """
    x = _checked(x, "x")
    return _softplus(x)


def tanh(x):
    r"""Hyperbolic tangent whose derivative never overflows.

    .. math:: \tanh(x), \qquad \frac{d}{dx}\tanh x = \mathrm{sech}^2 x
              = \frac{4 e^{-2|x|}}{(1 + e^{-2|x|})^2}

    Parameters
    ----------
    x : array, any shape; ``±inf`` give ``±1`` with derivative 0; no NaN.

    Returns
    -------
    array, the shape of ``x``, values in [−1, 1].

    Notes
    -----
    Source: the identity above. autograd's own VJP is ``g / cosh(x)**2``, which overflows
    (a RuntimeWarning, then 0) for |x| above about 44 in float32 and 355 in float64; this one
    keeps full relative precision everywhere and is traceable to any order.

    Examples
    --------
    >>> from autograd import grad
    >>> float(grad(tanh)(400.0)) >= 0.0   # autograd's np.tanh warns of overflow here
    True
    """
    x = _checked(x, "x", allow_pos_inf=True)
    return _tanh(x)


def masked_softmax(x, mask, axis=-1, fill=None):
    r"""Softmax over the allowed entries only (decision D4).

    .. math:: P_i = \frac{[A_i]\, e^{x_i - m}}{\sum_{j: A_j} e^{x_j - m}}, \qquad
              m = \max_{j: A_j} x_j

    A slice with no allowed entry (a fully masked row) gives ``P = 0`` and gradient 0.
    With ``fill=c`` the disallowed scores are *replaced* by ``c`` before an ordinary softmax
    (the ``-1e9`` convention of many frameworks); a fully masked row then becomes uniform.

    Parameters
    ----------
    x : array, any shape; no ``+inf`` or NaN.
    mask : bool array broadcastable to ``x.shape``; True means "may attend".
    axis : int
    fill : None or a finite float. None (default) is the exact masked softmax.

    Returns
    -------
    array, the shape of ``x``.

    Notes
    -----
    Source: https://kexue.fm/archives/6853 (attention masks); decision D4 of
    ``docs/conventions.md`` (a fully masked row has no mass). The finite-constant
    option follows ``openai/sparse_attention`` (replacement with -1e9); it is *not* the
    additive ``-1e10`` masking of the Keras code, see ``docs/conventions.md``.

    Examples
    --------
    >>> import numpy as onp
    >>> x = onp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    >>> m = onp.array([[True, False, True], [False, False, False]])
    >>> masked_softmax(x, m).round(4).tolist()
    [[0.1192, 0.0, 0.8808], [0.0, 0.0, 0.0]]
    >>> masked_softmax(x, m, fill=-1e9).round(4).tolist()[1]
    [0.3333, 0.3333, 0.3333]
    """
    x = _checked(x, "x", allow_neg_inf=True)
    axis = check_axis(x, axis, "x")
    mask_v = value_of(mask)
    if mask_v.dtype != onp.bool_:
        raise TypeError(f"mask must be a boolean array (True = may attend), got dtype {mask_v.dtype}")
    try:
        onp.broadcast_shapes(mask_v.shape, value_of(x).shape)
    except ValueError:
        raise ValueError(f"mask of shape {mask_v.shape} does not broadcast to x of shape "
                         f"{value_of(x).shape}") from None
    if onp.broadcast_shapes(mask_v.shape, value_of(x).shape) != value_of(x).shape:
        raise ValueError(f"mask of shape {mask_v.shape} would enlarge x of shape {value_of(x).shape}")
    if fill is None:
        return _masked_softmax(x, mask_v, axis)
    fill = float(fill)
    if not onp.isfinite(fill):
        raise ValueError(f"fill must be a finite number (use fill=None for exact masking), got {fill}")
    # Replacement masking: disallowed scores become the constant c, then a plain softmax.
    return _softmax(np.where(mask_v, x, _const(fill, x)), axis)


# ---------------------------------------------------------------------------
# stop_gradient: identity forward, zero VJP (used by straight-through estimators)
# ---------------------------------------------------------------------------

@primitive
def stop_gradient(x):
    r"""Identity on values; its gradient is zero (``sg`` in the straight-through formulas).

    .. math:: \mathrm{sg}(x) = x, \qquad \frac{\partial\,\mathrm{sg}(x)}{\partial x} = 0

    Parameters
    ----------
    x : array, any shape.

    Returns
    -------
    array, ``x`` itself.

    Notes
    -----
    Source: the stop-gradient operator of straight-through estimators (Bengio et al. 2013,
    arXiv 1308.3432); autograd has none built in.
    """
    return x


defvjp(stop_gradient, lambda ans, x: lambda g: np.zeros_like(g))
defjvp(stop_gradient, lambda g, ans, x: np.zeros_like(g))


# ---------------------------------------------------------------------------
# Private kernels: no validation, called by the topic modules on checked input
# ---------------------------------------------------------------------------

def _checked(x, name, allow_pos_inf=False, allow_neg_inf=True):
    x = as_float(x, name)
    check_float_array(x, name, allow_neg_inf=allow_neg_inf, allow_pos_inf=allow_pos_inf)
    return x


def _const(value, like):
    """A 0-d constant in the floating dtype of ``like`` (keeps float32 math float32)."""
    return onp.asarray(value, dtype=value_of(like).dtype)


def _shift(x, axis):
    """The per-axis max shift m (keepdims), with non-finite maxima replaced by 0.

    m is computed on the plain value: the results do not depend on it mathematically, so
    holding it constant gives exact derivatives of every order.
    """
    m = onp.max(getval(x), axis=axis, keepdims=True)
    return onp.where(onp.isfinite(m), m, onp.zeros_like(m))


def _lse_parts(x, axis):
    r"""The pieces of LSE(x) = x_k + log1p(Σ_{j≠k} e^{x_j − x_k}), with k the first maximum.

    Returns ``(xk, z, rest, empty)``, all with ``axis`` kept (length 1 except ``z``):

    * ``xk``: the largest entry x_k of each slice, *with* its gradient (0 in an all −inf slice);
    * ``z = x − x_k``: every entry ≤ 0, exactly 0 at k;
    * ``rest = Σ_{j≠k} e^{z_j}``: the mass outside the maximum, summed without the 1 of e^{z_k},
      so ``log1p(rest)`` keeps every digit of a tiny tail (LSE − x_k = log(1 + rest) with
      rest = 1e-61 is 1e-61, not the 0 that log(1 + rest) rounds to);
    * ``empty``: a plain bool array, True for an all −inf slice (no mass, decision D4).

    The identity holds for any fixed k, so autograd differentiates it exactly to any order
    (k only changes where two entries tie, where LSE is smooth anyway).
    """
    xv = getval(x)
    m = onp.max(xv, axis=axis, keepdims=True)
    empty = ~onp.isfinite(m)
    # one-hot of the first maximum along ``axis`` (none in an all −inf slice)
    axis = axis % xv.ndim
    pos = onp.arange(xv.shape[axis]).reshape([-1 if a == axis else 1 for a in range(xv.ndim)])
    first = (pos == onp.argmax(xv, axis=axis, keepdims=True)) & ~empty
    zero = _const(0.0, x)
    # x_k, traced: ∂x_k/∂x_k = 1 carries the gradient of the shift
    xk = np.sum(np.where(first, x, zero), axis=axis, keepdims=True)
    # z_j = x_j − x_k (−inf stays −inf; in an all −inf slice x_k = 0 and z = −inf)
    z = x - xk
    # rest = Σ_{j≠k} e^{z_j}; the 1 of e^{z_k} = e^0 is left out
    rest = np.sum(np.where(first, zero, np.exp(z)), axis=axis, keepdims=True)
    return xk, z, rest, empty


def _logsumexp(x, axis, keepdims=False):
    xk, _, rest, empty = _lse_parts(x, axis)
    # LSE = x_k + log(1 + Σ_{j≠k} e^{x_j − x_k}), and −inf for an all −inf slice (D4);
    # there x_k = 0 and rest = 0, so the gradient is 0
    out = xk + np.log1p(rest) + np.where(empty, _const(-onp.inf, x), _const(0.0, x))
    return out if keepdims else np.squeeze(out, axis=axis)


@primitive
def _softmax(x, axis):
    m = _shift(x, axis)
    # e_i = e^{x_i − m}
    e = onp.exp(x - m)
    s = onp.sum(e, axis=axis, keepdims=True)
    # P_i = e_i / Σ_j e_j; an all −inf slice has e = 0 and is divided by a safe 1 (P = 0).
    return e / onp.where(s == 0, _const(1.0, x), s)


def _exclusive_sum(a, axis):
    r"""Σ_{j≠i} a_j along ``axis`` for every i, as a prefix plus a suffix sum (no a_i to cancel)."""
    a = np.moveaxis(a, axis, -1)
    zero = np.zeros_like(a[..., :1])
    # prefix_i = Σ_{j<i} a_j
    pre = np.concatenate([zero, np.cumsum(a, axis=-1)[..., :-1]], axis=-1)
    # suffix_i = Σ_{j>i} a_j (a cumulative sum of the reversed slice)
    suf = np.concatenate([np.cumsum(a[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], axis=-1)
    return np.moveaxis(pre + suf, -1, axis)


def _softmax_vjp(ans, g, axis):
    r"""VJP of the softmax, P_i (g_i − Σ_j g_j P_j), written as P_i Σ_{j≠i} P_j (g_i − g_j).

    Expanded as P_i ((Σ_{j≠i} P_j) g_i − Σ_{j≠i} P_j g_j), with both sums exclusive: when
    P_i ≈ 1 the naive g_i − Σ_j g_j P_j subtracts two numbers of size |g_i| to get one of
    size (1 − P_i)|g_i|, while here each term is already of the size of the result.
    Traceable by autograd (its own derivative is taken for the order-2 checks).
    """
    # Σ_{j≠i} P_j (= 1 − P_i, without the cancellation)
    rest = _exclusive_sum(ans, axis)
    # Σ_{j≠i} P_j g_j
    other = _exclusive_sum(ans * g, axis)
    return ans * (rest * g - other)


defvjp(_softmax, lambda ans, x, axis: lambda g: _softmax_vjp(ans, g, axis))
defjvp(_softmax, lambda v, ans, x, axis: _softmax_vjp(ans, v, axis))


def _log_softmax(x, axis):
    _, z, rest, _ = _lse_parts(x, axis)
    # log P_i = (x_i − x_k) − log(1 + Σ_{j≠k} e^{x_j − x_k}); at i = k this is −log1p(rest),
    # a tiny negative number rather than the 0 of (x_k − m) − log(Σ e^{x − m})
    return z - np.log1p(rest)


def _masked_softmax(x, mask, axis):
    # Disallowed scores become −inf (weight 0); an all-disallowed slice then gives 0 (D4).
    return _softmax(np.where(mask, x, _const(-onp.inf, x)), axis)


@primitive
def _tanh(x):
    return np.tanh(x)


def _sech2(x):
    # sech² x = 4 e^{−2|x|} / (1 + e^{−2|x|})²: no overflow, full relative precision
    e = np.exp(-2 * np.abs(x))
    return 4 * e / (1 + e) ** 2


defvjp(_tanh, lambda ans, x: lambda g: g * _sech2(x))
defjvp(_tanh, lambda g, ans, x: g * _sech2(x))


@primitive
def _sigmoid(x):
    # σ(x) = 1/(1 + e^{−x}), by SciPy's overflow-free expit
    return _expit(x)


@primitive
def _softplus(x):
    # softplus(x) = log(e^0 + e^x), computed by logaddexp without overflow.
    return onp.logaddexp(_const(0.0, x), x)


# dσ/dx = σ(x)·σ(−x): both factors keep full relative precision, whereas σ(1 − σ) loses
# the digits of 1 − σ for x ≳ 1 (at x = 30 only three of them survive).
defvjp(_sigmoid, lambda ans, x: lambda g: g * _sigmoid(x) * _sigmoid(-x))
defjvp(_sigmoid, lambda g, ans, x: g * _sigmoid(x) * _sigmoid(-x))
# d softplus/dx = σ(x), exactly; autograd's logaddexp VJP e^{x − softplus(x)} turns the
# rounding of softplus(x) into a relative error of ~|x|·eps.
defvjp(_softplus, lambda ans, x: lambda g: g * _sigmoid(x))
defjvp(_softplus, lambda g, ans, x: g * _sigmoid(x))
