"""Run registry cases through a candidate and compare it with the float64 oracle.

The oracle side: :func:`reference_outputs` runs the reference in float64,
:func:`make_cotangents` draws the seeded cotangent (the same one the tables store), and
:func:`reference_grads` takes autograd's VJP of the reference with it.

The candidate side goes through an *adapter* (``kexue_ref.testing.adapters``) that converts
arrays in and out and computes the candidate's VJP; the NumPy adapter is built in, and the
torch and JAX adapters plug into the same seam.

Pass rules (what :func:`check` calls a pass):

* a *valid* case passes when every output (and gradient, if asked for) is within the
  tolerance elementwise (:func:`compare`), has the oracle's shape and, unless
  ``check_dtype=False``, the requested dtype;
* an *error* case passes when the candidate **refuses** the bad input, i.e. raises any
  exception (any framework's type), and only then: a candidate that cannot be called with
  the case's arguments, or that also raises on a valid case of the op (the *control*), is
  not credited with a refusal. Refusals are counted apart from matches;
* an exception on a valid case is the candidate's failure; a result of the wrong form (the
  wrong number of outputs, not an array) is a mismatch of the candidate's result, never
  blamed on the checker;
* cases that reproduce a peer's quirk (``Case.quirk``, e.g. ``compat='keras'``) run only with
  ``quirks=True``, so a faithful port of the post passes the default run.
"""
import dataclasses
import fnmatch
import inspect

import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.tracer import getval

from kexue_ref import registry

__all__ = ["Comparison", "CaseResult", "Report", "compare", "reference_outputs",
           "make_cotangents", "reference_grads", "check", "assert_matches", "autograd_vjp",
           "REPORT_FORMAT_VERSION"]

#: version of the report's JSON layout (``Report.to_dict``); bumped on any change of its fields
REPORT_FORMAT_VERSION = 2

#: failing cases the convention diagnosis looks at (it re-runs the candidate once per case)
DIAGNOSE_MAX_CASES = 16

#: longest exception message quoted in a report line
_MAX_MESSAGE = 160


# ---------------------------------------------------------------------------
# Elementwise comparison
# ---------------------------------------------------------------------------

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

# ---------------------------------------------------------------------------
# The oracle side
# ---------------------------------------------------------------------------

def reference_outputs(case):
    """The reference's outputs for a case, run on the float64 inputs, as a tuple of arrays."""
    spec = case.spec
    return tuple(onp.asarray(o) for o in spec.as_outputs(spec.call(spec.ref, case)))


def _diff_output_mask(spec, outputs):
    names = spec.outputs
    wanted = set(spec.diff_outputs) if spec.diff_outputs is not None else set(names)
    return [n in wanted and onp.asarray(o).dtype.kind == "f" for n, o in zip(names, outputs)]


def make_cotangents(case, outputs):
    """The seeded cotangent for each differentiable output (None for the others).

    Drawn from ``default_rng([case.seed, 1])`` as standard normals of each output's shape,
    in output order, then set to 0 where the output is not finite (an all ``-inf`` slice of
    ``logsumexp``, say), so no VJP ever multiplies an infinity. The tables store it, so a
    framework can reuse it bit for bit.
    """
    rng = onp.random.default_rng([case.seed, 1])
    mask = _diff_output_mask(case.spec, outputs)
    cots = []
    for o, m in zip(outputs, mask):
        if not m:
            cots.append(None)
            continue
        u = rng.standard_normal(onp.shape(o))
        cots.append(onp.where(onp.isfinite(o), u, 0.0))
    return tuple(cots)


def autograd_vjp(fn, spec, inputs, params, cotangents):
    """VJP of ``fn`` w.r.t. ``spec.diff`` by autograd: ∇ of Σ_k <u_k, out_k>, as a tuple."""
    if not spec.diff:
        return ()

    def phi(diff_values):
        kw = dict(inputs)
        kw.update(zip(spec.diff, diff_values))
        outs = spec.as_outputs(fn(*[kw[n] for n in spec.inputs], **params))
        total = 0.0
        for o, u in zip(outs, cotangents):
            if u is not None:
                # Σ <u, out>, skipping non-finite outputs (their cotangent is 0 by construction)
                total = total + np.sum(np.where(onp.isfinite(getval(o)), o, 0.0) * u)
        return total

    return tuple(grad(phi)(tuple(inputs[n] for n in spec.diff)))


