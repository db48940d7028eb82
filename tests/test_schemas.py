"""The published JSON Schemas (``kexue_ref/schemas``) accept what kexue_ref writes and reject
what it must not: a freshly generated manifest (with and without certificates), the report
of ``kexue-ref check --json`` for passing and failing candidates, and hand-broken copies."""
import copy
import json
import sys
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval

jsonschema = pytest.importorskip("jsonschema")

from kexue_ref import schemas, tables  # noqa: E402
from kexue_ref.cli import main  # noqa: E402

HERE = Path(__file__).resolve()


# --- candidates for `kexue-ref check` (loaded from this file as path.py:function) -------------

def softmax_ok(x, axis=-1):
    """The shifted softmax in autograd.numpy, with the oracle's input checks (passes every case)."""
    v = np.asarray(getval(x))
    if v.ndim == 0 or not -v.ndim <= axis < v.ndim or v.shape[axis] == 0:
        raise ValueError("bad axis or empty axis")
    if np.any(np.isnan(v)) or np.any(np.isposinf(v)):
        raise ValueError("NaN or +inf input")
    m = np.max(v, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # a constant shift: no gradient through it
    e = anp.exp(x - m)
    s = anp.sum(e, axis=axis, keepdims=True)
    return e / anp.where(s > 0, s, 1.0)  # an all -inf slice: all 0, as the oracle (D4)


def softmax_unshifted(x, axis=-1):
    """exp(x) / Σ exp(x) without the max shift: inf/inf = NaN at x ~ 1e4; never raises."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(np.asarray(x))
        return e / np.sum(e, axis=axis, keepdims=True)


def softmax_untraceable(x, axis=-1):
    """Right values in plain NumPy, so autograd cannot trace it: the VJP raises."""
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_float32(x, axis=-1):
    """The right values returned in float32 for a float64 check: fails the dtype rule only."""
    return softmax_untraceable(x, axis).astype(np.float32)


def prf_two_outputs(*args, **params):
    """dgcnn.set_prf without its third output."""
    from kexue_ref import registry
    return tuple(registry.get_op("dgcnn.set_prf").ref(*args, **params))[:2]


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    tables.generate(root=root, only="smoothing.*", quiet=True)
    return json.loads((root / tables.MANIFEST).read_text(encoding="utf-8"))


def _report(argv, capsys, status):
    assert main(["check", *argv]) == status
    return json.loads(capsys.readouterr().out,
                      parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


@pytest.fixture
def failing_report(capsys):
    return _report([f"{HERE}:softmax_unshifted", "--op", "numerics.softmax", "--cases", "all",
                    "--json"], capsys, 1)


def _errors(instance, name):
    validator = jsonschema.Draft202012Validator(schemas.load(name))
    return list(validator.iter_errors(instance))


def _keywords(errors):
    """The schema keywords behind a list of errors (``oneOf``/``anyOf`` branches included)."""
    out = set()
    for e in errors:
        out.add(e.validator)
        out |= _keywords(e.context)
    return out


def _first_file(manifest):
    rel = next(iter(manifest["files"]))
    return rel, manifest["files"][rel]


def _float_member(entry, kind):
    return next(k for k, m in entry["members"].items() if m["kind"] == kind and "scale" in m)


# --- the schemas themselves ----------------------------------------------------------------------

@pytest.mark.parametrize("name", schemas.NAMES)
def test_schema_files_are_valid_draft_2020_12_schemas(name):
    schema = schemas.load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_load_and_validate_refuse_unknown_names():
    with pytest.raises(ValueError, match="no schema named 'manifesto'"):
        schemas.load("manifesto")
    with pytest.raises(ValueError, match="known: manifest, check_report"):
        schemas.validate({}, "report")


def test_validate_without_jsonschema_names_the_test_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` now fails
    with pytest.raises(ImportError, match=r"`test` extra.*kexue-ref\[test\]"):
        schemas.validate({}, "manifest")


def test_schema_format_version_is_the_library_s():
    import kexue_ref
    assert schemas.load("manifest")["properties"]["format_version"]["const"] == \
        kexue_ref.TABLE_FORMAT_VERSION


# --- the manifest ------------------------------------------------------------------------------

def test_generated_manifest_validates(manifest):
    assert manifest["files"] and all(p.startswith("smoothing/") for p in manifest["files"])
    schemas.validate(manifest, "manifest")


def test_manifest_with_certificates_validates(manifest):
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    out, grad = _float_member(entry, "output"), _float_member(entry, "grad")
    entry["members"][out]["certificate"] = {
        "max_ulps": 0.5, "max_eps_scale": 0.25, "worst": [1],
        "bound": {"ulps": 2.0, "eps_scale": 1.0},
        "passed": True, "method": "mpmath at 60 digits (agrees with 30 digits to 59 digits)",
        "dps": 60}
    entry["members"][grad]["certificate"] = {
        "max_ulps": "inf", "max_eps_scale": "nan", "worst": None,
        "bound": {"ulps": 8.0, "eps_scale": 4.0, "reason": "a cancellation in the post's formula"},
        "passed": False, "method": "central differences at 60 digits (estimated error 1e-40)",
        "dps": 60, "message": "truth shape (2,) != stored (3,)"}
    _, other = list(m["files"].items())[-1]
    out2 = _float_member(other, "output")
    other["members"][out2]["certificate"] = {"exact": True, "passed": True,
                                             "method": "exact (integers)"}
    schemas.validate(m, "manifest")
    # the certificate survives a round trip through the file format
    schemas.validate(json.loads(json.dumps(m)), "manifest")


def test_certificates_as_the_certifier_writes_them_validate(manifest):
    import math
    from kexue_ref.certify import Certificate
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    certs = {
        _float_member(entry, "output"): Certificate(
            member="output.out", passed=True, max_ulps=0.49999, max_eps_scale=1e-3, worst=(0,),
            method="mpmath at 60 digits", dps=60),
        _float_member(entry, "grad"): Certificate(
            member="grad.x", passed=False, max_ulps=math.inf, max_eps_scale=math.nan, worst=None,
            bound_ulps=4.0, bound_eps_scale=2.0, reason="cancellation", method="differences",
            dps=60, message="truth shape (2,) != stored (3,)"),
    }
    for key, cert in certs.items():
        entry["members"][key]["certificate"] = cert.as_dict()
    assert entry["members"][key]["certificate"]["max_ulps"] == "inf"
    schemas.validate(json.loads(json.dumps(m)), "manifest")
    exact = Certificate(member="output.out", passed=False, exact=True, method="exact (integers)",
                        message="1 entries differ, first at (0,)")
    entry["members"][_float_member(entry, "output")]["certificate"] = exact.as_dict()
    schemas.validate(m, "manifest")


def test_members_of_the_coming_jvp_extension_validate(manifest):
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    entry["members"]["tangent.x"] = {"kind": "tangent", "shape": [3], "dtype": "<f8", "scale": 1.0,
                                     "verify_atol": 1e-13, "scale_reason": "data"}
    entry["members"]["jvp.out"] = {"kind": "jvp", "shape": [], "dtype": "<f8", "scale": 2.0,
                                   "verify_atol": 2e-13, "scale_reason": "its largest |entry|"}
    entry["members"]["hvp.x"] = {"kind": "hvp", "shape": [3], "dtype": "<f8", "scale": 2.0,
                                 "verify_atol": 2e-13, "scale_reason": "its largest |entry|",
                                 "certificate": {"exact": True, "passed": True, "method": "exact"}}
    schemas.validate(m, "manifest")


def _break(name, keyword, change):
    """A named mutation of a manifest, ``change(manifest, entry, input_member_key)``, and the
    schema keyword that must catch it."""
    return pytest.param(keyword, change, id=name)


def _set(d, key, value):
    d[key] = value


BAD_MANIFESTS = [
    _break("no-sha256", "required", lambda m, e, k: e.pop("sha256")),
    _break("sha256-uppercase", "pattern", lambda m, e, k: _set(e, "sha256", e["sha256"].upper())),
    _break("sha256-short", "pattern", lambda m, e, k: _set(e, "sha256", e["sha256"][:63])),
    _break("format-version-1", "const", lambda m, e, k: _set(m, "format_version", 1)),
    _break("no-format-version", "required", lambda m, e, k: m.pop("format_version")),
    _break("unknown-tier", "enum", lambda m, e, k: _set(e, "tier", "slow")),
    _break("error-tier-has-no-table", "enum", lambda m, e, k: _set(e, "tier", "error")),
    _break("extra-header-field", "additionalProperties",
           lambda m, e, k: _set(m, "generated_at", "today")),
    _break("extra-file-field", "additionalProperties", lambda m, e, k: _set(e, "arrays", {})),
    _break("extra-member-field", "additionalProperties",
           lambda m, e, k: _set(e["members"][k], "min", 0.0)),
    _break("unknown-member-kind", "pattern",
           lambda m, e, k: _set(e["members"], "weight.x", dict(e["members"][k], kind="weight"))),
    _break("kind-disagrees-with-name", "const",
           lambda m, e, k: _set(e["members"][k], "kind", "grad")),
    _break("bad-member-name", "pattern",
           lambda m, e, k: _set(e["members"], "input.1x", e["members"][k])),
    _break("bad-dtype", "pattern", lambda m, e, k: _set(e["members"][k], "dtype", "float64")),
    _break("negative-shape", "minimum", lambda m, e, k: _set(e["members"][k], "shape", [-1])),
    _break("float-member-without-scale", "required", lambda m, e, k: e["members"][k].pop("scale")),
    _break("bad-file-path", "pattern", lambda m, e, k: _set(m["files"], "smoothing/x.npy", e)),
    _break("seed-not-an-integer", "type", lambda m, e, k: _set(e, "seed", "42")),
    _break("tolerances-nested-like-the-header", "additionalProperties",
           lambda m, e, k: _set(e, "tolerances", copy.deepcopy(m["tolerances"]))),
    _break("certificate-on-an-input", "not", lambda m, e, k: _set(
        e["members"][k], "certificate", {"exact": True, "passed": True, "method": "exact"})),
]


@pytest.mark.parametrize("keyword, change", BAD_MANIFESTS)
def test_manifest_schema_rejects(manifest, keyword, change):
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    key = next(k for k, v in entry["members"].items() if v["kind"] == "input" and "scale" in v)
    change(m, entry, key)
    assert keyword in _keywords(_errors(m, "manifest"))
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(m, "manifest")


def test_non_float_member_must_not_carry_a_scale(manifest):
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    entry["members"]["param.flag"] = {"kind": "param", "shape": [], "dtype": "|b1"}
    assert not _errors(m, "manifest")
    entry["members"]["param.flag"]["scale"] = 1.0
    assert _errors(m, "manifest")


@pytest.mark.parametrize("cert", [
    {"exact": True, "passed": "yes", "method": "exact (integers)"},
    {"exact": False, "passed": True, "method": "exact (integers)"},
    {"exact": True, "passed": True, "method": "exact (integers)", "dps": 50},
    {"max_ulps": -1.0, "max_eps_scale": 0.0, "worst": [0], "bound": {"ulps": 2.0, "eps_scale": 1.0},
     "passed": True, "method": "m", "dps": 50},
    {"max_ulps": "Infinity", "max_eps_scale": 0.0, "worst": [0],
     "bound": {"ulps": 2.0, "eps_scale": 1.0}, "passed": True, "method": "m", "dps": 50},
    {"max_ulps": 0.0, "max_eps_scale": 0.0, "worst": [0], "bound": {"ulps": 2.0},
     "passed": True, "method": "m", "dps": 50},
    {"max_ulps": 0.0, "max_eps_scale": 0.0, "worst": [0], "bound": {"ulps": 2.0, "eps_scale": 1.0},
     "passed": True, "method": "m"},
], ids=["exact-passed-string", "exact-false", "exact-with-dps", "negative-ulps", "Infinity-string",
        "bound-without-eps-scale", "no-dps"])
def test_manifest_schema_rejects_bad_certificates(manifest, cert):
    m = copy.deepcopy(manifest)
    _, entry = _first_file(m)
    entry["members"][_float_member(entry, "output")]["certificate"] = cert
    assert _errors(m, "manifest")


# --- the check report ----------------------------------------------------------------------------

def test_passing_check_report_validates(capsys):
    import kexue_ref
    data = _report([f"{HERE}:softmax_ok", "--op", "numerics.softmax", "--cases", "all", "--grads",
                    "--json"], capsys, 0)
    assert data["passed"] is True and {r["tier"] for r in data["results"]} == \
        {"quick", "full", "edge", "error"}
    # error cases are refusals, counted apart from the matches
    assert data["counts"]["refused"] == sum(r["tier"] == "error" for r in data["results"]) > 0
    assert data["version"] == kexue_ref.__version__ and data["format_version"] == 2
    assert any(c["what"].startswith("grad ") for r in data["results"] for c in r["comparisons"])
    schemas.validate(data, "check_report")


def test_failing_check_report_validates(failing_report):
    data = failing_report
    assert data["passed"] is False
    comps = [c for r in data["results"] for c in r["comparisons"]]
    assert "inf" in {c["max_abs"] for c in comps}  # NaN from inf/inf, written as a string
    assert any(r["error"].startswith("returned without raising") for r in data["results"])
    schemas.validate(data, "check_report")


def test_report_of_quirks_xfails_and_result_mismatches_validates(capsys):
    # a quirk case run, an xfail, an xpass, a dtype failure and a wrong number of outputs
    data = _report([f"{HERE}:softmax_unshifted", "--op", "numerics.masked_softmax", "--quirks",
                    "--xfail", "B2-T5-fill-1e9", "--json"], capsys, 1)
    assert data["quirks"] is True and {"xfailed", "xpassed"} & {r["status"] for r in data["results"]}
    assert any(r["quirk"] for r in data["results"])
    schemas.validate(data, "check_report")
    data = _report([f"{HERE}:softmax_float32", "--op", "numerics.softmax", "--json"], capsys, 1)
    assert any(c["dtype_ok"] is False for r in data["results"] for c in r["comparisons"])
    schemas.validate(data, "check_report")
    data = _report([f"{HERE}:prf_two_outputs", "--op", "dgcnn.set_prf", "--json"], capsys, 1)
    assert {c["what"] for r in data["results"] for c in r["comparisons"]} == {"result"}
    schemas.validate(data, "check_report")


def test_report_of_a_raising_vjp_and_a_non_finite_k_validates(capsys):
    data = _report([f"{HERE}:softmax_untraceable", "--op", "numerics.softmax", "--grads",
                    "--k", "inf", "--no-diagnose", "--json"], capsys, 1)
    raised = [c for r in data["results"] for c in r["comparisons"] if c["what"] == "grads"]
    assert raised and raised[0]["worst_index"] is None and data["k"] == "inf"
    schemas.validate(data, "check_report")


def _rset(path, value):
    def change(d):
        *head, last = path
        for p in head:
            d = d[p]
        d[last] = value
    return change


@pytest.mark.parametrize("change", [
    _rset(["passed"], "false"),
    _rset(["passed"], 0),
    lambda d: d.pop("summary"),
    _rset(["summary"], "all good"),
    _rset(["tiers"], ["slow"]),
    _rset(["framework"], "tensorflow"),
    _rset(["rule"], "absolute"),
    _rset(["k"], "Infinity"),
    _rset(["exit_status"], 1),
    _rset(["results", 0, "tier"], "slow"),
    _rset(["results", 0, "passed"], "true"),
    _rset(["results", 0, "case_id"], "softmax"),
    lambda d: d["results"][0].pop("error"),
    _rset(["results", 0, "extra"], 1),
    _rset(["results", 0, "comparisons", 0, "n_bad"], -1),
    _rset(["results", 0, "comparisons", 0, "worst_index"], "(0,)"),
    _rset(["results", 0, "comparisons", 0, "max_abs"], None),
    _rset(["results", 0, "comparisons", 0, "extra"], 1),
    _rset(["results", 0, "comparisons", 0, "what"], "out"),
    _rset(["format_version"], 1),
    lambda d: d.pop("version"),
    _rset(["counts", "refused"], -1),
    lambda d: d["counts"].pop("xfailed"),
    _rset(["summary"], "3 passed, 1 refused"),
    _rset(["results", 0, "status"], "skipped"),
    lambda d: d["results"][0].update(status="refused", passed=False),
    _rset(["results", 0, "comparisons", 0, "dtype_ok"], "no"),
    _rset(["results", 0, "comparisons", 0, "where"], "rows"),
    _rset(["skipped"], ["softmax"]),
], ids=["passed-string", "passed-int", "no-summary", "bad-summary", "unknown-tier",
        "unknown-framework", "unknown-rule", "k-Infinity", "extra-field", "case-unknown-tier",
        "case-passed-string", "bad-case-id", "case-without-error", "case-extra-field",
        "negative-n-bad", "worst-index-string", "max-abs-null", "comparison-extra-field",
        "bad-what", "old-format", "no-version", "negative-count", "count-missing",
        "summary-without-failed", "unknown-status", "status-contradicts-passed",
        "dtype-ok-string", "where-string", "skipped-not-an-id"])
def test_check_report_schema_rejects(failing_report, change):
    data = copy.deepcopy(failing_report)
    assert data["results"][0]["comparisons"]
    change(data)
    assert _errors(data, "check_report")
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(data, "check_report")
