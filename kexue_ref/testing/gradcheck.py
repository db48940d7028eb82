r"""Gradient checks in float64 along seeded random directions, with extrapolated differences.

autograd's own ``check_grads`` draws its directions from the global NumPy generator, uses one
fixed absolute step and a loose tolerance; this checker takes an explicit
``numpy.random.Generator`` (decision D2), chooses its steps from the scale of each input,
extrapolates the differences to high order, and names what failed.

The scalar under test. For a function ``f`` of several arrays with one or more array outputs,
a random cotangent ``u`` turns it into

.. math:: \phi(x) = \sum_k \langle u_k, f_k(x) \rangle .

The VJP gives :math:`\nabla\phi(x)` in one call. Along a random direction ``v`` (standard
normals times the root-mean-square size ``s_a`` of each input ``a``, capped to
``[1e-6 s_a, 1]``, so an input of size 1e-6 is moved by a fraction of itself and logits of size
1e4 by a fraction of 1, their natural scale; then rounded so that every ``x ± t v`` is exact in
float64) the check compares

.. math:: \text{VJP side } \langle \nabla\phi(x), v \rangle \quad\text{with}\quad
          \text{FD side } \lim_{t\to 0} D(t),\qquad D(t) = \frac{\phi(x + t v) - \phi(x - t v)}{2t}.

The limit is taken by Ridders' method (Numerical Recipes, 3rd ed., §5.7; C. J. F. Ridders,
Adv. Eng. Software 4 (1982) 75): central differences at t = 1/8, 1/16, 1/32, … and a
Richardson table that removes the t², t⁴, t⁶ … error terms; the entry whose neighbours agree
best is the estimate. Steps where φ is not finite (outside the function's domain) or where the
function refuses the input restart the table at the next smaller step, so a ``log`` near zero
or a kink a little way off is stepped over. For smooth functions the estimate is good to
~1e-12 relative, so the default relative tolerance is 1e-9 — a VJP that is 1e-6 relative
wrong fails (the old one-step scheme, O(t²) with a fixed t = 1e-6, needed 1e-5).

Pass rule, per direction:

.. math:: |\text{FD} - \text{VJP}| \le \text{atol} + \text{rtol}\,\max(|\text{FD}|, |\text{VJP}|,
          \textstyle\sum_i |\nabla\phi_i v_i|) + 8\,\varepsilon\,\Phi / t

where the sum of absolute terms is the size of what the VJP side adds up (so cancellation does
not make the test stricter than float64 can be), Φ = Σ |u_k f_k(x)| bounds the rounding error
of one evaluation of φ, and t is the smallest step behind the estimate (ε: float64 epsilon).

Order 2 repeats the whole check on the map :math:`x \mapsto \nabla\phi(x)` with a fresh
cotangent, which autograd can trace because every VJP in the library is itself written in
``autograd.numpy``; a VJP that is right in value but whose own derivative is wrong fails there.

Entries of an input that are ``±inf`` are never moved; outputs that are not finite at ``x``
get a zero cotangent (so an all ``-inf`` slice is checkable); an output that is finite at
``x`` and not finite at a step makes that step unusable.

Degenerate checks are refused (:class:`DegenerateCheckError`) rather than passed: no input,
an input with no finite entry to move (an all-zero direction), and outputs of which none is a
finite float (an all-zero cotangent) — each would compare 0 with 0 whatever the VJP is.
"""
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.tracer import getval

__all__ = ["check_grads", "GradCheckError", "DegenerateCheckError"]

#: largest step, as a fraction of each input's size (a power of 2, so that every step is)
_T0 = 0.125
#: ratio of successive steps (Richardson factors 4, 16, 64, ...)
_CON = 2.0
#: number of steps tried: t = 2**-3 down to 2**-18 ≈ 4e-6
_NTAB = 16
#: stop once the table's newest estimate is this many times worse than the best one
_SAFE = 2.0
#: multiple of ε Φ / t allowed for rounding (the Richardson weights amplify noise by < 2)
_ROUNDING = 8.0


class GradCheckError(AssertionError):
    """A VJP disagrees with the extrapolated finite differences."""


