"""Elementwise comparison of a candidate's array with the oracle's (the pass rule of ``check``).

:func:`compare` applies ``|a − e| ≤ atol + rtol·|e|`` entry by entry and returns a
:class:`Comparison`: the verdict, the number of failing entries, the greatest absolute and
relative differences with their indices, and the entry that fails worst. Complex arrays are
compared in full, non-finite oracle entries must be reproduced exactly, and integer, boolean
and string arrays are compared exactly.

The bottom of the checking package: it imports nothing of ``kexue_ref``.
"""
import dataclasses

import numpy as onp

__all__ = ["Comparison", "compare"]


@dataclasses.dataclass
class Comparison:
    """One array compared: what, verdict, error sizes with their indices, and the tolerance.

    ``max_abs`` / ``abs_index``: the greatest |a − e| and where; ``max_rel`` / ``rel_index``:
    the greatest |a − e| / |e| and where; ``worst_index``: where the excess over the
    tolerance is largest (the entry that fails worst); ``n_bad`` of ``size`` entries are
    outside ``atol + rtol·|e|``. ``dtype`` is the requested dtype, ``got_dtype`` the
    candidate's (checked unless ``check_dtype=False``); ``where`` holds the localisation
    lines of a failing comparison (``kexue_ref.testing.localise``, when available).
    """
    what: str
    passed: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_index: tuple | None = None
    n_bad: int = 0
    size: int = 0
    dtype: str = ""
    rtol: float = 0.0
    atol: float = 0.0
    reason: str = ""
    message: str = ""
    abs_index: tuple | None = None
    rel_index: tuple | None = None
    got_dtype: str = ""
    dtype_ok: bool = True
    where: list = dataclasses.field(default_factory=list)

    def headline(self):
        """What failed, in one phrase: the torch.testing mismatch count, or the problem."""
        if self.message and not self.size:
            # nothing was compared elementwise: a shape, form or VJP problem
            return f"{self.what}: {self.message}"
        parts = []
        if self.n_bad:
            pct = 100.0 * self.n_bad / self.size
            parts.append(f"Mismatched elements: {self.n_bad} / {self.size} ({pct:.1f}%)")
        if not self.dtype_ok:
            parts.append(f"dtype {self.got_dtype}, expected {self.dtype}")
        if self.reason:
            # an acceptance rule (kexue_ref.testing.lowprec) or a Tol override with its reason
            parts.append(self.reason if self.reason.startswith("rule") else f"override: {self.reason}")
        return f"{self.what}: " + ("; ".join(parts) if parts else "ok")

    def detail(self):
        """The greatest absolute and relative differences, torch.testing style (0 or 2 lines)."""
        if not self.n_bad:
            return []
        return [f"Greatest absolute difference: {self.max_abs:.3g} at index {_index(self.abs_index)} "
                f"(up to {self.atol:g} allowed)",
                f"Greatest relative difference: {self.max_rel:.3g} at index {_index(self.rel_index)} "
                f"(up to {self.rtol:g} allowed)"]

    def line(self):
        """The comparison in one line: verdict, mismatch count and the worst entry."""
        verdict = "ok  " if self.passed else "FAIL"
        text = f"{verdict} {self.headline()}"
        if self.n_bad and self.message:
            text += f"; {self.message}"
        return text


def _index(index):
    """An index as a tuple literal: (), (3,), (1, 0)."""
    return "()" if not index else str(tuple(index))


def _fmt(x):
    """A number with all its digits (17 significant), real or complex."""
    return format(complex(x) if onp.iscomplexobj(x) else float(x), ".17g")


def _nan_mask(x):
    # NaN in either part of a complex number
    return onp.isnan(x.real) | onp.isnan(x.imag) if onp.iscomplexobj(x) else onp.isnan(x)


def _same_special(a, e):
    """Elementwise: a equals e exactly, NaN matching NaN (real and imaginary parts apart)."""
    def same(x, y):
        return (x == y) | (onp.isnan(x) & onp.isnan(y))
    if onp.iscomplexobj(a) or onp.iscomplexobj(e):
        return same(a.real, e.real) & same(a.imag, e.imag)
    return same(a, e)


def compare(actual, expected, rtol, atol, what="out", dtype=""):
    """Compare ``actual`` with the oracle ``expected``: ``|a - e| <= atol + rtol·|e|`` per element.

    Parameters
    ----------
    actual, expected : arrays of the same shape (a different shape fails with a message).
    rtol, atol : the tolerance.
    what : label for the report, e.g. ``"value out"`` or ``"grad x"``.
    dtype : the requested dtype, for the report only (the dtype rule is applied by ``check``).

    Returns
    -------
    Comparison.

    Rules
    -----
    * complex arrays are compared in full: |a − e| is the modulus of the complex difference,
      so a wrong imaginary part fails even when the real parts agree;
    * where the oracle is not finite the candidate must equal it exactly: the same infinity
      (same sign, same place, each part of a complex number), and **NaN passes only where the
      oracle is NaN**; a NaN where the oracle is finite fails, and the message says so;
    * integer, boolean and string arrays are compared exactly.
    """
    return _compare(actual, expected, rtol, atol, what, dtype)[0]


