"""The check loop: every selected case through the candidate, judged against the oracle.

:func:`_run_cases` is :func:`kexue_ref.testing.check` without the convention diagnosis (which
re-runs the candidate and so sits above this module, in ``_check``); the diagnosis itself
calls it to get the verdicts it explains. The pass rules are in the docstring of
``kexue_ref.testing._check``; :func:`_check_case` applies them to one case.
"""
import inspect

import numpy as onp

from kexue_ref import registry
from kexue_ref.testing._compare import Comparison, _compare
from kexue_ref.testing._oracle import make_cotangents, reference_grads, reference_outputs
from kexue_ref.testing._report import CaseResult, Report, _clip, _describe
from kexue_ref.testing._select import _tiers_of, select_cases
from kexue_ref.testing.adapters import ResultMismatch, get_adapter
from kexue_ref.testing.lowprec import RULES, tolerances
from kexue_ref.testing.tolerances import _dtype_name


def _name_of(fn):
    mod = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{mod}.{qual}" if mod else qual


def _run_cases(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
               rule="table", k=2.0, *, quirks=False, check_dtype=True, localise=True,
               only=None, skip=None, xfail=None):
    """Run the selected cases of ``op`` through ``candidate``: (Report, OpSpec, adapter).

    The arguments are :func:`kexue_ref.testing.check`'s, with ``localise`` for its
    ``diagnose`` (localise each failing array); no convention diagnosis is made here.
    """
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
                        localise=localise, control=control, original=candidate)
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
    return report, spec, adapter


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