def reference_grads(case, cotangents):
    """autograd's VJP of the reference (float64) for the case's cotangents, by input name."""
    spec = case.spec
    grads = autograd_vjp(spec.ref, spec, case.inputs, case.params, cotangents)
    return dict(zip(spec.diff, (onp.asarray(g) for g in grads)))


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

#: CaseResult.status values: a valid case that matched, an error case the candidate refused,
#: a failure, an expected failure (``xfail``) and an expected failure that passed
STATUSES = ("passed", "refused", "failed", "xfailed", "xpassed")


@dataclasses.dataclass
class CaseResult:
    """The verdict for one case: its comparisons, or what the candidate raised.

    ``passed`` is the case's own verdict (matched, or refused as it should); ``status`` is
    one of :data:`STATUSES` (an ``xfail`` case that fails is "xfailed" and does not fail the
    run); ``quirk`` names the peer convention the case reproduces ("" for the post's).
    """
    case_id: str
    tier: str
    passed: bool
    comparisons: list
    error: str = ""
    status: str = ""
    quirk: str = ""
    xfail: str = ""

    def __post_init__(self):
        if not self.status:
            self.status = "passed" if self.passed else "failed"

    def _head(self, word):
        tag = f" (quirk {self.quirk})" if self.quirk else ""
        return f"{word} {self.case_id} [{self.tier}]{tag}"

    def lines(self):
        """The case in at most 4 lines: 1 when it passes, at most 4 when it fails."""
        if self.status in ("passed", "refused"):
            return [self._head("PASS") + (f" {self.error}" if self.error else "")]
        if self.status == "xpassed":
            return [self._head("XPASS") + f": passes although marked xfail ({self.xfail})"]
        bad = [c for c in self.comparisons if not c.passed]
        if self.status == "xfailed":
            why = self.error or (bad[0].headline() if bad else "")
            return [self._head("XFAIL") + f": {_clip(why)}"]
        if self.error or not bad:
            return [self._head("FAIL") + (f": {self.error}" if self.error else "")]
        first = bad[0]
        head = self._head("FAIL") + " " + first.headline()
        if len(bad) > 1:
            # the other failing arrays, one phrase each
            head += "; also " + ", ".join(f"{c.what} ({c.n_bad}/{c.size})" if c.size else c.what
                                          for c in bad[1:])
        out = [head] + ["    " + d for d in first.detail()]
        if first.where:
            out.append("    where: " + "; ".join(first.where))
        elif first.message and first.size:
            out.append("    " + first.message)
        return out[:4]


