"""The checking API seen from a NumPy candidate: reports, the low-precision rule, the
convention diagnosis, the pytest helpers and the ``kexue-ref check`` command.

Deliberately wrong candidates must be reported with the case id, the worst index and the
size of the error; the expected sizes come from the math of each mistake.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kexue_ref import registry
from kexue_ref import smoothing as sm
from kexue_ref.cli import main
from kexue_ref.testing import check, assert_matches
from kexue_ref.testing import diagnose as dg
from kexue_ref.testing.lowprec import round_to, tolerances
from kexue_ref.testing.pytest_plugin import case_params, check_case, conformance_test

X_POST = np.array([2.0, 1.0, 4.0, 5.0, 3.0])


# --- deliberately wrong candidates ------------------------------------------------------------

def unshifted_smooth_max(x, scale=1.0, axis=-1):
    """(1/K) log Σ e^{K x} without the max shift: overflows for K x ≳ 709."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.log(np.sum(np.exp(scale * x), axis=axis)) / scale


def one_based_soft_argmax(x, scale=1.0, axis=-1, base=0):
    """Counts positions from 1 whatever ``base`` says (the post's convention)."""
    return sm.soft_argmax(x, scale, axis, base=1)


def test_unshifted_smooth_max_passes_quick_and_fails_the_1e4_edge():
    assert check(unshifted_smooth_max, "smoothing.smooth_max", "quick").passed
    report = check(unshifted_smooth_max, "smoothing.smooth_max", "edge")
    failed = {r.case_id: r for r in report.failures}
    assert set(failed) == {"smoothing.smooth_max[extreme-1e4]", "smoothing.smooth_max[large-K-1e3]"}
    (cmp,) = failed["smoothing.smooth_max[extreme-1e4]"].comparisons
    # row 0 holds +1e4: e^{1e4} overflows to inf; row 1 (all near -1e4) underflows to log 0 = -inf
    assert cmp.n_bad == 2 and cmp.size == 2
    assert cmp.worst_index == (0,) and cmp.max_abs == np.inf
    assert "got inf, expected 10000.31" in cmp.message
    text = str(report)
    assert "FAIL smoothing.smooth_max[extreme-1e4] [edge]" in text
    # torch.testing's wording: 2 of 2 entries off, the greatest difference inf at row 0
    assert "[edge] value out: Mismatched elements: 2 / 2 (100.0%)" in text
    assert "Greatest absolute difference: inf at index (0,) (up to 1e-13 allowed)" in text
    assert text.endswith("smoothing.smooth_max: 2 passed, 2 failed")
    # at most 4 lines per failing case, 1 per passing case
    block = text.splitlines()
    start = block.index(next(ln for ln in block if ln.startswith("FAIL smoothing.smooth_max[extreme-1e4]")))
    assert len([ln for ln in block[start + 1:start + 5] if ln.startswith("    ")]) <= 3


def test_one_based_soft_argmax_is_off_by_exactly_one_and_diagnosed():
    report = check(one_based_soft_argmax, "smoothing.soft_argmax", "quick", grads="autograd")
    assert [r.case_id for r in report.failures] == ["smoothing.soft_argmax[post-x-K1]",
                                                    "smoothing.soft_argmax[post-x-K10]"]
    values, grad = report.failures[0].comparisons
    # Σ (i + 1) p_i − Σ i p_i = Σ p_i = 1; the gradient is unchanged (Σ p_i is constant)
    assert values.max_abs == pytest.approx(1.0, abs=1e-12) and values.worst_index == ()
    assert grad.passed
    d = dg.diagnose(one_based_soft_argmax, "smoothing.soft_argmax", "quick", grads="autograd",
                    report=report)
    assert [m.convention.label for m in d.matches] == ["base=1"]
    assert d.matches[0].matched == [r.case_id for r in report.failures]
    assert "base=1" in d.lines()[0]


