r"""Shared private helpers of :mod:`kexue_ref.orthogonality`: input checks, the layer Y = XW + b, safe roots.

Post: https://kexue.fm/archives/7169. No section of the post: these are the checks every file
of the package runs (finite float arrays, the (B, D) × (D, M) shapes of a layer, real numbers
≥ 0) and the two pieces of arithmetic they share, the affine response Y = XW + b and a square
root whose gradient at 0 is 0 instead of ∞·0 = NaN (kinks of θ and of the spectral norm).
Nothing here is public; nothing mutates its inputs.
"""
import numbers

import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_float_array, value_of


def _const(value, like):
    return onp.asarray(value, dtype=value_of(like).dtype)


def _array(x, name):
    x = as_float(x, name)
    check_float_array(x, name)
    return x


def _check_2d(x, name, legend):
    shape = value_of(x).shape
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape {legend}, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return shape


def _nonneg(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, onp.generic, onp.ndarray)):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    v = float(value_of(value))
    if not onp.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


def _layer_inputs(x, w, bias):
    """Check X (B, D), W (D, M) and the optional bias (M,) of a layer Y = X W + b."""
    x = _array(x, "x")
    w = _array(w, "w")
    B, D = _check_2d(x, "x", "(B, D)")
    Dw, M = _check_2d(w, "w", "(D, M)")
    if D != Dw:
        raise ValueError(f"x has D = {D} features per sample but w has {Dw} rows: x must be (B, D) "
                         "and w (D, M), filters as columns (for a PyTorch Linear weight (M, D) pass "
                         "its transpose)")
    if bias is not None:
        if isinstance(bias, (list, tuple)):
            bias = onp.asarray(bias, dtype=onp.result_type(value_of(x).dtype, value_of(w).dtype))
        bias = _array(bias, "bias")
        if value_of(bias).shape != (M,):
            raise ValueError(f"bias must have shape (M,) = ({M},), got shape {value_of(bias).shape}")
    return x, w, bias


def _affine(x, w, bias):
    # Y = X W (+ b)
    y = np.dot(x, w)                                                     # (B, M)
    return y if bias is None else y + bias


def _sqrt0(sq):
    """√s with √0 = 0 and a zero gradient there (instead of ∞·0 = NaN)."""
    zero = value_of(sq) == 0
    return np.where(zero, _const(0.0, sq), np.sqrt(np.where(zero, _const(1.0, sq), sq)))
