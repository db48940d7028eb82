"""Helpers of the framework worked examples: refusals asserted as refusals, real xfails with ``raises=``.

:func:`kexue_ref.testing.pytest_plugin.conformance_test` marks documented divergences as strict
xfails, and a strict xfail also "passes" when the candidate merely refuses the case (raises
``NotImplementedError``), so it cannot tell a refusal from a wrong answer. Here the two are
kept apart:

* ``refuses={case name: (exception type, message regex)}``: the candidate, called on the case's
  inputs through the adapter, must raise that exception (``pytest.raises``), and nothing else
  passes;
* ``xfail={case name: reason}``: a real divergence. The candidate is first called on the case
  (so a refusal surfaces as its own exception type and fails the test), then checked; the
  mark is ``xfail(strict=True, raises=AssertionError)``, the check's failure type.
"""
import pytest

from kexue_ref import registry
from kexue_ref.testing.adapters import get_adapter
from kexue_ref.testing.pytest_plugin import check_case

__all__ = ["call_on_case", "conformance", "names_with"]


class _Case(registry.Case):
    """A registry Case whose repr is its id (pytest prints test arguments in tracebacks; the
    default repr would dump the op spec and the input arrays)."""

    def __repr__(self):
        return f"<Case {self.id}>"

    __str__ = __repr__


def call_on_case(candidate, case, adapter, dtype="float64"):
    """``candidate(*inputs, **params)`` with the case's arrays converted by ``adapter`` to ``dtype``.

    The conversion is the checker's own (``adapter.to_candidate`` per input, in the op's
    positional order), so a refusal seen here is the one the checker would see.
    """
    a = get_adapter(adapter)
    args = [a.to_candidate(case.inputs[n], dtype) for n in case.spec.inputs]
    return candidate(*args, **case.params)


def names_with(op, tiers, **params):
    """Names of the cases of ``op`` in ``tiers`` whose parameter ``name`` is set (not None) to
    one of ``values`` (``"*"``: any value), for each ``name=values`` given."""
    out = []
    for case in registry.cases(op, tiers):
        for name, values in params.items():
            value = case.params.get(name)
            if value is not None and (values == "*" or value in values):
                out.append(case.name)
                break
    return out


def conformance(candidate, op, tiers, *, adapter, refuses=None, xfail=None, **check_kw):
    """A test function over the cases of ``op``: checked, refused, or a real (strict) xfail.

    Parameters
    ----------
    candidate : callable, called as ``candidate(*arrays, **params)``.
    op : registry name.
    tiers : tier name(s).
    adapter : adapter name ("torch", "jax").
    refuses : {case name: (exception type, message regex)}: cases the candidate must refuse.
    xfail : {case name: reason}: real divergences (``xfail(strict=True, raises=AssertionError)``).
    check_kw : grads, dtype, rule, k for :func:`~kexue_ref.testing.pytest_plugin.check_case`.

    Returns
    -------
    function ``test(kexue_case)``; assign it to a module-level name starting with ``test``.

    Raises
    ------
    ValueError : a name in ``refuses`` or ``xfail`` that ``op`` lacks in ``tiers``, or a name in both.
    """
    refuses, xfail = dict(refuses or {}), dict(xfail or {})
    cases = registry.cases(op, tiers)
    known = {c.name for c in cases}
    unknown = (set(refuses) | set(xfail)) - known
    if unknown:
        raise ValueError(f"refuses/xfail name cases {sorted(unknown)} that {op} lacks in tiers {tiers}")
    if set(refuses) & set(xfail):
        raise ValueError(f"cases both refused and xfailed: {sorted(set(refuses) & set(xfail))}")
    dtype = check_kw.get("dtype", "float64")
    params = []
    for case in cases:
        marks = ()
        if case.name in xfail:
            marks = (pytest.mark.xfail(strict=True, raises=AssertionError, reason=xfail[case.name]),)
        short = _Case(spec=case.spec, defn=case.defn, inputs=case.inputs, seed=case.seed)
        params.append(pytest.param(short, id=case.name, marks=marks))

    @pytest.mark.parametrize("kexue_case", params)
    def test(kexue_case):
        if kexue_case.name in refuses:
            exc_type, pattern = refuses[kexue_case.name]
            # a refusal: the candidate's own exception, with its message
            with pytest.raises(exc_type, match=pattern):
                call_on_case(candidate, kexue_case, adapter, dtype)
            return
        if kexue_case.name in xfail:
            # a refusal here would raise its own type, not AssertionError: the xfail then fails
            call_on_case(candidate, kexue_case, adapter, dtype)
        check_case(candidate, kexue_case, adapter=adapter, **check_kw)

    name = getattr(candidate, "__name__", "candidate")
    test.__name__ = f"test_{name}"
    test.__doc__ = f"{name} conforms to {op} ({tiers}), refusals and divergences named."
    return test
