"""Validation and small helpers shared by the sections of the reparameterization post.

Post: https://kexue.fm/archives/6705. Nothing here is a formula of the post: these helpers
check the arguments (finite floats, shapes that broadcast to the noise, a category axis,
probability vectors on the simplex), turn probabilities into log-weights, and build one-hot
vectors. The sections (:mod:`~kexue_ref.reparam.noise`, :mod:`~kexue_ref.reparam.gumbel`,
:mod:`~kexue_ref.reparam.concrete`, :mod:`~kexue_ref.reparam.estimators`) import them; this
module imports none of them.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref import _numerics as nx
from kexue_ref._validate import as_float, check_axis, check_choice, check_float_array, value_of

#: How far a given probability vector may be from summing to 1 (|Σ p − 1|), in every dtype.
#: Loose enough for float32 sums and for finite-difference probes of a gradient check,
#: tight enough to refuse unnormalised weights.
SIMPLEX_ATOL = 1e-4


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