def test_wrong_hand_written_gradient_is_reported_on_the_gradient_only():
    def grads_times_k(u, x, scale=1.0, axis=-1):
        # d/dx (1/K) LSE(Kx) = softmax(Kx); this one returns K softmax(Kx)
        return scale * np.expand_dims(u, axis) * sm.soft_onehot(x, scale, axis)

    report = check(sm.smooth_max, "smoothing.smooth_max", "quick", grads=grads_times_k)
    by_id = {r.case_id: r for r in report.results}
    assert by_id["smoothing.smooth_max[post-x-K1]"].passed          # K = 1: K·softmax = softmax
    bad = by_id["smoothing.smooth_max[post-x-K10]"]
    values, grad = bad.comparisons
    assert values.passed and not grad.passed and grad.what == "grad x"
    # the error is (K − 1)·u·softmax(Kx), largest at the argmax (index 3, value 5)
    assert grad.worst_index == (3,)


def test_error_cases_need_the_candidate_to_raise():
    report = check(unshifted_smooth_max, "smoothing.smooth_max", "error")
    by_name = {r.case_id.split("[")[1][:-1]: r for r in report.results}
    # it silently accepts NaN and a zero or negative scale, raises (any error) on an empty axis
    assert not by_name["nan"].passed and "returned without raising" in by_name["nan"].error
    assert not by_name["scale-zero"].passed
    assert check(sm.smooth_max, "smoothing.smooth_max", "error").passed


def test_candidate_errors_and_shape_mismatches_are_reported():
    def raises(x, scale=1.0, axis=-1):
        raise RuntimeError("not implemented")

    def keeps_dims(x, scale=1.0, axis=-1):
        return sm.smooth_max(x, scale, axis)[..., None]

    r1 = check(raises, "smoothing.smooth_max")
    assert not r1.passed and "candidate raised RuntimeError: not implemented" in r1.results[0].error
    r2 = check(keeps_dims, "smoothing.smooth_max")
    assert "shape (1,) != expected ()" in r2.results[0].comparisons[0].message
    with pytest.raises(AssertionError, match=r"smoothing.smooth_max\[post-x-K1\]"):
        assert_matches(raises, "smoothing.smooth_max")


# --- the low-precision rule ---------------------------------------------------------------

def test_round_to_bfloat16_known_values():
    # 8 significant bits, round half to even
    x = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 / 3, -2.5, np.inf, 0.0])
    expected = [1.0, 1 + 2.0**-6, 0.333984375, -2.5, np.inf, 0.0]
    assert round_to(x, "bfloat16").tolist() == expected
    assert round_to(x, "float16").dtype == np.float16


def test_relative_rule_bound_is_k_times_the_naive_error_plus_atol():
    (case,) = [c for c in registry.cases("smoothing.soft_onehot", "full") if c.name == "n9-K3"]
    expected = sm.soft_onehot(case.inputs["x"], **case.params)
    # the naive run: the reference on float16 inputs, computed in float16
    naive = sm.soft_onehot(case.inputs["x"].astype(np.float16), **case.params).astype(np.float64)
    e_naive = np.max(np.abs(naive - expected))
    ((rtol, atol, reason),) = tolerances("relative", 3.0, case, "float16", "values", [expected])
    assert rtol == 0 and atol == pytest.approx(3.0 * e_naive + 1e-4, rel=1e-12)
    assert reason.startswith("rule: ≤ 3 × naive float16 error")


def test_relative_rule_accepts_the_reference_in_float16_where_the_table_does_not():
    tiers = ("quick", "full", "edge")
    table = check(sm.soft_onehot, "smoothing.soft_onehot", tiers, dtype="float16", grads="autograd")
    relative = check(sm.soft_onehot, "smoothing.soft_onehot", tiers, dtype="float16",
                     grads="autograd", rule="relative", k=1)
    assert not table.passed          # float16 cannot reach the table's 1e-3 at K = 3, n = 9
    assert relative.passed, relative
    assert "rule relative" in relative.notes[0]


def test_relative_rule_rejects_a_float32_candidate_that_rounds_to_float16():
    def sloppy(x, scale=1.0, axis=-1):
        return sm.soft_onehot(x.astype(np.float16), scale, axis).astype(np.float32)
    report = check(sloppy, "smoothing.soft_onehot", "quick", dtype="float32", rule="relative")
    assert not report.passed
    assert "naive float32 error" in report.failures[0].comparisons[0].reason


