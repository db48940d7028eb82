"""Run registry cases through a candidate and compare it with the float64 oracle.

The oracle side: :func:`reference_outputs` runs the reference in float64,
:func:`make_cotangents` draws the seeded cotangent (the same one the tables store), and
:func:`reference_grads` takes autograd's VJP of the reference with it.

The candidate side goes through an *adapter* (``kexue_ref.testing.adapters``) that converts
arrays in and out and computes the candidate's VJP; the NumPy adapter is built in, and the
torch and JAX adapters plug into the same seam.

The package in layers (each module imports only those above it in this list, never below;
``tests/test_import_layers.py`` checks it):

* ``_compare``: :func:`compare` and :class:`Comparison`, the elementwise rule;
* ``_oracle``: :func:`reference_outputs`, :func:`make_cotangents`, :func:`autograd_vjp`,
  :func:`reference_grads`;
* ``_report``: :class:`CaseResult` and :class:`Report`; ``_select``: :func:`select_cases`;
* ``adapters``, ``lowprec``, ``localise`` (which use the oracle side);
* ``_run``: the check loop, one case at a time (:func:`_check_case`);
* ``diagnose``: the convention diagnosis (it calls the check loop);
* this module: :func:`check` (the loop, then the diagnosis of its failures) and
  :func:`assert_matches`; every name of the layers below stays importable from here.

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

from kexue_ref.testing._compare import (  # noqa: F401  (importable from here, as before)
    Comparison, _compare, _exact, _fmt, _index, _nan_mask, _same_special, _unravel, compare)
from kexue_ref.testing._oracle import (  # noqa: F401
    _diff_output_mask, autograd_vjp, make_cotangents, reference_grads, reference_outputs)
from kexue_ref.testing._report import (  # noqa: F401
    _MAX_MESSAGE, REPORT_FORMAT_VERSION, STATUSES, CaseResult, Report, _clip, _describe)
from kexue_ref.testing._run import (  # noqa: F401
    _COMPLEX_OF, _check_case, _Control, _dtype_problem, _judge, _localise, _name_of,
    _native_dtype, _run_cases, _signature_problem, _split_outputs)
from kexue_ref.testing._select import _matches, _patterns, _tiers_of, select_cases  # noqa: F401

__all__ = ["Comparison", "CaseResult", "Report", "compare", "reference_outputs",
           "make_cotangents", "reference_grads", "check", "assert_matches", "autograd_vjp",
           "REPORT_FORMAT_VERSION"]

#: failing cases the convention diagnosis looks at (it re-runs the candidate once per case)
DIAGNOSE_MAX_CASES = 16


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
    report, spec, adapter = _run_cases(
        candidate, op, cases=cases, grads=grads, dtype=dtype, adapter=adapter, rule=rule, k=k,
        quirks=quirks, check_dtype=check_dtype, localise=diagnose, only=only, skip=skip,
        xfail=xfail)
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
