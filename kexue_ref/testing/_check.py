"""Run registry cases through a candidate and compare it with the float64 oracle.

The oracle side: :func:`reference_outputs` runs the reference in float64,
:func:`make_cotangents` draws the seeded cotangent (the same one the tables store), and
:func:`reference_grads` takes autograd's VJP of the reference with it.

The candidate side goes through an *adapter* (``kexue_ref.testing.adapters``) that converts
arrays in and out and computes the candidate's VJP; the NumPy adapter is built in, and the
torch and JAX adapters plug into the same seam.
"""
import dataclasses

import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.tracer import getval

from kexue_ref import registry

__all__ = ["Comparison", "CaseResult", "Report", "compare", "reference_outputs",
           "make_cotangents", "reference_grads", "check", "assert_matches", "autograd_vjp"]


# ---------------------------------------------------------------------------
# Elementwise comparison
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Comparison:
    """One array compared: what, verdict, error sizes, worst index and the tolerance used."""
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

    def line(self):
        verdict = "ok  " if self.passed else "FAIL"
        if self.message and not self.size:
            return f"{verdict} {self.what}: {self.message}"
        at = "" if self.worst_index is None else f" at {self.worst_index}"
        text = (f"{verdict} {self.what}: max|Δ|={self.max_abs:.3g}{at}, max rel={self.max_rel:.3g}, "
                f"{self.n_bad}/{self.size} outside rtol={self.rtol:g} atol={self.atol:g}")
        if self.reason:
            # an acceptance rule (kexue_ref.testing.lowprec) or a Tol override with its reason
            text += f" ({self.reason})" if self.reason.startswith("rule") else f" (override: {self.reason})"
        if self.message:
            text += f"; {self.message}"
        return text


def compare(actual, expected, rtol, atol, what="out", dtype=""):
    """Compare ``actual`` with the oracle ``expected``: ``|a - e| <= atol + rtol·|e|`` per element.

    Infinities must match exactly (same sign, same place); NaN never passes; integer, boolean
    and string arrays are compared exactly. The worst index is where the excess over the
    tolerance is largest.
    """
    a = onp.asarray(actual)
    e = onp.asarray(expected)
    base = dict(what=what, dtype=dtype, rtol=rtol, atol=atol)
    if a.shape != e.shape:
        return Comparison(passed=False, message=f"shape {a.shape} != expected {e.shape}", **base)
    size = int(e.size)
    if e.dtype.kind not in "fc" or a.dtype.kind not in "fc":
        if e.dtype.kind in "fc" or a.dtype.kind in "fc":
            a_num, e_num = a.astype(onp.float64), e.astype(onp.float64)
            bad = ~((a_num == e_num) | (onp.isnan(a_num) & onp.isnan(e_num)))
        else:
            bad = a != e
        n_bad = int(onp.sum(bad))
        worst = tuple(int(i) for i in onp.argwhere(bad)[0]) if n_bad else None
        return Comparison(passed=n_bad == 0, n_bad=n_bad, size=size, worst_index=worst,
                          message="exact comparison" + (f": got {a[worst]!r}, expected {e[worst]!r}"
                                                        if n_bad else ""), **base)
    a = a.astype(onp.float64)
    e = e.astype(onp.float64)
    both_inf = onp.isinf(a) & onp.isinf(e) & (onp.sign(a) == onp.sign(e))
    with onp.errstate(invalid="ignore", over="ignore"):
        diff = onp.where(both_inf, 0.0, onp.abs(a - e))
        diff = onp.where(onp.isnan(diff), onp.inf, diff)
        allowed = atol + rtol * onp.where(onp.isfinite(e), onp.abs(e), 0.0)
        rel = onp.where(diff == 0, 0.0, diff / onp.maximum(onp.abs(e), onp.finfo(float).tiny))
    bad = diff > allowed
    n_bad = int(onp.sum(bad))
    if size == 0:
        return Comparison(passed=True, size=0, **base)
    excess = onp.where(bad, diff - allowed, -onp.inf)
    worst = tuple(int(i) for i in onp.unravel_index(int(onp.argmax(excess if n_bad else diff)), e.shape))
    msg = ""
    if n_bad:
        msg = f"got {a[worst]:.17g}, expected {e[worst]:.17g}"
    return Comparison(passed=n_bad == 0, max_abs=float(onp.max(diff)), max_rel=float(onp.max(rel)),
                      worst_index=worst, n_bad=n_bad, size=size, message=msg, **base)


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

@dataclasses.dataclass
class CaseResult:
    """The verdict for one case: its comparisons, or the error the candidate raised."""
    case_id: str
    tier: str
    passed: bool
    comparisons: list
    error: str = ""

    def lines(self):
        head = f"{'PASS' if self.passed else 'FAIL'} {self.case_id} [{self.tier}]"
        out = [head]
        if self.error:
            out.append(f"    {self.error}")
        out.extend("    " + c.line() for c in self.comparisons)
        return out