def _custom_case(op, inputs, params):
    spec = registry.get_op(op)
    return registry.Case(spec=spec, defn=registry.CaseDef("custom", inputs, params), inputs=inputs, seed=0)


def test_relative_rule_falls_back_to_the_table_without_a_naive_baseline():
    # K·x = 9e4 overflows float16 (max 65504): the naive run gives inf where the oracle is 3e4
    case = _custom_case("smoothing.smooth_max", {"x": np.array([3e4, 0.0])}, {"scale": 3.0})
    expected = sm.smooth_max(case.inputs["x"], **case.params)
    ((rtol, atol, reason),) = tolerances("relative", 2, case, "float16", "values", [expected])
    assert (rtol, atol) == (1e-3, 1e-4) and "not finite where the oracle is" in reason
    # 1e5 itself is +inf in float16, which the reference refuses: no baseline either
    case = _custom_case("smoothing.smooth_max", {"x": np.array([1e5, 0.0])}, {})
    ((rtol, atol, reason),) = tolerances("relative", 2, case, "float16", "values", [np.array(1e5)])
    assert (rtol, atol) == (1e-3, 1e-4) and "raised ValueError; table rule used" in reason


def test_rule_arguments_are_validated():
    with pytest.raises(ValueError, match="rule must be one of"):
        check(sm.smooth_max, "smoothing.smooth_max", rule="loose")
    with pytest.raises(ValueError, match="k must be a finite number >= 1"):
        check(sm.smooth_max, "smoothing.smooth_max", rule="relative", k=0.5)


# --- convention diagnosis -----------------------------------------------------------------

def test_diagnosis_with_explicit_and_registered_conventions(monkeypatch):
    def temperature_smooth_max(x, scale=1.0, axis=-1):
        return sm.smooth_max(x, 1.0 / scale, axis)

    d = dg.diagnose(temperature_smooth_max, "smoothing.smooth_max", ("quick", "full"))
    assert [m.convention.label for m in d.matches] == ["scale divides"]
    # an alternative the reference does not accept is skipped, not matched
    d = dg.diagnose(temperature_smooth_max, "smoothing.smooth_max", "quick",
                    conventions=[{"temperature": 2.0}])
    assert d.matches == [] and d.results[0].skipped and "no registered convention" in d.lines()[0]
    monkeypatch.setitem(dg.CONVENTIONS, "smoothing.smooth_max", [])
    dg.register_conventions("smoothing.smooth_max", {"scale": 2.0})
    assert [c.label for c in dg.conventions_for("smoothing.smooth_max")] == ["scale=2"]


def test_diagnosis_of_a_passing_candidate_has_nothing_to_say():
    d = dg.diagnose(sm.smooth_max, "smoothing.smooth_max")
    assert d.failing == [] and d.lines() == ["diagnosis: no failing value case to diagnose"]


def test_every_registered_convention_targets_a_known_parameter_or_ref():
    # a typo in a convention of a landed op would make it silently "not applicable"
    import inspect

    for op, alts in dg.CONVENTIONS.items():
        if op not in registry.all_ops():
            continue
        spec = registry.get_op(op)
        for alt in alts:
            params = inspect.signature(alt.reference(spec)).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue  # a registry wrapper that forwards keywords
            assert set(alt.params) <= set(params), (op, alt.label)


# --- pytest helpers -----------------------------------------------------------------------

def test_case_params_ids_and_xfail_names():
    params = case_params("smoothing.smooth_max", "edge", xfail={"n1": "why"})
    assert [p.id for p in params] == ["extreme-1e4", "large-K-1e3", "n1", "neginf-entries"]
    assert [bool(p.marks) for p in params] == [False, False, True, False]
    with pytest.raises(ValueError, match="does not have"):
        case_params("smoothing.smooth_max", "edge", xfail={"no-such-case": "why"})