class DegenerateCheckError(GradCheckError):
    """The check could not fail whatever the VJP is (zero cotangent, zero direction, no input)."""


def _as_tuple(out):
    # a function may return one array or a tuple/list of arrays
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _float_outputs(outs):
    # indices of the outputs that carry a gradient (floating arrays)
    return [i for i, o in enumerate(outs) if onp.asarray(getval(o)).dtype.kind == "f"]


def _input_scale(a):
    """Root-mean-square size of the finite entries of ``a`` (1.0 when that is 0 or undefined).

    The step along an input is a fraction of this, so an input of size 1e6 is moved by ~1e5
    at the largest step and one of size 1e-6 by ~1e-7.
    """
    # only finite entries say how large the input is
    finite = a[onp.isfinite(a)]
    if finite.size == 0:
        return 1.0
    # s = sqrt(mean(a²)) over the finite entries
    s = float(onp.sqrt(onp.mean(finite * finite)))
    if not (s > 0.0 and onp.isfinite(s)):
        return 1.0
    # large inputs are moved by about 0.1 at most: logits of size 1e4 feed functions whose
    # natural scale is 1, and a step of 1e3 would saturate them (every D(t) ≈ 0, agreeing);
    # but never by less than ~1e-7 of themselves, which float64 could not resolve
    return max(min(s, 1.0), 1e-6 * s)


def _exact_direction(a, v):
    """Round ``v`` so that ``a ± t v`` is exact in float64 for every step t of the ladder.

    With ``q = ulp(|a| + T0 |v|) · 2**NTAB`` and ``T0 v`` a multiple of ``q``, each
    ``t v = 2**-k · T0 v`` (k ≤ NTAB) is a multiple of the spacing of the numbers it is added to,
    so the point moved to is the point meant (unless the sum crosses into a higher binade) and
    the differences see no rounding of the inputs (which at a = 1e6 would be 1e-10 per step).
    """
    # the largest magnitude an entry reaches along the ladder (non-finite entries do not move)
    reach = onp.where(v != 0.0, onp.abs(a) + _T0 * onp.abs(v), 0.0)
    # the grid T0 v must lie on: 2**NTAB spacings of the largest magnitude reached
    q = onp.spacing(reach) * 2.0 ** _NTAB
    # snap T0 v to that grid (a relative change of < 1e-11 for the sizes met in practice)
    return onp.where(v != 0.0, onp.round(v * _T0 / q) * q / _T0, 0.0)


def _extrapolate(diff, rtol):
    """Ridders' extrapolation of central differences to step 0.

    ``diff(t)`` returns D(t) or None when the step is unusable (the function is not finite or
    refuses the input there). Returns ``(estimate, error_estimate, t)``: the table entry whose
    neighbours agree best, the larger of its two differences to them, and the smallest step
    that entered it; or None when no step is usable.
    """
    best, err, best_t = None, onp.inf, None
    # last usable D(t) on its own, kept in case the table never gets a second row
    lone, lone_t = None, None
    # table[j]: the row of the previous step, extrapolated j times
    prev = []
    t = _T0
    for _ in range(_NTAB):
        d = diff(t)
        if d is None or not onp.isfinite(d):
            # unusable step (domain edge, refusal): restart the table below it
            prev = []
            t /= _CON
            continue
        lone, lone_t = d, t
        row = [d]
        # fac = CON^(2j): the ratio of the t^(2j) error terms of two neighbouring steps
        fac = _CON ** 2
        for j in range(1, len(prev) + 1):
            # R[j] = (fac R_same[j-1] - R_prev[j-1]) / (fac - 1) removes the t^(2j) term
            row.append((row[j - 1] * fac - prev[j - 1]) / (fac - 1.0))
            fac *= _CON ** 2
            # the entry's error: how far it moved from its two parents
            errt = max(abs(row[j] - row[j - 1]), abs(row[j] - prev[j - 1]))
            if errt <= err:
                best, err, best_t = row[j], errt, t
        # Ridders' stop: the highest-order entry got clearly worse than the best, i.e.
        # rounding now dominates; only once the best is far inside the tolerance, so that
        # a kink or domain edge crossed by the large steps does not end the search early
        if (len(row) > 1 and abs(row[-1] - prev[-1]) >= _SAFE * err
                and err <= 1e-2 * rtol * abs(best)):
            break
        prev = row
        t /= _CON
    if best is None:
        if lone is None:
            return None
        # only isolated usable steps: a plain central difference with unknown error
        return lone, onp.inf, lone_t
    return best, err, best_t


