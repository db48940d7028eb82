"""Elementwise multiprecision helpers for the truth functions of :mod:`kexue_ref.certify`.

Arrays here are NumPy *object* arrays of ``mpmath.mpf``: NumPy's ``+ - * /``, ``@``, ``sum``,
indexing and broadcasting work on them element by element in Python, at the working precision
of ``mpmath.mp`` (set by the certifier). Transcendental functions go through :func:`ew`.

The truth functions write each formula in its plain mathematical form (``log(Σ exp x)``,
``1/(1 + exp(−x))``): at 50+ digits with mpmath's unbounded exponent range there is nothing to
stabilise, so the certificate never shares a float64 trick with the code it certifies.
"""
from fractions import Fraction

import numpy as onp

__all__ = ["mp", "mpf_array", "ew", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sigmoid",
           "softplus", "log_sigmoid", "logsumexp", "softmax", "to_float", "fraction_array",
           "zeros", "is_mp_array"]


def _mpmath():
    try:
        import mpmath
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("certification needs mpmath: pip install 'kexue-ref[certify]'") from exc
    return mpmath


class _Ctx:
    """Lazy handle on ``mpmath.mp`` so importing this module does not import mpmath."""

    def __getattr__(self, name):
        return getattr(_mpmath().mp, name)


mp = _Ctx()


def mpf_array(a):
    """A float (or int/bool) array as an object array of ``mpf``, each value converted exactly."""
    mpf = _mpmath().mpf
    a = onp.asarray(a)
    out = onp.empty(a.shape, dtype=object)
    flat = a.reshape(-1)
    res = out.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        res[i] = mpf(float(v)) if a.dtype.kind == "f" else mpf(int(v))
    return out


def zeros(shape):
    """An object array of ``mpf(0)`` of the given shape."""
    mpf = _mpmath().mpf
    out = onp.empty(shape, dtype=object)
    out.reshape(-1)[:] = [mpf(0)] * out.size
    return out


def is_mp_array(a):
    """True for an object array (the truth functions' representation of mpf data)."""
    return isinstance(a, onp.ndarray) and a.dtype == object


def ew(fn, a):
    """Apply a scalar function to every element of an object array (returns an object array)."""
    a = onp.asarray(a, dtype=object)
    out = onp.empty(a.shape, dtype=object)
    src, dst = a.reshape(-1), out.reshape(-1)
    for i in range(src.size):
        dst[i] = fn(src[i])
    return out


def exp(a):
    """e^a, elementwise."""
    return ew(_mpmath().exp, a)


def log(a):
    """log a (natural), elementwise."""
    return ew(_mpmath().log, a)


def log1p(a):
    """log(1 + a), elementwise (exact for tiny a at any precision)."""
    return ew(_mpmath().log1p, a)


def expm1(a):
    """e^a − 1, elementwise."""
    return ew(_mpmath().expm1, a)


def sqrt(a):
    """√a, elementwise."""
    return ew(_mpmath().sqrt, a)


def tanh(a):
    """tanh a, elementwise."""
    return ew(_mpmath().tanh, a)


def sigmoid(a):
    """σ(x) = 1/(1 + e^{−x}), evaluated as written."""
    m = _mpmath()
    return ew(lambda v: 1 / (1 + m.exp(-v)), a)


def log_sigmoid(a):
    """log σ(x) = −log(1 + e^{−x})."""
    m = _mpmath()
    return ew(lambda v: -m.log(1 + m.exp(-v)), a)


def softplus(a):
    """log(1 + e^{x})."""
    m = _mpmath()
    return ew(lambda v: m.log(1 + m.exp(v)), a)


def logsumexp(a, axis=-1, keepdims=False):
    """log Σ exp(a) along ``axis``, as written (no shift: mpf does not overflow)."""
    s = onp.sum(exp(a), axis=axis, keepdims=keepdims)
    return log(s)


def softmax(a, axis=-1):
    """exp(a) / Σ exp(a) along ``axis``."""
    e = exp(a)
    return e / onp.sum(e, axis=axis, keepdims=True)


def to_float(a):
    """Round an object array of mpf (or Fractions) to float64, to nearest."""
    a = onp.asarray(a, dtype=object)
    return onp.array([float(v) for v in a.reshape(-1)], dtype=onp.float64).reshape(a.shape)


def fraction_array(a):
    """A float array as an object array of exact ``fractions.Fraction`` values."""
    a = onp.asarray(a)
    out = onp.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(float(v)) if a.dtype.kind == "f" else Fraction(int(v))
                          for v in a.reshape(-1)]
    return out