def test_check_case_raises_with_report_and_diagnosis():
    case = registry.cases("smoothing.soft_argmax", "quick")[0]
    with pytest.raises(AssertionError) as info:
        check_case(one_based_soft_argmax, case)
    text = str(info.value)
    assert text.splitlines()[0].startswith("smoothing.soft_argmax[post-x-K1] vs")
    assert "matches the oracle called with base=1" in text
    assert check_case(sm.soft_argmax, case).passed


test_smooth_min_conformance = conformance_test(sm.smooth_min, "smoothing.smooth_min", "all",
                                               grads="autograd")


def test_marker_plugin_end_to_end(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import numpy as np
        import pytest
        from kexue_ref.testing.pytest_plugin import check_case

        def unshifted(x, scale=1.0, axis=-1):
            with np.errstate(all="ignore"):
                return np.log(np.sum(np.exp(scale * x), axis=axis)) / scale

        @pytest.mark.kexue_ref("smoothing.smooth_max", tiers=("quick", "edge"))
        def test_unshifted(kexue_case):
            check_case(unshifted, kexue_case)
        """))
    # "-p no:kexue_ref" keeps an installed pytest11 entry point from registering it a second time
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:kexue_ref",
                           "-p", "kexue_ref.testing.pytest_plugin", "-q", "-p", "no:cacheprovider",
                           "test_user.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert "2 failed, 4 passed" in out, out
    assert "test_unshifted[extreme-1e4]" in out and "Mismatched elements: 2 / 2 (100.0%)" in out
    # the case's repr is its id, not a dump of its op spec and arrays; no library frames
    assert "kexue_case = <Case smoothing.smooth_max[extreme-1e4]>" in out
    assert "def check_case" not in out and "_check_case(" not in out


# --- the command line ---------------------------------------------------------------------

@pytest.fixture
def candidates(tmp_path, monkeypatch):
    (tmp_path / "cands.py").write_text(textwrap.dedent("""
        import numpy as np
        from kexue_ref import smoothing as sm

        def soft_argmax_1(x, scale=1.0, axis=-1, base=0):
            return sm.soft_argmax(x, scale, axis, base=1)

        def smooth_max(x, scale=1.0, axis=-1):
            return sm.smooth_max(x, scale, axis)

        not_callable = 3
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_pass_and_fail_exit_codes(candidates, capsys):
    assert main(["check", "cands:smooth_max", "--op", "smoothing.smooth_max", "--grads",
                 "--cases", "quick,edge"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("smoothing.smooth_max: 6 passed, 0 failed")
    assert main(["check", "cands.py:soft_argmax_1", "--op", "smoothing.soft_argmax"]) == 1
    out = capsys.readouterr().out
    assert "FAIL smoothing.soft_argmax[post-x-K1] [quick]" in out
    assert "note: diagnosis: the candidate matches the oracle called with base=1" in out


def test_cli_json_is_strict_json(candidates, capsys):
    assert main(["check", "cands:soft_argmax_1", "--op", "smoothing.soft_argmax", "--json"]) == 1
    data = json.loads(capsys.readouterr().out,
                      parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["passed"] is False and data["diagnosis"] == ["base=1"]
    assert data["results"][0]["case_id"] == "smoothing.soft_argmax[post-x-K1]"
    assert data["results"][0]["comparisons"][0]["worst_index"] == []


@pytest.mark.parametrize("argv, message", [
    (["cands:nope", "--op", "smoothing.smooth_max"], "has no attribute 'nope'"),
    (["cands:not_callable", "--op", "smoothing.smooth_max"], "is not callable"),
    (["cands", "--op", "smoothing.smooth_max"], "must be PACKAGE.MODULE:FUNCTION"),
    (["no_such_module:f", "--op", "smoothing.smooth_max"], "cannot import"),
    (["cands:smooth_max", "--op", "smoothing.smooth_maxx"], "no op named"),
    (["cands:smooth_max", "--op", "smoothing.smooth_max", "--cases", "quik"], "--cases must be"),
    (["cands:smooth_max", "--op", "smoothing.smooth_max", "--dtype", "bfloat16"], "needs --framework"),
])
def test_cli_usage_errors_exit_2(candidates, capsys, argv, message):
    assert main(["check", *argv]) == 2
    assert message in capsys.readouterr().err