def _clip(text, n=_MAX_MESSAGE):
    """One line of at most ``n`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _describe(exc):
    """An exception as ``Type: message`` on one line."""
    return _clip(f"{type(exc).__name__}: {exc}")


@dataclasses.dataclass
class Report:
    """Per-case results of :func:`check`; ``str(report)`` is the readable report.

    ``notes`` holds the rule in use, the quirk cases left out, the convention diagnosis and
    any localisation the failing cases got; ``diagnosis`` lists the labels of the registered
    conventions the failing candidate follows.
    """
    op: str
    candidate: str
    dtype: str
    tiers: tuple
    results: list
    notes: list = dataclasses.field(default_factory=list)
    rule: str = "table"
    k: float = 2.0
    framework: str = "numpy"
    quirks: bool = False
    check_dtype: bool = True
    skipped: list = dataclasses.field(default_factory=list)
    diagnosis: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        """True when no case failed (expected failures and their passes do not count)."""
        return all(r.status != "failed" for r in self.results)

    @property
    def failures(self):
        """The failed cases (not the expected failures)."""
        return [r for r in self.results if r.status == "failed"]

    def __bool__(self):
        return self.passed

    def counts(self):
        """{status: number of cases} over :data:`STATUSES`."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def summary(self):
        """``"N passed, M failed"``, with refusals, xfails and xpasses when there are any."""
        n = self.counts()
        parts = [f"{n['passed']} passed"]
        if n["refused"]:
            parts.append(f"{n['refused']} refused")
        parts.append(f"{n['failed']} failed")
        parts += [f"{n[s]} {s}" for s in ("xfailed", "xpassed") if n[s]]
        return ", ".join(parts)

    def __str__(self):
        lines = [f"kexue_ref check: {self.op} vs {self.candidate} "
                 f"(dtype {self.dtype}, tiers {', '.join(self.tiers)})"]
        for r in self.results:
            lines.extend(r.lines())
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"{self.op}: {self.summary()}")
        return "\n".join(lines)

    def to_dict(self):
        """The report as JSON-able data (the schema ``check_report``)."""
        from kexue_ref import __version__

        return {"format_version": REPORT_FORMAT_VERSION, "version": __version__,
                "op": self.op, "candidate": self.candidate, "dtype": self.dtype,
                "tiers": list(self.tiers), "framework": self.framework, "rule": self.rule,
                "k": self.k, "quirks": self.quirks, "check_dtype": self.check_dtype,
                "passed": self.passed, "summary": self.summary(), "counts": self.counts(),
                "notes": list(self.notes), "diagnosis": list(self.diagnosis),
                "skipped": list(self.skipped),
                "results": [dict(dataclasses.asdict(r)) for r in self.results]}


# ---------------------------------------------------------------------------
# Case selection
# ---------------------------------------------------------------------------

