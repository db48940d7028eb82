r"""Gradient checks in float64 along seeded random directions.

autograd's own ``check_grads`` draws its directions from the global NumPy generator and uses
fixed tolerances; this checker takes an explicit ``numpy.random.Generator`` (decision D2) and
names what failed.

For a function ``f`` of several arrays with one or more array outputs, a random cotangent
``u`` turns it into the scalar :math:`\phi(x) = \sum_k \langle u_k, f_k(x) \rangle`. The VJP is
correct when, for random directions ``v``,

.. math:: \frac{\phi(x + h v) - \phi(x - h v)}{2h} \approx \langle \nabla\phi(x), v \rangle

(central differences, error O(h²)). Order 2 repeats the check on the map
:math:`x \mapsto \nabla\phi(x)`, which autograd can trace because every VJP in the library is
itself written in ``autograd.numpy``. Entries that are ``±inf`` are never perturbed, and
outputs that are not finite get a zero cotangent, so an all ``-inf`` slice is checkable.
"""
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.tracer import getval

__all__ = ["check_grads", "GradCheckError"]


class GradCheckError(AssertionError):
    """A VJP disagrees with central differences."""


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _float_outputs(outs):
    return [i for i, o in enumerate(outs) if onp.asarray(o).dtype.kind == "f"]


def check_grads(fun, args, rng, order=2, eps=1e-6, rtol=1e-5, atol=1e-8, n_dirs=2, name="f"):
    """Check the VJP of ``fun(*args)`` w.r.t. every arg against central differences.

    Parameters
    ----------
    fun : callable of ``len(args)`` float64 arrays returning an array or a tuple of arrays
        (non-float outputs are ignored).
    args : sequence of float64 arrays, the point of the check.
    rng : numpy.random.Generator for the cotangent and the directions.
    order : 1 or 2 (2 also checks the VJP of the VJP).
    eps : the finite-difference step h (absolute).
    rtol, atol : ``|fd - ad| <= atol + rtol * max(|fd|, |ad|, scale) + 8 ε |φ| / h``, where
        ``scale`` is the size of the terms summed in the VJP side and the last term bounds
        the rounding error of the differences (ε = float64 machine epsilon).
    n_dirs : number of random directions.
    name : used in error messages.

    Raises
    ------
    GradCheckError naming the order and the mismatch.
    """
    args = tuple(onp.asarray(a, dtype=onp.float64) for a in args)
    outs = _as_tuple(fun(*args))
    idx = _float_outputs(outs)
    if not idx:
        raise ValueError(f"{name}: no floating output to differentiate")
    # u_k: a random cotangent for each float output, zero where the output is not finite.
    us = {}
    for i in idx:
        o = onp.asarray(outs[i], dtype=onp.float64)
        us[i] = onp.where(onp.isfinite(o), rng.standard_normal(o.shape), 0.0)

    def phi(*xs):
        # φ(x) = Σ_k <u_k, f_k(x)>
        o = _as_tuple(fun(*xs))
        total = 0.0
        for i in idx:
            # non-finite outputs have u = 0 and are left out of the sum (no inf·0)
            finite = onp.isfinite(getval(o[i]))
            total = total + np.sum(np.where(finite, o[i], 0.0) * us[i])
        return total

    def grad_phi(xs):
        # A linear f has a constant gradient: autograd then warns that the output of the
        # order-2 map does not depend on its input, which is expected here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Output seems independent of input")
            return grad(lambda ys: phi(*ys))(xs)

    g = grad_phi(args)
    for d in range(n_dirs):
        # v: a random direction that leaves non-finite entries untouched.
        vs = tuple(onp.where(onp.isfinite(a), rng.standard_normal(a.shape), 0.0) for a in args)
        h = eps
        plus = phi(*[a + h * v for a, v in zip(args, vs)])
        minus = phi(*[a - h * v for a, v in zip(args, vs)])
        fd = (plus - minus) / (2 * h)
        ad = sum(float(onp.sum(onp.asarray(gi) * v)) for gi, v in zip(g, vs))
        # The size of the summed terms bounds the rounding error of both sides.
        term_scale = sum(float(onp.sum(onp.abs(onp.asarray(gi) * v))) for gi, v in zip(g, vs))
        if not (onp.isfinite(fd) and onp.isfinite(ad)):
            raise GradCheckError(f"{name}: non-finite directional derivative "
                                 f"(finite differences {fd}, VJP {ad})")
        rounding = 8 * onp.finfo(onp.float64).eps * max(abs(plus), abs(minus)) / h
        if abs(fd - ad) > atol + rtol * max(abs(fd), abs(ad), term_scale) + rounding:
            raise GradCheckError(
                f"{name}: order-1 VJP disagrees with central differences along direction {d}: "
                f"finite differences {fd:.12g}, VJP {ad:.12g}, |diff| {abs(fd - ad):.3g}")
    if order > 1:
        check_grads(lambda *xs: tuple(grad_phi(xs)), args, rng, order=order - 1, eps=eps,
                    rtol=rtol, atol=atol, n_dirs=n_dirs, name=f"{name} (VJP of VJP)")