def _validate(args, rng, order, rtol, atol, n_dirs):
    # bad arguments get a ValueError/TypeError naming the argument
    if not isinstance(rng, onp.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be non-negative, got rtol={rtol!r}, atol={atol!r}")
    if not (isinstance(n_dirs, (int, onp.integer)) and n_dirs >= 1):
        raise ValueError(f"n_dirs must be a positive integer, got {n_dirs!r}")
    if len(args) == 0:
        raise DegenerateCheckError("args: no differentiable input to check")


def check_grads(fun, args, rng, order=2, rtol=1e-9, atol=0.0, n_dirs=2, name="f"):
    r"""Check the VJP of ``fun(*args)`` w.r.t. every arg against extrapolated central differences.

    Along ``n_dirs`` random directions v, ``<∇φ(x), v>`` (autograd's VJP of
    φ = Σₖ ⟨uₖ, fₖ⟩ for a random cotangent u) must agree with the Ridders-extrapolated limit
    of (φ(x + t v) − φ(x − t v)) / 2t, see the module docstring for the steps and the rule.

    Parameters
    ----------
    fun : callable of ``len(args)`` float64 arrays returning an array or a tuple of arrays
        (non-float outputs are ignored), written in ``autograd.numpy`` (order 2 traces its VJP).
    args : sequence of float64 arrays (any shapes), the point of the check; at least one.
    rng : numpy.random.Generator for the cotangents and the directions.
    order : 1 or 2 (2 also checks the VJP of the VJP).
    rtol, atol : pass when ``|fd - ad| <= atol + rtol * max(|fd|, |ad|, Σ|g v|) + 8 ε Φ / t``;
        the default rtol = 1e-9 catches a VJP that is 1e-6 relative wrong. A looser value
        belongs in the registry case (``CaseDef.gradcheck_tol``) with its reason.
    n_dirs : number of random directions per order.
    name : used in error messages.

    Raises
    ------
    GradCheckError naming the order, the direction and both sides of the mismatch.
    DegenerateCheckError (a GradCheckError) when the check could not fail: no input, no finite
    input entry, or no finite float output.
    """
    _validate(args, rng, order, rtol, atol, n_dirs)
    args = tuple(onp.asarray(a, dtype=onp.float64) for a in args)
    outs = _as_tuple(fun(*args))
    idx = _float_outputs(outs)
    if not idx:
        raise DegenerateCheckError(f"{name}: no floating output to differentiate")
    # mask_k: where output k is finite at x; only there does it get a cotangent
    masks = {i: onp.isfinite(onp.asarray(outs[i], dtype=onp.float64)) for i in idx}
    if not any(m.any() for m in masks.values()):
        raise DegenerateCheckError(f"{name}: no output entry is finite, so the cotangent is zero "
                                   "and the check could not fail")
    # u_k: a random cotangent for each float output, zero where the output is not finite
    us = {i: onp.where(masks[i], rng.standard_normal(masks[i].shape), 0.0) for i in idx}
    if not any(onp.any(us[i] != 0.0) for i in idx):
        raise DegenerateCheckError(f"{name}: the cotangent is zero, so the check could not fail")
    # s_a: the size of each input, which sets its steps
    scales = [_input_scale(a) for a in args]
    # entries that may move: the finite ones
    movable = [onp.isfinite(a) for a in args]
    if not any(m.any() for m in movable):
        raise DegenerateCheckError(f"{name}: no input entry is finite, so every direction is "
                                   "zero and the check could not fail")

    def phi(*xs):
        # φ(x) = Σ_k <u_k, f_k(x)> over the entries finite at the point of the check
        o = _as_tuple(fun(*xs))
        total = 0.0
        for i in idx:
            # masked-out entries (non-finite at x) are replaced by 0 before the product (no inf·0)
            total = total + np.sum(np.where(masks[i], o[i], 0.0) * us[i])
        return total

    # Φ = Σ_k Σ |u_k f_k(x)|: the size of the terms of φ, which bounds its rounding error
    phi_abs = sum(float(onp.sum(onp.abs(onp.where(masks[i], onp.asarray(outs[i], dtype=onp.float64),
                                                         0.0) * us[i]))) for i in idx)

    def grad_phi(xs):
        # A linear f has a constant gradient: autograd then warns that the output of the
        # order-2 map does not depend on its input, which is expected here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Output seems independent of input")
            return grad(lambda ys: phi(*ys))(xs)

    def phi_at(xs):
        # φ at a stepped point, or None when the function is not finite or refuses it there
        with warnings.catch_warnings(), onp.errstate(all="ignore"):
            # a large step may leave the domain (log of a negative, overflow): not an error
            warnings.simplefilter("ignore")
            try:
                value = float(phi(*xs))
            except (ValueError, ArithmeticError, onp.linalg.LinAlgError):
                # the function refuses the stepped point (a domain check): the step is unusable
                return None
        return value if onp.isfinite(value) else None

    g = grad_phi(args)
    for d in range(n_dirs):
        # v = s_a z: standard normals scaled to each input's size, zero on non-finite entries
        vs = tuple(_exact_direction(a, onp.where(m, s * rng.standard_normal(a.shape), 0.0))
                   for a, m, s in zip(args, movable, scales))
        if not any(onp.any(v != 0.0) for v in vs):
            raise DegenerateCheckError(f"{name}: direction {d} is zero, so the check could not fail")

        def diff(t, vs=vs):
            # D(t) = (φ(x + t v) − φ(x − t v)) / 2t
            plus = phi_at([a + t * v for a, v in zip(args, vs)])
            minus = phi_at([a - t * v for a, v in zip(args, vs)])
            if plus is None or minus is None:
                return None
            return (plus - minus) / (2.0 * t)

        found = _extrapolate(diff, rtol)
        if found is None:
            raise GradCheckError(
                f"{name}: no step along direction {d} gave a finite difference (the function is "
                f"not finite or refuses every point x ± t v, t = 2**-3 … 2**-18 of the input sizes "
                f"{', '.join(f'{s:.3g}' for s in scales)}); inputs whose entries span many orders "
                f"of magnitude near a domain edge need separate arguments")
        fd, fd_err, t = found
        # the VJP side: <∇φ(x), v>, and the size of the terms it adds up
        ad = sum(float(onp.sum(onp.asarray(gi) * v)) for gi, v in zip(g, vs))
        term_scale = sum(float(onp.sum(onp.abs(onp.asarray(gi) * v))) for gi, v in zip(g, vs))
        if not onp.isfinite(ad):
            raise GradCheckError(f"{name}: the VJP is not finite along direction {d} "
                                 f"(VJP side {ad}, finite differences {fd})")
        # rounding of φ at the smallest step behind the estimate
        rounding = _ROUNDING * onp.finfo(onp.float64).eps * phi_abs / t
        allowed = atol + rtol * max(abs(fd), abs(ad), term_scale) + rounding
        if not abs(fd - ad) <= allowed:
            raise GradCheckError(
                f"{name}: VJP disagrees with finite differences along direction {d}: "
                f"finite differences {fd:.15g} (error estimate {fd_err:.2g}, step {t:.2g}), "
                f"VJP {ad:.15g}, |diff| {abs(fd - ad):.3g} > allowed {allowed:.3g} "
                f"(rtol {rtol:g}, relative diff {abs(fd - ad) / max(abs(fd), abs(ad), term_scale, 1e-300):.3g})")
    if order > 1:
        # the same check on x -> ∇φ(x), with its own cotangent and directions
        check_grads(lambda *xs: tuple(grad_phi(xs)), args, rng, order=order - 1,
                    rtol=rtol, atol=atol, n_dirs=n_dirs, name=f"{name} (VJP of VJP)")
