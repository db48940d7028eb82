"""pytest integration: one parametrized test per registry case, with readable failures.

One line per op in a framework project's test module::

    from kexue_ref.testing.pytest_plugin import conformance_test

    test_smooth_max = conformance_test(my_smooth_max, "smoothing.smooth_max",
                                       tiers=("quick", "edge"), adapter="torch", grads=True)

collects as ``test_smooth_max[post-x-K1]``, ``test_smooth_max[extreme-1e4]``, ... and a
failing case fails with the case's report lines (at most four: mismatched elements, the
greatest absolute and relative differences with their indices and tolerances, where the
error lies) and the convention diagnosis, without the library's own frames in the traceback
(``__tracebackhide__``). Cases that reproduce a peer's quirk (``Case.quirk``) are collected
only with ``quirks=True``. Two finer-grained forms give the case to your own test body:

* the decorator :func:`parametrize_cases` (plain ``pytest.mark.parametrize``, no plugin
  needed)::

      @parametrize_cases("smoothing.smooth_max", tiers=("quick", "full"))
      def test_smooth_max(kexue_case):
          check_case(my_smooth_max, kexue_case, adapter="torch", grads=True)

* the marker ``@pytest.mark.kexue_ref("smoothing.smooth_max", tiers=("quick",))`` on a test
  taking ``kexue_case``, when this module is active as a plugin: through the ``pytest11``
  entry point of an installed kexue_ref, ``-p kexue_ref.testing.pytest_plugin`` on the
  command line, or ``pytest_plugins = ["kexue_ref.testing.pytest_plugin"]`` in the root
  ``conftest.py``.

Documented divergences can be expected failures: ``xfail={"neginf-entries": "torch gives a
NaN gradient (pytorch#31829)"}`` marks those cases ``xfail(strict=True)``, so the test
suite notices when the framework changes.
"""
import pytest

from kexue_ref import registry

__all__ = ["parametrize_cases", "case_params", "check_case", "conformance_test"]

ARGNAME = "kexue_case"


class _Case(registry.Case):
    """A registry Case whose repr is its id: pytest prints test arguments in tracebacks, and a
    Case's default repr would dump its op spec and input arrays."""

    def __repr__(self):
        return f"<Case {self.id}>"

    __str__ = __repr__


def _short(case):
    return _Case(spec=case.spec, defn=case.defn, inputs=case.inputs, seed=case.seed)


def case_params(op, tiers=("quick",), xfail=None, quirks=False):
    """``pytest.param`` objects for the registry cases of an op.

    Parameters
    ----------
    op : registry name or OpSpec.
    tiers : tier name(s) or "all".
    xfail : optional {case name: reason}: those cases are marked ``xfail(strict=True)``; a
        name the op does not have in ``tiers`` raises ``ValueError`` (the name of a quirk case
        left out by ``quirks=False`` is accepted and has nothing to mark).
    quirks : bool, also collect the cases that reproduce a peer's quirk (``Case.quirk``).

    Returns
    -------
    list of ``pytest.param(case, id=case.name)`` (the case's repr is its id).
    """
    spec = registry.get_op(op)
    xfail = dict(xfail or {})
    cases = registry.cases(spec, tiers)
    unknown = set(xfail) - {c.name for c in cases}
    if unknown:
        raise ValueError(f"xfail names cases {sorted(unknown)} that {spec.name} does not have "
                         f"in tiers {tiers}")
    out = []
    for case in cases:
        if case.quirk and not quirks:
            continue  # a peer's convention, not the post's: only when asked for
        marks = [pytest.mark.xfail(strict=True, reason=xfail[case.name])] if case.name in xfail else []
        out.append(pytest.param(_short(case), id=case.name, marks=marks))
    return out


def parametrize_cases(op, tiers=("quick",), argname=ARGNAME, xfail=None, quirks=False):
    """A ``pytest.mark.parametrize`` over the registry cases of ``op``.

    Parameters
    ----------
    op : registry name, e.g. ``"smoothing.smooth_max"``.
    tiers : tier names, or ``"all"``.
    argname : the test argument that receives each :class:`~kexue_ref.registry.Case`.
    xfail : optional {case name: reason} of documented divergences.
    quirks : bool, also the cases that reproduce a peer's quirk (default False).
    """
    return pytest.mark.parametrize(argname, case_params(op, tiers, xfail, quirks))