def _patterns(value, name):
    """A tuple of glob patterns from None, a string or an iterable of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out = tuple(value)
    if not all(isinstance(p, str) and p for p in out):
        raise TypeError(f"{name} must be a case name or id, a glob pattern, or a list of them")
    return out


def _matches(case, pattern):
    """Whether a pattern names the case: its name (``post-x-K1``) or id (``op[post-x-K1]``)."""
    return fnmatch.fnmatchcase(case.name, pattern) or fnmatch.fnmatchcase(case.id, pattern)


def select_cases(spec, tiers, quirks=False, only=None, skip=None, xfail=None):
    """The cases ``check`` runs, with the quirk cases it leaves out and the xfail reasons.

    Parameters
    ----------
    spec : OpSpec.
    tiers : tuple of tier names.
    quirks : bool, run the cases that reproduce a peer's quirk (``Case.quirk != ""``).
    only, skip : glob patterns (or exact names / ids) of cases to keep / drop.
    xfail : patterns, or a dict {pattern: reason}, of cases expected to fail.

    Returns
    -------
    (cases, left_out_quirks, xfail_reasons): the cases in registry order, the ids of the
    quirk cases not run, and {case id: reason}. A pattern that matches no case of the tiers
    raises ``ValueError`` (a typo must not silently select nothing), and so does an empty
    selection.
    """
    every = registry.cases(spec, tiers)
    only, skip = _patterns(only, "only"), _patterns(skip, "skip")
    reasons = dict(xfail) if isinstance(xfail, dict) else {p: "" for p in _patterns(xfail, "xfail")}
    for name, pats in (("only", only), ("skip", skip), ("xfail", tuple(reasons))):
        for p in pats:
            if not any(_matches(c, p) for c in every):
                raise ValueError(f"{name} pattern {p!r} matches no case of {spec.name} in tiers "
                                 f"{', '.join(tiers)}")
    chosen = [c for c in every if (not only or any(_matches(c, p) for p in only))
              and not any(_matches(c, p) for p in skip)]
    left_out = [c.id for c in chosen if c.quirk and not quirks]
    chosen = [c for c in chosen if quirks or not c.quirk]
    if not chosen:
        why = []
        if only or skip:
            why.append("after --only/--skip")
        if left_out:
            why.append(f"{len(left_out)} quirk case(s) left out; quirks=True (--quirks) runs them")
        raise ValueError(f"no case of {spec.name} to run in tiers {', '.join(tiers)}"
                         + (f" ({'; '.join(why)})" if why else ""))
    xf = {}
    for c in chosen:
        for p, why in reasons.items():
            if _matches(c, p):
                xf[c.id] = why or f"xfail {p}"
    return chosen, left_out, xf


def _tiers_of(cases):
    if cases == "all":
        return registry.TIERS
    return (cases,) if isinstance(cases, str) else tuple(cases)


# ---------------------------------------------------------------------------
# check / assert_matches
# ---------------------------------------------------------------------------

def _name_of(fn):
    mod = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{mod}.{qual}" if mod else qual


def check(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
          rule="table", k=2.0, *, quirks=False, check_dtype=True, diagnose=True,
          only=None, skip=None, xfail=None):
    """Run the registry cases of ``op`` through ``candidate`` and compare with the oracle.

    Parameters
    ----------
    candidate : callable, called as ``candidate(*arrays, **params)`` in the order of the op's
        ``inputs`` (see ``kexue_ref.registry``); returns an array, or a tuple for multi-output ops.
    op : str or OpSpec, a registry name such as ``"smoothing.smooth_max"``.
    cases : a tier name ("quick", "full", "edge", "error"), "all", or a tuple of tier names.
        An error case passes only when the candidate *refuses* it (raises any exception) and
        does not also raise on a valid case of the op; the report says "refused".
    grads : None (values only); ``"autograd"`` (the candidate is traceable by autograd);
        or a callable ``grads(cotangent, *arrays, **params)`` returning the gradients w.r.t.
        the op's differentiable inputs, in order (one array if there is one). ``cotangent`` is
        an array for single-output ops, else a tuple with None for non-differentiable outputs.
    dtype : the candidate's dtype ("float64", "float32", "float16", ...); floating inputs are
        cast to it and the published tolerance for it applies (``testing.tolerances``).
    adapter : None for NumPy, or an adapter from ``kexue_ref.testing.adapters``.
    rule : "table" (default: the published per-dtype tolerances) or "relative" (the
        FlashAttention-style rule for low precision: per array, max error ≤ ``k`` × the error
        of the reference run naively in ``dtype`` + the table's atol; see
        ``kexue_ref.testing.lowprec``).
    k : the factor of ``rule="relative"`` (default 2).
    quirks : bool, also run the cases that reproduce a peer's quirk rather than the post
        (``Case.quirk``, e.g. ``compat='keras'``, replacement fills); default False: a faithful
        port of the post passes the default run. Each quirk case run is named in the report.
    check_dtype : bool, fail an output or gradient whose dtype is not the requested one
        (default True; a float64 result does not pass a float32 check).
    diagnose : bool, on failure try the op's registered conventions
        (``kexue_ref.testing.diagnose``) and localise each failing array
        (``kexue_ref.testing.localise``, when present); the findings go to ``report.notes``
        and ``Comparison.where`` (default True).
    only, skip : case names, ids or glob patterns to keep / drop.
    xfail : names, ids or glob patterns (or a dict pattern -> reason) of cases expected to
        fail: reported as XFAIL (or XPASS when they pass) and never failing the run.

    Returns
    -------
    Report, with per case: pass / refused / fail, the mismatch count, the greatest absolute
    and relative difference with their indices, dtype and tolerance.

    Raises
    ------
    ValueError when the selection is empty, a pattern matches no case, or ``rule``, ``k``
    or ``dtype`` is unknown.
    """
    from kexue_ref.testing.adapters import get_adapter
    from kexue_ref.testing.lowprec import RULES

    spec = registry.get_op(op)
    adapter = get_adapter(adapter)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    tiers = _tiers_of(cases)
    chosen, left_out, xf = select_cases(spec, tiers, quirks, only, skip, xfail)
    # an adapter may run the candidate in a context (the JAX adapter's 64-bit mode)
    run = adapter.wrap(candidate) if hasattr(adapter, "wrap") else candidate
    control = _Control(run, candidate, spec, dtype, adapter)
    results = []
    for case in chosen:
        r = _check_case(run, spec, case, grads, dtype, adapter, rule, k, check_dtype=check_dtype,
                        localise=diagnose, control=control, original=candidate)
        if case.id in xf:
            r.xfail = xf[case.id]
            r.status = "xpassed" if r.passed else "xfailed"
        results.append(r)
    notes = [] if rule == "table" else [
        f"rule {rule}: per array, max error <= {k:g} x the error of the reference run naively "
        f"in {dtype} + the table's atol (kexue_ref.testing.lowprec)"]
    if left_out:
        labels = sorted({c.quirk for c in registry.cases(spec, tiers) if c.id in left_out})
        notes.append(f"{len(left_out)} quirk case(s) not run ({'; '.join(labels)}): they reproduce "
                     "a peer's convention, not the post's; quirks=True (--quirks) runs them")
    report = Report(op=spec.name, candidate=_name_of(candidate), dtype=str(dtype), tiers=tiers,
                    results=results, notes=notes, rule=rule, k=k,
                    framework=getattr(adapter, "name", type(adapter).__name__),
                    quirks=bool(quirks), check_dtype=bool(check_dtype), skipped=left_out)
    if diagnose and any(r.tier != "error" for r in report.failures):
        _add_diagnosis(report, candidate, spec, grads, dtype, adapter)
    return report


def _add_diagnosis(report, candidate, spec, grads, dtype, adapter):
    """Run the convention diagnosis on (at most DIAGNOSE_MAX_CASES of) the failing cases."""
    from kexue_ref.testing.diagnose import diagnose

    failing = report.failures
    sub = dataclasses.replace(report, results=failing[:DIAGNOSE_MAX_CASES], notes=[])
    try:
        d = diagnose(candidate, spec, grads=grads, dtype=dtype, adapter=adapter, report=sub)
    except Exception as exc:  # the diagnosis must never turn a report into a crash
        report.notes.append(f"diagnosis failed: {_describe(exc)}")
        return
    report.notes.extend(d.lines())
    if len(failing) > DIAGNOSE_MAX_CASES:
        report.notes.append(f"diagnosis looked at the first {DIAGNOSE_MAX_CASES} of "
                            f"{len(failing)} failing cases")
    report.diagnosis = [m.convention.label for m in d.matches]


class _Control:
    """Whether the candidate accepts a valid case of the op: the control for refusals.

    An error case is credited as refused only if the candidate runs on the op's first valid
    (non-error, non-quirk) case without raising; a candidate that takes no arguments, or
    raises on everything, refuses nothing in particular. Run once, on demand.
    """

    def __init__(self, run, original, spec, dtype, adapter):
        self.run, self.original, self.spec = run, original, spec
        self.dtype, self.adapter = dtype, adapter
        self._verdict = None

    def case(self):
        for tier in ("quick", "full", "edge"):
            for c in registry.cases(self.spec, tier):
                if not c.quirk:
                    return c
        return None

    def problem(self):
        """"" when the candidate accepts the control case, else why not (one phrase)."""
        if self._verdict is None:
            case = self.case()
            self._verdict = ""
            if case is not None:
                try:
                    args = [self.adapter.to_candidate(case.inputs[n], self.dtype)
                            for n in self.spec.inputs]
                    why = _signature_problem(self.original, args, case.params)
                    if why:
                        self._verdict = f"it cannot be called on the valid case {case.name} ({why})"
                    else:
                        self.run(*args, **case.params)
                except Exception as exc:
                    self._verdict = f"it also raises on the valid case {case.name} ({_describe(exc)})"
        return self._verdict


def _signature_problem(fn, args, params):
    """Why ``fn(*args, **params)`` cannot bind to fn's signature, or "" (also when unknown)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C functions without a signature
        return ""
    try:
        sig.bind(*args, **params)
    except TypeError as exc:
        return f"signature {sig}: {exc}"
    return ""


