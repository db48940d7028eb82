"""The pass rules of ``kexue_ref.testing.check``, judged: wrong candidates of every kind must
be rejected, with a report that says what is wrong, and a faithful port must pass the
default run.

Each wrong candidate is the correct reference with one defect whose size follows from the
math of the defect (a shift by δ is off by exactly δ; a NaN is a NaN), so the expected
verdict never comes from the code under test. The faithful port is an independent
``scaled_dot_product_attention``-style implementation of the post's local, atrous and sparse
attention (https://kexue.fm/archives/6853): dense scores, a boolean mask built here from the
post's definitions (not with ``kexue_ref._masks``), a softmax over the allowed keys.
"""
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval

from kexue_ref import registry
from kexue_ref import smoothing as sm
from kexue_ref.cli import main
from kexue_ref.testing import assert_matches, check, compare

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]


# --- an independent SDPA-style port of the post's three patterns ------------------------------

def _allowed(T, pattern, causal, mask):
    """The (B|1, 1, T, T) boolean mask of a pattern, from the post's definitions.

    local W: |i − j| ≤ W; atrous R: (i − j) mod R = 0; sparse R: the union of both with
    W = R; causal: j ≤ i; ``mask`` (B, T) removes padded keys.
    """
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    kind, n = pattern
    if kind == "local":
        A = np.abs(i - j) <= n
    elif kind == "atrous":
        A = (i - j) % n == 0
    else:
        A = (np.abs(i - j) <= n) | ((i - j) % n == 0)
    if causal:
        A = A & (j <= i)
    A = A[None, None]
    if mask is not None:
        A = A & np.asarray(mask, dtype=bool)[:, None, None, :]
    return A