@dataclasses.dataclass
class Report:
    """Per-case results of :func:`check`; ``str(report)`` is the readable report."""
    op: str
    candidate: str
    dtype: str
    tiers: tuple
    results: list
    notes: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return all(r.passed for r in self.results)

    @property
    def failures(self):
        return [r for r in self.results if not r.passed]

    def __bool__(self):
        return self.passed

    def summary(self):
        n_fail = len(self.failures)
        return f"{len(self.results) - n_fail} passed, {n_fail} failed"

    def __str__(self):
        lines = [f"kexue_ref check: {self.op} vs {self.candidate} "
                 f"(dtype {self.dtype}, tiers {', '.join(self.tiers)})"]
        for r in self.results:
            lines.extend(r.lines() if not r.passed else r.lines()[:1])
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"{self.op}: {self.summary()}")
        return "\n".join(lines)

    def to_dict(self):
        return {"op": self.op, "candidate": self.candidate, "dtype": self.dtype,
                "tiers": list(self.tiers), "passed": self.passed, "summary": self.summary(),
                "notes": list(self.notes),
                "results": [dict(dataclasses.asdict(r)) for r in self.results]}


# ---------------------------------------------------------------------------
# check / assert_matches
# ---------------------------------------------------------------------------

def _name_of(fn):
    mod = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{mod}.{qual}" if mod else qual


def check(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
          rule="table", k=2.0):
    """Run the registry cases of ``op`` through ``candidate`` and compare with the oracle.

    Parameters
    ----------
    candidate : callable, called as ``candidate(*arrays, **params)`` in the order of the op's
        ``inputs`` (see ``kexue_ref.registry``); returns an array, or a tuple for multi-output ops.
    op : str or OpSpec, a registry name such as ``"smoothing.smooth_max"``.
    cases : a tier name ("quick", "full", "edge", "error"), "all", or a tuple of tier names.
        Error cases pass when the candidate raises any exception.
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

    Returns
    -------
    Report, with per case: pass/fail, max abs and rel error, worst index, dtype, tolerance.
    """
    from kexue_ref.testing.adapters import get_adapter

    spec = registry.get_op(op)
    adapter = get_adapter(adapter)
    tiers = registry.TIERS if cases == "all" else ((cases,) if isinstance(cases, str) else tuple(cases))
    # an adapter may run the candidate in a context (the JAX adapter's 64-bit mode)
    run = adapter.wrap(candidate) if hasattr(adapter, "wrap") else candidate
    results = []
    for case in registry.cases(spec, tiers):
        results.append(_check_case(run, spec, case, grads, dtype, adapter, rule, k))
    notes = [] if rule == "table" else [
        f"rule {rule}: per array, max error <= {k:g} x the error of the reference run naively "
        f"in {dtype} + the table's atol (kexue_ref.testing.lowprec)"]
    return Report(op=spec.name, candidate=_name_of(candidate), dtype=str(dtype), tiers=tiers,
                  results=results, notes=notes)


def _check_case(candidate, spec, case, grads, dtype, adapter, rule="table", k=2.0):
    from kexue_ref.testing.lowprec import tolerances

    args = [adapter.to_candidate(case.inputs[n], dtype) for n in spec.inputs]
    if case.tier == "error":
        try:
            candidate(*args, **case.params)
        except Exception as exc:  # any exception counts as rejecting the bad input
            return CaseResult(case.id, case.tier, True, [], error=f"raised {type(exc).__name__}: {exc}")
        exc_type, pattern = case.defn.raises
        return CaseResult(case.id, case.tier, False, [],
                          error=f"returned without raising; the oracle raises {exc_type.__name__} "
                                f"matching {pattern!r}")
    expected = reference_outputs(case)
    comparisons = []
    try:
        got = spec.as_outputs(candidate(*args, **case.params))
    except Exception as exc:
        return CaseResult(case.id, case.tier, False, [], error=f"candidate raised {type(exc).__name__}: {exc}")
    tols = tolerances(rule, k, case, dtype, "values", expected)
    for name, g, e, (rtol, atol, reason) in zip(spec.outputs, got, expected, tols):
        c = compare(adapter.to_numpy(g), e, rtol, atol, what=f"value {name}", dtype=str(dtype))
        c.reason = reason
        comparisons.append(c)
    if grads is not None and spec.diff:
        cot = make_cotangents(case, expected)
        ref_g = reference_grads(case, cot)
        try:
            cand_g = adapter.vjp(candidate, spec, case, dtype, cot, grads)
        except Exception as exc:
            comparisons.append(Comparison(what="grads", passed=False,
                                          message=f"candidate VJP raised {type(exc).__name__}: {exc}"))
            cand_g = None
        if cand_g is not None:
            tols = tolerances(rule, k, case, dtype, "grads", [ref_g[n] for n in spec.diff], cot)
            for name, g, (rtol, atol, reason) in zip(spec.diff, cand_g, tols):
                c = compare(adapter.to_numpy(g), ref_g[name], rtol, atol, what=f"grad {name}",
                            dtype=str(dtype))
                c.reason = reason
                comparisons.append(c)
    return CaseResult(case.id, case.tier, all(c.passed for c in comparisons), comparisons)


def assert_matches(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
                   rule="table", k=2.0):
    """Like :func:`check`, but raise ``AssertionError`` with the report when any case fails.

    Returns the report when every case passes.
    """
    report = check(candidate, op, cases=cases, grads=grads, dtype=dtype, adapter=adapter,
                   rule=rule, k=k)
    if not report.passed:
        raise AssertionError(str(report))
    return report