def _native_dtype(adapter, x):
    """The dtype name of a candidate's output before any conversion (bfloat16 stays bfloat16)."""
    fn = getattr(adapter, "dtype_of", None)
    if fn is not None:
        return fn(x)
    return onp.asarray(x).dtype.name


#: the complex dtype that goes with each real dtype
_COMPLEX_OF = {"float64": "complex128", "float32": "complex64", "float16": "complex32"}


def _dtype_problem(got, expected_kind, requested):
    """Why a candidate array of dtype ``got`` is not what was asked for, or ""."""
    from kexue_ref.testing.tolerances import _dtype_name

    if expected_kind == "f" and requested is None:
        # no floating input carried a dtype to the candidate: any floating result will do
        return "" if got.startswith("float") or got == "bfloat16" else "a floating dtype"
    want = "float64" if requested is None else _dtype_name(requested)
    if expected_kind == "f":
        return "" if got == want else f"{want}"
    if expected_kind == "c":
        need = _COMPLEX_OF.get(want)
        ok = got == need if need else got.startswith("complex")
        return "" if ok else (need or "a complex dtype")
    if expected_kind == "b":
        return "" if got == "bool" else "bool"
    if expected_kind in "iu":
        return "" if got.startswith(("int", "uint")) else "an integer dtype"
    return ""