def _sdpa(q, k, v, A, mask):
    """softmax over the allowed keys of q·kᵀ/√D, times v; a row with no allowed key gives 0,
    and the rows of padded queries are 0 (as torch's scaled_dot_product_attention with a
    boolean attn_mask, plus the post's zeroed padding)."""
    D = getval(q).shape[-1]
    S = anp.matmul(q, anp.swapaxes(k, -1, -2)) / np.sqrt(D)
    # a constant shift per row: the largest allowed score (0 for a row with none)
    m = np.max(np.where(A, getval(S), -np.inf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    # disallowed scores are set to the shift before exp, so no inf ever enters a gradient
    e = anp.where(A, anp.exp(anp.where(A, S, m) - m), 0.0)
    s = anp.sum(e, axis=-1, keepdims=True)
    out = anp.matmul(e / anp.where(s > 0, s, 1.0), v)
    if mask is not None:
        out = anp.where(np.asarray(mask, dtype=bool)[:, None, :, None], out, 0.0)
    return out


def sdpa_local_attention(q, k, v, neighbors, *, causal=False, mask=None):
    """Local attention, SDPA style: every key within W of the query."""
    return _sdpa(q, k, v, _allowed(getval(q).shape[2], ("local", neighbors), causal, mask), mask)


def sdpa_atrous_attention(q, k, v, rate, *, causal=False, mask=None):
    """Atrous attention, SDPA style: the keys at multiples of R from the query."""
    return _sdpa(q, k, v, _allowed(getval(q).shape[2], ("atrous", rate), causal, mask), mask)


def sdpa_sparse_attention(q, k, v, rate, *, causal=False, mask=None):
    """The post's sparse attention, SDPA style: local within R, atrous beyond."""
    return _sdpa(q, k, v, _allowed(getval(q).shape[2], ("sparse", rate), causal, mask), mask)


def sdpa_local_off_by_one(q, k, v, neighbors, *, causal=False, mask=None):
    """A classic port bug: the window is W + 1 wide on each side."""
    return sdpa_local_attention(q, k, v, neighbors + 1, causal=causal, mask=mask)


PORTS = {"local_attention": sdpa_local_attention, "atrous_attention": sdpa_atrous_attention,
         "sparse_attention": sdpa_sparse_attention}


@pytest.mark.parametrize("op", sorted(PORTS))
def test_a_faithful_sdpa_port_passes_the_default_run(op):
    # the default: quick tier, the post's semantics (compat='keras' cases left out and named)
    report = check(PORTS[op], f"sparse_attention.{op}", grads="autograd")
    assert report.passed, report
    assert report.skipped and all("keras" in i for i in report.skipped)
    assert any("quirk case(s) not run (compat='keras')" in n for n in report.notes)
    # and every tier but the error one (the port does not validate its input)
    report = check(PORTS[op], f"sparse_attention.{op}", ("quick", "full", "edge"), grads="autograd")
    assert report.passed, report


@pytest.mark.parametrize("op", sorted(PORTS))
def test_the_sdpa_port_fails_exactly_the_quirk_cases_when_asked(op):
    report = check(PORTS[op], f"sparse_attention.{op}", ("quick", "full", "edge"), quirks=True)
    quirky = {c.id for c in registry.cases(f"sparse_attention.{op}", ("quick", "full", "edge"))
              if c.quirk}
    assert {r.case_id for r in report.failures} == quirky
    # each quirk case run is named as one in the report
    text = str(report)
    for case_id in quirky:
        assert f"{case_id} [" in text and "(quirk compat='keras')" in text


def test_the_sdpa_port_passes_the_command_line_by_default(capsys):
    assert main(["check", f"{HERE}:sdpa_local_attention", "--op",
                 "sparse_attention.local_attention", "--grads"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("sparse_attention.local_attention: 3 passed, 0 failed")
    assert "quirk case(s) not run" in out


def test_an_off_by_one_window_fails_every_windowed_case_and_is_localised():
    report = check(sdpa_local_off_by_one, "sparse_attention.local_attention")
    assert not report.passed and len(report.failures) == 3
    first = report.failures[0].comparisons[0]
    assert first.what == "value out" and first.n_bad > 0
    text = str(report)
    try:
        import kexue_ref.testing.localise  # noqa: F401
    except ImportError:
        pytest.skip("no localisation module")
    # the localisation sits under the failing case
    assert first.where and "    where: " in text


# --- wrong candidates of each kind ------------------------------------------------------------

def shifted_smooth_max(x, scale=1.0, axis=-1):
    """The right function plus 1e-6: off by exactly 1e-6 everywhere."""
    return sm.smooth_max(x, scale, axis) + 1e-6


def test_a_wrong_value_is_reported_torch_testing_style():
    report = check(shifted_smooth_max, "smoothing.smooth_max")
    (r, _) = report.failures
    (c,) = r.comparisons
    assert c.n_bad == c.size == 1 and c.max_abs == pytest.approx(1e-6, rel=1e-6)
    lines = r.lines()
    # ≤ 4 lines: the mismatch count, the greatest absolute and relative differences
    assert 2 <= len(lines) <= 4
    assert lines[0].endswith("value out: Mismatched elements: 1 / 1 (100.0%)")
    assert lines[1].strip().startswith("Greatest absolute difference: 1e-06 at index ()")
    assert lines[1].endswith("(up to 1e-13 allowed)")
    assert lines[2].strip().startswith("Greatest relative difference:")
    assert lines[2].endswith("(up to 1e-12 allowed)")


def upcast_smooth_max(x, scale=1.0, axis=-1):
    """Right values, computed and returned in float64 whatever the input dtype."""
    return sm.smooth_max(np.asarray(x, dtype=np.float64), scale, axis)


def test_the_output_dtype_must_be_the_requested_one():
    report = check(upcast_smooth_max, "smoothing.smooth_max", dtype="float32")
    assert not report.passed
    c = report.failures[0].comparisons[0]
    # the values are within float32's tolerance: only the dtype fails
    assert c.n_bad == 0 and not c.dtype_ok and c.got_dtype == "float64" and c.dtype == "float32"
    assert "dtype float64, expected float32" in report.failures[0].lines()[0]
    assert check(upcast_smooth_max, "smoothing.smooth_max", dtype="float32", check_dtype=False).passed
    assert check(upcast_smooth_max, "smoothing.smooth_max").passed  # float64 asked, float64 given


def test_a_wrong_shape_is_reported():
    def keeps_dims(x, scale=1.0, axis=-1):
        return sm.smooth_max(x, scale, axis)[..., None]
    c = check(keeps_dims, "smoothing.smooth_max").failures[0].comparisons[0]
    assert not c.passed and c.message == "shape (1,) != expected ()"


def _multi_output_op():
    # the first registry op with several outputs and a float input
    for spec in registry.all_ops().values():
        if len(spec.outputs) >= 3:
            case = registry.cases(spec, "quick")[0]
            return spec, case
    pytest.skip("no op with three outputs")


def test_the_wrong_number_of_outputs_is_the_candidates_mismatch_not_an_exception():
    spec, case = _multi_output_op()

    def two_outputs(*args, **params):
        return tuple(spec.ref(*args, **params))[:2]

    def one_array(*args, **params):
        return np.asarray(spec.ref(*args, **params)[0])

    for cand, words in ((two_outputs, f"returned 2 outputs; {spec.name} returns {len(spec.outputs)}"),
                        (one_array, "returned a ndarray")):
        r = check(cand, spec, only=case.name, diagnose=False).results[0]
        assert not r.passed and r.error == ""            # not "candidate raised ValueError"
        (c,) = r.comparisons
        assert c.what == "result" and words in c.message
        assert "raised" not in " ".join(r.lines())


def test_a_wrong_number_of_gradients_is_a_mismatch_too():
    def two_grads(u, x, scale=1.0, axis=-1):
        g = np.expand_dims(u, axis) * sm.soft_onehot(x, scale, axis)
        return g, g
    r = check(sm.smooth_max, "smoothing.smooth_max", grads=two_grads).results[0]
    (c,) = [c for c in r.comparisons if c.what == "grads"]
    assert "grads returned 2 arrays" in c.message and "raised" not in c.message


def test_complex_values_are_compared_in_full():
    e = np.array([1 + 2j, 3 - 1j])
    # the same real parts, a wrong imaginary part: |Δ| = 0.5
    c = compare(np.array([1 + 2.5j, 3 - 1j]), e, 1e-12, 1e-13)
    assert not c.passed and c.n_bad == 1 and c.worst_index == (0,) and c.max_abs == 0.5
    assert compare(e.copy(), e, 1e-12, 1e-13).passed
    # a real result for a complex oracle drops the imaginary part: |Δ| = |2i| = 2 at (0,)
    c = compare(e.real, e, 1e-12, 1e-13)
    assert c.n_bad == 2 and c.max_abs == 2.0

    def imaginary(x, scale=1.0, axis=-1):
        return sm.smooth_max(x, scale, axis) + 1e-3j
    # a stray imaginary part fails on the values even without the dtype rule
    report = check(imaginary, "smoothing.smooth_max", check_dtype=False)
    c = report.failures[0].comparisons[0]
    assert c.n_bad == 1 and c.max_abs == pytest.approx(1e-3, rel=1e-9)


def test_the_nan_rule():
    e = np.array([1.0, np.nan, np.inf, -np.inf])
    # NaN passes only where the oracle is NaN; infinities must match in sign and place
    assert compare(np.array([1.0, np.nan, np.inf, -np.inf]), e, 1e-12, 0).passed
    c = compare(np.array([np.nan, np.nan, np.inf, -np.inf]), e, 1e-12, 0)
    assert c.n_bad == 1 and "NaN where the oracle is finite at 1 entries (first at (0,)" in c.message
    c = compare(np.array([1.0, 0.0, np.inf, -np.inf]), e, 1e-12, 0)
    assert c.n_bad == 1 and "the oracle is NaN at 1 entries" in c.message
    c = compare(np.array([1.0, np.nan, -np.inf, -np.inf]), e, 1e-12, 0)
    assert c.n_bad == 1 and c.worst_index == (2,)

    def nan_at_zero(x, scale=1.0, axis=-1):
        out = np.array(sm.smooth_max(x, scale, axis), dtype=float)
        out.flat[0] = np.nan
        return out
    report = check(nan_at_zero, "smoothing.smooth_max", "full")
    assert len(report.failures) == len(report.results)
    assert "NaN where the oracle is finite" in report.failures[0].comparisons[0].message


def test_error_cases_pass_only_when_the_candidate_refuses_the_bad_input():
    # the reference refuses every error case and runs the valid ones: all refusals counted
    report = check(sm.smooth_max, "smoothing.smooth_max", ("quick", "error"))
    n = report.counts()
    assert n["refused"] == len(registry.cases("smoothing.smooth_max", "error")) and n["failed"] == 0
    assert n["passed"] == len(registry.cases("smoothing.smooth_max", "quick"))
    assert report.summary() == f"{n['passed']} passed, {n['refused']} refused, 0 failed"
    refused = [r for r in report.results if r.status == "refused"]
    assert all(r.lines() == [f"PASS {r.case_id} [error] {r.error}"] for r in refused)
    assert all(r.error.startswith("refused: ValueError: ") for r in refused)

    def takes_nothing():
        return 0.0

    report = check(takes_nothing, "smoothing.smooth_max", "error")
    assert report.counts()["refused"] == 0 and len(report.failures) == len(report.results)
    assert "cannot be called with the case's arguments" in report.failures[0].error

    def raises_always(x, scale=1.0, axis=-1):
        raise ValueError("nope")

    report = check(raises_always, "smoothing.smooth_max", "error")
    assert report.counts()["refused"] == 0 and not report.passed
    assert "also raises on the valid case post-x-K1 (ValueError: nope)" in report.failures[0].error


def test_an_exception_on_a_valid_case_is_the_candidates_in_one_line():
    def raises(x, scale=1.0, axis=-1):
        raise RuntimeError("not\nimplemented")
    r = check(raises, "smoothing.smooth_max").results[0]
    assert r.error == "candidate raised RuntimeError: not implemented"
    assert r.lines() == ["FAIL smoothing.smooth_max[post-x-K1] [quick]: "
                         "candidate raised RuntimeError: not implemented"]


# --- selection: empty, quirks, only / skip / xfail ----------------------------------------------

def test_an_empty_selection_is_an_error():
    with pytest.raises(ValueError, match="only pattern 'nosuch' matches no case"):
        check(sm.smooth_max, "smoothing.smooth_max", only="nosuch")
    # only quirk cases selected, quirks not asked for: nothing to run, and the message says why
    with pytest.raises(ValueError, match=r"no case of .* quirk case\(s\) left out"):
        check(sdpa_local_attention, "sparse_attention.local_attention", only="keras-*")
    with pytest.raises(ValueError, match="matches no case"):
        check(sm.smooth_max, "smoothing.smooth_max", xfail=["typo"])


def test_quirk_cases_run_only_when_asked_and_are_named():
    op = "numerics.masked_softmax"
    from kexue_ref.numerics import masked_softmax
    default = check(masked_softmax, op)
    quirky = [c for c in registry.cases(op, "quick") if c.quirk]
    assert quirky and default.skipped == [c.id for c in quirky]
    assert all(r.case_id not in default.skipped for r in default.results)
    asked = check(masked_softmax, op, quirks=True)
    names = {r.case_id: r for r in asked.results}
    assert all(names[c.id].quirk == c.quirk for c in quirky)
    assert f"(quirk {quirky[0].quirk})" in str(asked)


def test_xfail_cases_do_not_fail_the_run_and_an_xpass_is_reported():
    def unshifted(x, scale=1.0, axis=-1):
        with np.errstate(all="ignore"):
            return np.log(np.sum(np.exp(scale * x), axis=axis)) / scale
    report = check(unshifted, "smoothing.smooth_max", "edge",
                   xfail={"extreme-1e4": "overflow", "large-*": "overflow", "n1": "why not"})
    assert report.passed
    n = report.counts()
    assert (n["xfailed"], n["xpassed"], n["failed"]) == (2, 1, 0)
    assert report.summary() == "1 passed, 0 failed, 2 xfailed, 1 xpassed"
    text = str(report)
    assert "XFAIL smoothing.smooth_max[extreme-1e4] [edge]: value out: Mismatched" in text
    assert "XPASS smoothing.smooth_max[n1] [edge]: passes although marked xfail (why not)" in text
    kept = check(unshifted, "smoothing.smooth_max", "edge", skip="*1e*")
    assert kept.passed and len(kept.results) == 2


# --- diagnosis everywhere -------------------------------------------------------------------------

def one_based_soft_argmax(x, scale=1.0, axis=-1, base=0):
    """Counts positions from 1 whatever ``base`` says."""
    return sm.soft_argmax(x, scale, axis, base=1)


def test_check_and_assert_matches_diagnose_on_failure():
    report = check(one_based_soft_argmax, "smoothing.soft_argmax")
    assert report.diagnosis == ["base=1"]
    assert any("matches the oracle called with base=1" in n for n in report.notes)
    assert check(one_based_soft_argmax, "smoothing.soft_argmax", diagnose=False).notes == []
    with pytest.raises(AssertionError, match="matches the oracle called with base=1"):
        assert_matches(one_based_soft_argmax, "smoothing.soft_argmax")
    # a passing candidate costs no diagnosis
    assert check(sm.soft_argmax, "smoothing.soft_argmax").notes == []


# --- reports: one line per passing case, reprs and JSON -------------------------------------------

def test_passing_cases_take_one_line_and_reprs_stay_short():
    report = check(sm.smooth_max, "smoothing.smooth_max", "all")
    text = str(report)
    assert len(text.splitlines()) == len(report.results) + 2      # header, cases, summary
    from kexue_ref.testing.pytest_plugin import case_params
    (p, *_) = case_params("smoothing.smooth_max", "quick")
    assert repr(p.values[0]) == "<Case smoothing.smooth_max[post-x-K1]>"
    assert len(repr(report.results[0])) < 400


def test_the_json_report_carries_the_versions():
    import kexue_ref
    from kexue_ref.testing._check import REPORT_FORMAT_VERSION
    data = check(sm.smooth_max, "smoothing.smooth_max").to_dict()
    assert data["version"] == kexue_ref.__version__
    assert data["format_version"] == REPORT_FORMAT_VERSION == 2
    assert data["counts"]["passed"] == 2 and data["results"][0]["status"] == "passed"


# --- the command line: no traceback for a user error ----------------------------------------------

@pytest.fixture
def cands(tmp_path, monkeypatch):
    (tmp_path / "rules_cands.py").write_text(textwrap.dedent("""
        import numpy as np
        from kexue_ref import smoothing as sm

        def smooth_max(x, scale=1.0, axis=-1):
            return sm.smooth_max(x, scale, axis)

        def upcast(x, scale=1.0, axis=-1):
            return sm.smooth_max(np.asarray(x, dtype=np.float64), scale, axis)

        def unshifted(x, scale=1.0, axis=-1):
            with np.errstate(all="ignore"):
                return np.log(np.sum(np.exp(scale * x), axis=axis)) / scale
        """))
    (tmp_path / "rules_broken.py").write_text("raise RuntimeError('import-time failure')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["no.such.module:f", "--op", "smoothing.smooth_max"], "cannot import no"),
    (["rules_broken:f", "--op", "smoothing.smooth_max"], "importing rules_broken:f raised RuntimeError: import-time failure"),
    (["rules_cands:smooth_max", "--op", "nosuch.op"], "no op named 'nosuch.op'"),
    (["rules_cands:smooth_max", "--op", "smoothing.smooth_max", "--only", "nosuch"], "matches no case"),
    (["rules_cands:smooth_max", "--op", "smoothing.smooth_max", "--xfail", "@missing.txt"], "cannot read"),
    (["rules_cands:smooth_max", "--op", "sparse_attention.local_attention", "--only", "keras-*"],
     "quirk case(s) left out"),
])
def test_cli_user_errors_exit_2_with_one_line(cands, capsys, argv, message):
    assert main(["check", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_selection_flags_and_dtype_check(cands, capsys):
    (cands / "xf.txt").write_text("# overflows\nextreme-1e4\nlarge-K-*  # too\n")
    assert main(["check", "rules_cands:unshifted", "--op", "smoothing.smooth_max", "--cases", "edge",
                 "--xfail", "@xf.txt"]) == 0
    assert capsys.readouterr().out.strip().endswith("2 passed, 0 failed, 2 xfailed")
    assert main(["check", "rules_cands:unshifted", "--op", "smoothing.smooth_max", "--cases", "edge",
                 "--only", "n1,neginf-entries"]) == 0
    assert capsys.readouterr().out.strip().endswith("2 passed, 0 failed")
    assert main(["check", "rules_cands:unshifted", "--op", "smoothing.smooth_max", "--cases", "edge",
                 "--skip", "n1", "--skip", "neginf-entries"]) == 1
    capsys.readouterr()
    assert main(["check", "rules_cands:upcast", "--op", "smoothing.smooth_max", "--dtype", "float32"]) == 1
    assert "dtype float64, expected float32" in capsys.readouterr().out
    assert main(["check", "rules_cands:upcast", "--op", "smoothing.smooth_max", "--dtype", "float32",
                 "--no-dtype-check"]) == 0


def test_cli_device_cuda_on_a_cpu_only_torch_is_a_usage_error(cands, capsys, monkeypatch):
    # a stand-in for a CPU-only torch build: it knows the name "cuda" but cannot allocate there
    fake = types.ModuleType("torch")
    fake.__version__ = "0.0+cpu"
    fake.version = types.SimpleNamespace(cuda=None)
    fake.device = lambda d: types.SimpleNamespace(type=str(d).split(":")[0], name=str(d))

    def empty(*shape, device=None):
        if device.type != "cpu":
            raise AssertionError("Torch not compiled with CUDA enabled")
    fake.empty = empty
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert main(["check", "rules_cands:smooth_max", "--op", "smoothing.smooth_max", "--framework",
                 "torch", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kexue-ref check: torch cannot use device 'cuda' (torch 0.0+cpu, a build "
                          "without CUDA): Torch not compiled with CUDA enabled")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_cli_output_closed_early_is_one_line_without_traceback(cands, extra):
    proc = subprocess.Popen([sys.executable, "-m", "kexue_ref", "check", "rules_cands:unshifted",
                             "--op", "smoothing.smooth_max", "--cases", "all", *extra],
                            cwd=cands, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the report is written (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "output closed early (broken pipe); smoothing.smooth_max:" in err


def test_cli_json_has_versions_and_statuses(cands, capsys):
    assert main(["check", "rules_cands:smooth_max", "--op", "smoothing.smooth_max", "--cases",
                 "quick,error", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format_version"] == 2 and data["version"]
    assert {r["status"] for r in data["results"]} == {"passed", "refused"}