def check_case(candidate, case, *, grads=None, dtype="float64", adapter=None, rule="table",
               k=2.0, diagnose=True, check_dtype=True):
    """Check one registry case; raise ``AssertionError`` with its report on failure.

    Parameters
    ----------
    candidate : callable, called as ``candidate(*arrays, **params)``.
    case : a :class:`~kexue_ref.registry.Case` (what :func:`parametrize_cases` hands out).
    grads, dtype, adapter, rule, k, check_dtype : as for :func:`kexue_ref.testing.check`.
    diagnose : bool, localise the failing entries and append the convention diagnosis to the
        failure message (default True).

    Returns
    -------
    CaseResult, when the case passes (an error case: when the candidate refuses it and runs on
    a valid case of the op).
    """
    __tracebackhide__ = True  # pytest shows the test's line and this message, not our frames
    from kexue_ref.testing._check import Report, _check_case, _Control, _name_of
    from kexue_ref.testing.adapters import get_adapter

    adapter = get_adapter(adapter)
    run = adapter.wrap(candidate) if hasattr(adapter, "wrap") else candidate
    control = _Control(run, candidate, case.spec, dtype, adapter)
    result = _check_case(run, case.spec, case, grads, dtype, adapter, rule, k,
                         check_dtype=check_dtype, localise=diagnose, control=control,
                         original=candidate)
    if result.passed:
        return result
    report = Report(op=case.spec.name, candidate=_name_of(candidate), dtype=str(dtype),
                    tiers=(case.tier,), results=[result])
    lines = [f"{case.id} vs {report.candidate} (dtype {dtype}, rule {rule})"] + result.lines()
    if diagnose and case.tier != "error":
        from kexue_ref.testing.diagnose import diagnose as _diagnose
        try:
            lines += _diagnose(candidate, case.spec, grads=grads, dtype=dtype, adapter=adapter,
                               report=report).lines()
        except Exception as exc:  # never let the diagnosis replace the verdict
            lines.append(f"diagnosis failed: {type(exc).__name__}: {exc}")
    raise AssertionError("\n".join(lines))


def conformance_test(candidate, op, tiers=("quick",), *, grads=None, dtype="float64",
                     adapter=None, rule="table", k=2.0, xfail=None, quirks=False,
                     check_dtype=True):
    """A ready-made test function: one test per registry case of ``op`` for ``candidate``.

    Parameters
    ----------
    candidate : callable, called as ``candidate(*arrays, **params)``.
    op : registry name or OpSpec.
    tiers : tier name(s) or "all" (default: quick).
    grads, dtype, adapter, rule, k, check_dtype : as for :func:`kexue_ref.testing.check`.
    xfail : optional {case name: reason} of documented divergences (strict xfails).
    quirks : bool, also the cases that reproduce a peer's quirk (default False).

    Returns
    -------
    function ``test(kexue_case)`` parametrized over the cases; assign it to a module-level
    name starting with ``test`` (the tests are named ``<that name>[<case name>]``).
    """
    @parametrize_cases(op, tiers, xfail=xfail, quirks=quirks)
    def test(kexue_case):
        __tracebackhide__ = True  # the failure message is the report; no library source
        check_case(candidate, kexue_case, grads=grads, dtype=dtype, adapter=adapter, rule=rule,
                   k=k, check_dtype=check_dtype)

    name = getattr(candidate, "__name__", "candidate")
    test.__name__ = f"test_{name}"
    test.__doc__ = f"{name} conforms to {registry.get_op(op).name} ({', '.join(_tiers(tiers))})."
    return test


def _tiers(tiers):
    return registry.TIERS if tiers == "all" else ((tiers,) if isinstance(tiers, str) else tiers)


# ---------------------------------------------------------------------------
# Plugin hooks (active when the module is loaded as a plugin)
# ---------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "kexue_ref(op, tiers=('quick',), xfail=None, quirks=False): parametrize the test's kexue_case argument "
        "over the registry cases of op (kexue_ref.testing.pytest_plugin)")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("kexue_ref")
    if marker is None or ARGNAME not in metafunc.fixturenames:
        return
    op = marker.args[0] if marker.args else marker.kwargs.get("op")
    if op is None:
        raise pytest.UsageError("@pytest.mark.kexue_ref needs the op name, e.g. "
                                "@pytest.mark.kexue_ref('smoothing.smooth_max')")
    tiers = marker.kwargs.get("tiers", marker.args[1] if len(marker.args) > 1 else ("quick",))
    metafunc.parametrize(ARGNAME, case_params(op, tiers, marker.kwargs.get("xfail"),
                                              marker.kwargs.get("quirks", False)))