def _judge(adapter, x, e, rtol, atol, reason, what, dtype, check_dtype, localise, case,
           want_dtype="same"):
    """Compare one candidate array (native form) with the oracle's: values, dtype, locality."""
    try:
        got_dtype = _native_dtype(adapter, x)
        a = adapter.to_numpy(x)
    except Exception as exc:
        return Comparison(what=what, passed=False, dtype=str(dtype),
                          message=f"not an array the adapter can read ({_describe(exc)})")
    c, bad = _compare(a, e, rtol, atol, what=what, dtype=str(dtype))
    c.reason = reason
    c.got_dtype = got_dtype
    if check_dtype:
        want = _dtype_problem(got_dtype, onp.asarray(e).dtype.kind,
                              dtype if want_dtype == "same" else want_dtype)
        if want:
            c.dtype_ok = False
            c.dtype = want
            c.passed = False
    if localise and bad is not None and c.n_bad:
        c.where = _localise(case, what, a, e, bad, rtol, atol)
    return c


def _localise(case, what, actual, expected, bad, rtol=None, atol=None):
    """Lines saying where the failing entries lie, from kexue_ref.testing.localise if present."""
    try:
        from kexue_ref.testing.localise import localise
    except ImportError:
        return []
    try:
        return [_clip(s) for s in localise(case, what, actual, expected, bad, rtol=rtol, atol=atol)]
    except Exception as exc:  # a localisation bug must not hide the verdict
        return [f"localisation failed: {_describe(exc)}"]


def _split_outputs(spec, result):
    """The candidate's result as one entry per output name, or why it has the wrong form."""
    if len(spec.outputs) == 1:
        return (result,), ""
    if not isinstance(result, (tuple, list)):
        return None, (f"returned a {type(result).__name__}; {spec.name} returns a tuple of "
                      f"{len(spec.outputs)} outputs {spec.outputs}")
    if len(result) != len(spec.outputs):
        return None, (f"returned {len(result)} outputs; {spec.name} returns {len(spec.outputs)} "
                      f"{spec.outputs}")
    return tuple(result), ""