def _compare(actual, expected, rtol, atol, what="out", dtype=""):
    """:func:`compare`, also returning the boolean array of failing entries (None: no array)."""
    a = onp.asarray(actual)
    e = onp.asarray(expected)
    base = dict(what=what, dtype=dtype, rtol=rtol, atol=atol)
    if a.shape != e.shape:
        return Comparison(passed=False, message=f"shape {a.shape} != expected {e.shape}", **base), None
    size = int(e.size)
    if a.dtype.kind not in "biufc" or e.dtype.kind not in "biufc":
        # strings and objects: equality only
        return _exact(a, e, size, base)
    if e.dtype.kind not in "fc" and a.dtype.kind not in "fc":
        # integer / boolean on both sides: exact
        return _exact(a, e, size, base)
    if size == 0:
        return Comparison(passed=True, size=0, **base), None
    # complex128 when either side is complex (the imaginary part is compared too), else float64
    ftype = onp.complex128 if (a.dtype.kind == "c" or e.dtype.kind == "c") else onp.float64
    a = a.astype(ftype)
    e = e.astype(ftype)
    finite_e = onp.isfinite(e)
    with onp.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # |a − e| where the oracle is finite (NaN or inf when the candidate is not finite) ...
        diff = onp.abs(a - e)
        diff = onp.where(onp.isnan(diff), onp.inf, diff)
        # ... and 0 or inf where it is not: the candidate must reproduce inf / NaN exactly
        special_ok = _same_special(a, e)
        diff = onp.where(finite_e, diff, onp.where(special_ok, 0.0, onp.inf))
        scale = onp.where(finite_e, onp.abs(e), 0.0)
        allowed = atol + rtol * scale
        rel = onp.where(diff == 0, 0.0, diff / onp.maximum(scale, onp.finfo(float).tiny))
    bad = diff > allowed
    n_bad = int(onp.sum(bad))
    # the entry that fails worst: the largest excess over its own tolerance
    excess = onp.where(bad, diff - allowed, -onp.inf)
    worst = _unravel(onp.argmax(excess if n_bad else diff), e.shape)
    nan_here = _nan_mask(a) & finite_e
    nan_missing = _nan_mask(e) & ~_nan_mask(a)
    msg = ""
    if onp.any(nan_here):
        first = _unravel(onp.argmax(nan_here), e.shape)
        msg = (f"NaN where the oracle is finite at {int(onp.sum(nan_here))} entries (first at "
               f"{_index(first)}; NaN passes only where the oracle is NaN)")
    elif onp.any(nan_missing):
        first = _unravel(onp.argmax(nan_missing), e.shape)
        msg = (f"the oracle is NaN at {int(onp.sum(nan_missing))} entries the candidate gives a "
               f"number (first at {_index(first)}; NaN passes only where the oracle is NaN)")
    elif n_bad:
        msg = f"got {_fmt(a[worst])}, expected {_fmt(e[worst])} at {_index(worst)}"
    return Comparison(passed=n_bad == 0, max_abs=float(onp.max(diff)), max_rel=float(onp.max(rel)),
                      worst_index=worst, n_bad=n_bad, size=size, message=msg,
                      abs_index=_unravel(onp.argmax(diff), e.shape),
                      rel_index=_unravel(onp.argmax(rel), e.shape), **base), bad


def _unravel(flat, shape):
    return tuple(int(i) for i in onp.unravel_index(int(flat), shape))


def _exact(a, e, size, base):
    """Exact comparison (integers, booleans, strings): any difference is a mismatch."""
    if a.dtype.kind in "biufc" and e.dtype.kind in "biufc":
        ftype = onp.complex128 if "c" in (a.dtype.kind, e.dtype.kind) else onp.float64
        bad = ~_same_special(a.astype(ftype), e.astype(ftype))
    else:
        bad = onp.asarray(a != e, dtype=bool)
    n_bad = int(onp.sum(bad))
    worst = tuple(int(i) for i in onp.argwhere(bad)[0]) if n_bad else None
    msg = "exact comparison" + (f": got {a[worst]!r}, expected {e[worst]!r} at {_index(worst)}"
                                if n_bad else "")
    c = Comparison(passed=n_bad == 0, n_bad=n_bad, size=size, worst_index=worst,
                   abs_index=worst, rel_index=worst, message=msg, **base)
    return c, bad
