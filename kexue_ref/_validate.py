"""Argument checks shared by every public function.

Each check names the argument and what was expected, so that bad input fails at the
public boundary with a ``ValueError`` or ``TypeError`` instead of a NaN or a broadcasting
error from deep inside. The checks look through autograd boxes (``getval``) so that the
same public function can be traced for gradients; they never change the traced value.
"""
import numbers

import numpy as onp
from autograd.tracer import getval

__all__ = [
    "value_of", "as_float", "check_float_array", "check_axis", "check_positive",
    "check_int", "check_choice", "check_same_shape", "check_ndim", "check_labels",
    "check_range",
]


def value_of(x):
    """The plain NumPy value of ``x`` (an array, a scalar or an autograd box)."""
    return onp.asarray(getval(x))


def as_float(x, name):
    """Return ``x`` as a floating array, keeping a float dtype and an autograd box as they are.

    Integers and booleans become float64; complex, object and string arrays are refused.
    """
    v = getval(x)
    arr = onp.asarray(v)
    if arr.dtype.kind == "f":
        return x if not isinstance(v, (list, tuple)) else arr
    if arr.dtype.kind in "iub":
        return arr.astype(onp.float64)
    raise TypeError(f"{name} must be a real floating or integer array, got dtype {arr.dtype}")


def check_float_array(x, name, *, allow_neg_inf=False, allow_pos_inf=False, min_ndim=0):
    """Check that ``x`` is real, has no NaN, and has +/-inf only where allowed."""
    arr = value_of(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if onp.isnan(arr).any():
            raise ValueError(f"{name} contains NaN at index {_first(onp.isnan(arr))}")
        if not allow_pos_inf and onp.isposinf(arr).any():
            raise ValueError(f"{name} contains +inf at index {_first(onp.isposinf(arr))}; "
                             "finite values expected")
        if not allow_neg_inf and onp.isneginf(arr).any():
            raise ValueError(f"{name} contains -inf at index {_first(onp.isneginf(arr))}; "
                             "finite values expected")
    return arr


def _first(mask):
    return tuple(int(i) for i in onp.argwhere(mask)[0])


def check_axis(x, axis, name):
    """Normalise ``axis`` for ``x`` and refuse an out-of-range axis or an empty one."""
    arr = value_of(x)
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension to reduce over, got a scalar")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis {axis} is out of range for {name} of shape {arr.shape}")
    axis = int(axis) % arr.ndim
    if arr.shape[axis] == 0:
        raise ValueError(f"{name} has an empty axis {axis} (shape {arr.shape}); "
                         "at least one entry is needed")
    return axis


def check_positive(value, name, *, allow_inf=False):
    """A real scalar > 0 (finite unless ``allow_inf``)."""
    if isinstance(value, bool) or not isinstance(getval(value), (numbers.Real, onp.ndarray, onp.generic)):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    v = value_of(value)
    if v.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
    v = float(v)
    if onp.isnan(v) or v <= 0 or (onp.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a {'positive' if allow_inf else 'finite positive'} "
                         f"number, got {v}")
    return v


def check_range(value, name, low, high, *, low_open=True, high_open=True):
    """A real scalar inside (low, high) (open or closed ends as asked)."""
    if isinstance(value, bool) or not isinstance(getval(value), (numbers.Real, onp.generic, onp.ndarray)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value_of(value))
    ok_low = v > low if low_open else v >= low
    ok_high = v < high if high_open else v <= high
    if onp.isnan(v) or not (ok_low and ok_high):
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{hb}, got {v}")
    return v


def check_int(value, name, *, min_value=None, max_value=None):
    """An integer (Python or NumPy, not bool) within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, onp.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_choice(value, name, choices):
    """One of a fixed set of options (strings or numbers)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices, key=repr)}, got {value!r}")
    return value


def check_same_shape(a, b, name_a, name_b):
    """Two arrays of exactly the same shape (no broadcasting)."""
    sa, sb = value_of(a).shape, value_of(b).shape
    if sa != sb:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {sa} and {sb}")


def check_ndim(x, name, ndim, legend):
    """``x`` has ``ndim`` dimensions; ``legend`` names them with the shape letters, e.g. "(B, K)"."""
    arr = value_of(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {legend}, got shape {arr.shape}")
    return arr.shape


def check_labels(y, name, n_classes):
    """Integer class labels in [0, n_classes)."""
    arr = value_of(y)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} must hold labels in [0, {n_classes}), "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return arr