def _check_case(candidate, spec, case, grads, dtype, adapter, rule="table", k=2.0, *,
                check_dtype=True, localise=True, control=None, original=None):
    """One case through the candidate: a CaseResult (see :func:`check` for the rules)."""
    from kexue_ref.testing.adapters import ResultMismatch
    from kexue_ref.testing.lowprec import tolerances

    original = candidate if original is None else original
    quirk = case.quirk
    res = dict(case_id=case.id, tier=case.tier, quirk=quirk)
    args = [adapter.to_candidate(case.inputs[n], dtype) for n in spec.inputs]
    why = _signature_problem(original, args, case.params)
    if case.tier == "error":
        exc_type, pattern = case.defn.raises
        if why:
            return CaseResult(passed=False, comparisons=[], **res,
                              error=f"cannot be called with the case's arguments ({_clip(why)}); "
                                    f"a refusal counts only for the bad input")
        try:
            candidate(*args, **case.params)
        except Exception as exc:
            refused = _describe(exc)
            problem = control.problem() if control is not None else ""
            if problem:
                return CaseResult(passed=False, comparisons=[], **res,
                                  error=f"raised {refused}, but {problem}: not a refusal of the bad input")
            return CaseResult(passed=True, comparisons=[], status="refused", **res,
                              error=f"refused: {refused}")
        return CaseResult(passed=False, comparisons=[], **res,
                          error=f"returned without raising; the oracle refuses it "
                                f"({exc_type.__name__} matching {pattern!r})")
    if why:
        return CaseResult(passed=False, comparisons=[], **res,
                          error=f"cannot be called as candidate(*arrays, **params): {_clip(why)}")
    expected = reference_outputs(case)
    try:
        result = candidate(*args, **case.params)
    except Exception as exc:
        return CaseResult(passed=False, comparisons=[], **res,
                          error=f"candidate raised {_describe(exc)}")
    got, problem = _split_outputs(spec, result)
    if problem:
        return CaseResult(passed=False, comparisons=[Comparison(
            what="result", passed=False, dtype=str(dtype), message=problem)], **res)
    comparisons = []
    # the requested dtype reaches the candidate only through its floating inputs; an op of
    # integer inputs (levels, index sets) may return any floating dtype
    floating = any(onp.asarray(case.inputs[n]).dtype.kind == "f" for n in spec.inputs)
    out_dtype = dtype if floating else None
    tols = tolerances(rule, k, case, dtype, "values", expected)
    for name, g, e, (rtol, atol, reason) in zip(spec.outputs, got, expected, tols):
        comparisons.append(_judge(adapter, g, e, rtol, atol, reason, f"value {name}", dtype,
                                  check_dtype, localise, case, out_dtype))
    if grads is not None and spec.diff:
        cot = make_cotangents(case, expected)
        ref_g = reference_grads(case, cot)
        cand_g = None
        try:
            cand_g = tuple(adapter.vjp(candidate, spec, case, dtype, cot, grads))
        except ResultMismatch as exc:
            # the candidate's backward gave the wrong number or kind of arrays
            comparisons.append(Comparison(what="grads", passed=False, dtype=str(dtype),
                                          message=_clip(str(exc))))
        except Exception as exc:
            comparisons.append(Comparison(what="grads", passed=False, dtype=str(dtype),
                                          message=f"candidate VJP raised {_describe(exc)}"))
        if cand_g is not None and len(cand_g) != len(spec.diff):
            comparisons.append(Comparison(
                what="grads", passed=False, dtype=str(dtype),
                message=f"{len(cand_g)} gradients for {len(spec.diff)} differentiable inputs {spec.diff}"))
        elif cand_g is not None:
            tols = tolerances(rule, k, case, dtype, "grads", [ref_g[n] for n in spec.diff], cot)
            for name, g, (rtol, atol, reason) in zip(spec.diff, cand_g, tols):
                comparisons.append(_judge(adapter, g, ref_g[name], rtol, atol, reason,
                                          f"grad {name}", dtype, check_dtype, localise, case))
    return CaseResult(passed=all(c.passed for c in comparisons), comparisons=comparisons, **res)


def assert_matches(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
                   rule="table", k=2.0, **options):
    """Like :func:`check`, but raise ``AssertionError`` with the report when any case fails.

    ``options`` are :func:`check`'s keyword-only arguments (``quirks``, ``check_dtype``,
    ``diagnose``, ``only``, ``skip``, ``xfail``); the message is ``str(report)``, with the
    diagnosis. Returns the report when every case passes.
    """
    __tracebackhide__ = True  # pytest: show the caller's line, not this one
    report = check(candidate, op, cases=cases, grads=grads, dtype=dtype, adapter=adapter,
                   rule=rule, k=k, **options)
    if not report.passed:
        raise AssertionError(str(report))
    return report
