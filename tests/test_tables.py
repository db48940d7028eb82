"""Reference tables: the committed files match the registry (drift guard), generation is
deterministic, loading needs no pickle, and verify names every kind of problem."""
import hashlib
import json
import shutil

import numpy as np
import pytest

from kexue_ref import TABLE_FORMAT_VERSION, registry, tables
from kexue_ref.testing import make_cotangents, reference_outputs

ONLY = "smoothing.soft_*"


def test_committed_tables_verify():
    """Every registry case has its table, regenerated values agree, no file is extra."""
    problems = tables.verify(quiet=True)
    lines = [line for kind in ("missing", "extra", "corrupted", "stale") for line in problems[kind]]
    assert not lines, "\n".join(lines[:30]) + "\n(run `kexue-ref tables generate` and commit)"
    assert problems["checked"] > 0


@pytest.fixture
def root(tmp_path):
    tables.generate(tmp_path, only=ONLY, quiet=True)
    return tmp_path


def test_generate_is_bit_for_bit(root, tmp_path_factory):
    other = tmp_path_factory.mktemp("again")
    tables.generate(other, only=ONLY, quiet=True)
    files = sorted(p.relative_to(root) for p in root.rglob("*.npz"))
    assert files
    for rel in files:
        assert (root / rel).read_bytes() == (other / rel).read_bytes(), rel


def test_manifest_fields_and_no_pickle(root):
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["format_version"] == TABLE_FORMAT_VERSION
    for key in ("library_version", "numpy_version", "tolerances", "cotangent_rule", "verify_rule",
                "scale_rule"):
        assert key in manifest
    # the installed autograd's version is recorded (it has no __version__ attribute)
    from importlib.metadata import version
    assert manifest["autograd_version"] == version("autograd") != "unknown"
    rel, entry = next(iter(manifest["files"].items()))
    for key in ("op", "case", "seed", "sha256", "members", "call", "tolerances", "params", "flags",
                "source"):
        assert key in entry
    data = (root / rel).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    with np.load(root / rel, allow_pickle=False) as z:
        assert {k.split(".")[0] for k in z.files} <= {"input", "param", "output", "cotangent", "grad"}
        # the file, the manifest's members and the call order all agree, in order
        assert list(z.files) == list(entry["members"])
        for k in z.files:
            assert list(z[k].shape) == entry["members"][k]["shape"]


def test_members_are_in_call_order(tmp_path):
    """Inputs in the op's positional order, outputs in return order (not alphabetical)."""
    tables.generate(tmp_path, only="on_lstm.cell_official", quiet=True)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    rel, entry = next(iter(manifest["files"].items()))
    spec = registry.get_op("on_lstm.cell_official")
    assert entry["call"]["inputs"] == list(spec.inputs) == ["x", "h", "c", "W_ih", "b_ih", "W_hh", "b_hh"]
    assert entry["call"]["outputs"] == ["h", "c", "f_master", "i_master"]
    with np.load(tmp_path / rel, allow_pickle=False) as z:
        names = list(z.files)
    inputs = [k.split(".", 1)[1] for k in names if k.startswith("input.")]
    outputs = [k.split(".", 1)[1] for k in names if k.startswith("output.")]
    grads = [k.split(".", 1)[1] for k in names if k.startswith("grad.")]
    assert inputs == list(spec.inputs) and outputs == list(spec.outputs) and grads == list(spec.diff)
    kinds = [k.split(".")[0] for k in names]
    order = ["input", "param", "output", "cotangent", "grad"]
    assert kinds == sorted(kinds, key=order.index)


def test_table_contents_follow_the_rules(root):
    """The stored cotangent is the seeded rule; stored outputs are the reference's."""
    case = next(c for c in registry.cases("smoothing.soft_argmax", "quick") if c.name == "post-x-K1-base1")
    t = tables.load(tables.case_path(case), root)
    outs = reference_outputs(case)
    np.testing.assert_array_equal(t["output.out"], outs[0])
    expected_u = np.random.default_rng([case.seed, 1]).standard_normal(np.shape(outs[0]))
    np.testing.assert_array_equal(t["cotangent.out"], expected_u)
    np.testing.assert_array_equal(t["cotangent.out"], make_cotangents(case, outs)[0])
    # the gradient of the soft argmax is the VJP: u · ∂/∂x Σ i p_i = u · p ⊙ (i - E[i])
    x, u = t["input.x"], float(t["cotangent.out"])
    p = np.exp(x) / np.exp(x).sum()
    i = np.arange(1, 6)
    np.testing.assert_allclose(t["grad.x"], u * p * (i - np.dot(i, p)), rtol=1e-13)


def test_verify_ok_then_flipped_byte_is_named(root):
    assert not any(tables.verify(root, only=ONLY, quiet=True)[k] for k in ("missing", "corrupted", "stale"))
    target = sorted(root.rglob("*.npz"))[3]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    problems = tables.verify(root, only=ONLY, quiet=True)
    rel = target.relative_to(root).as_posix()
    assert any(line.startswith(rel) for line in problems["corrupted"]), problems


def test_verify_names_stale_missing_and_extra(root):
    manifest_path = root / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    files = sorted(manifest["files"])
    # stale: a value changed and the hash updated to match (a table from other code)
    stale = files[0]
    arrays = tables.load(stale, root)
    arrays["output.out"] = arrays["output.out"] + 1e-6
    manifest["files"][stale]["sha256"] = tables.write_npz(root / stale, arrays)
    manifest_path.write_text(json.dumps(manifest))
    # missing: a file deleted
    missing = files[1]
    (root / missing).unlink()
    problems = tables.verify(root, only=ONLY, quiet=True)
    assert any(line.startswith(stale) and "output.out" in line for line in problems["stale"]), problems
    assert any(line.startswith(missing) for line in problems["missing"]), problems
    # extra: a file that no case produces (only reported by a full verify)
    shutil.copy(root / files[2], root / "smoothing" / "not_an_op__x.npz")
    full = tables.verify(root, quiet=True)
    assert any(line.startswith("smoothing/not_an_op__x.npz") for line in full["extra"])


def test_cli_verify_exit_codes(root, capsys):
    from kexue_ref.cli import main
    assert main(["tables", "verify", "--root", str(root), "--only", ONLY, "--quiet"]) == 0
    target = sorted(root.rglob("*.npz"))[0]
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    assert main(["tables", "verify", "--root", str(root), "--only", ONLY, "--quiet"]) == 1
    out = capsys.readouterr().out
    assert target.relative_to(root).as_posix() in out and "CORRUPTED" in out


def test_cli_list_and_show(root, capsys):
    from kexue_ref.cli import main
    assert main(["tables", "list", "--root", str(root)]) == 0
    assert "smoothing/soft_kmax__counterexample-k2.npz" in capsys.readouterr().out
    assert main(["tables", "show", "smoothing.soft_kmax[counterexample-k2]", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1.166863" in out and "input.x" in out


def test_only_pattern_must_match():
    with pytest.raises(ValueError, match="matches no op"):
        tables.generate("/nonexistent", only="no_such_topic.*", quiet=True)


# ---------------------------------------------------------------------------
# The verify rule: portable (rounding noise passes) and strict (1e-12 of the scale is caught)
# ---------------------------------------------------------------------------

EDGE_ONLY = "orthogonality.offdiag_penalty"


@pytest.fixture
def ortho_root(tmp_path):
    tables.generate(tmp_path, only=EDGE_ONLY, quiet=True)
    return tmp_path


def _rewrite(root, rel, arrays):
    """Write changed arrays and update the manifest's hash (a table from other code, not a bit flip)."""
    manifest_path = root / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][rel]["sha256"] = tables.write_npz(root / rel, arrays)
    manifest_path.write_text(json.dumps(manifest))
    return manifest["files"][rel]


def _nudge(arr, amount):
    """Move the entry of largest magnitude by ``amount`` (an absolute change)."""
    out = np.array(arr, dtype=np.float64, copy=True)
    flat = out.reshape(-1)
    flat[int(np.argmax(np.abs(flat)))] += amount
    return out


ORTHO_REL = "orthogonality/offdiag_penalty__orthogonal-unnormalised.npz"


def test_cancellation_noise_passes_on_any_machine(ortho_root):
    """The stored penalty of an orthogonal W is rounding noise (~1e-32) around a true value that
    is itself ~1e-32; another machine's noise is as large as the value. Replacing every computed
    member by a different noise of that size (here: ×3, and grad entries moved by 10 ulps of
    their terms) must still verify."""
    entry = json.loads((ortho_root / "MANIFEST.json").read_text())["files"][ORTHO_REL]
    out_meta = entry["members"]["output.out"]
    # the natural scale of this penalty is the size of its terms, far above its value
    arrays = tables.load(ORTHO_REL, ortho_root)
    assert abs(float(arrays["output.out"])) < 1e-28
    assert out_meta["scale"] > 1e6 * abs(float(arrays["output.out"]))
    assert "cancellation" in out_meta["scale_reason"]
    grad_scale = entry["members"]["grad.w"]["scale"]
    # the gradient 4·W·offdiag(WᵀW) at an orthogonal W is noise of size eps·|W|³ ~ 1e-15; its
    # terms are |W|³ ~ 1…30 for these column norms (0.5…2.2)
    assert np.abs(arrays["grad.w"]).max() < 1e-13 and 0.1 < grad_scale < 100
    arrays["output.out"] = arrays["output.out"] * 3.0
    arrays["grad.w"] = arrays["grad.w"] + 10 * np.finfo(float).eps * grad_scale * np.sign(arrays["input.w"])
    _rewrite(ortho_root, ORTHO_REL, arrays)
    problems = tables.verify(ortho_root, only=EDGE_ONLY, quiet=True)
    assert not problems["stale"], problems["stale"]


@pytest.mark.parametrize("member", ["input.w", "output.out", "cotangent.out", "grad.w"])
def test_a_change_of_1e12_of_the_scale_is_reported_in_every_member_kind(ortho_root, member):
    """Any member kind changed by 1e-12 × its natural scale (10× its verify tolerance) is STALE,
    and the report names the member."""
    rel = "orthogonality/offdiag_penalty__rows-M4-D6.npz"
    manifest = json.loads((ortho_root / "MANIFEST.json").read_text())
    scale = manifest["files"][rel]["members"][member]["scale"]
    arrays = tables.load(rel, ortho_root)
    arrays[member] = _nudge(arrays[member], 1e-12 * scale)
    _rewrite(ortho_root, rel, arrays)
    problems = tables.verify(ortho_root, only=EDGE_ONLY, quiet=True)
    hits = [line for line in problems["stale"] if line.startswith(rel)]
    assert hits and member in hits[0], problems["stale"]


def test_half_the_tolerance_passes(ortho_root):
    """The other side of the rule: a change of half the recorded tolerance is not reported."""
    rel = "orthogonality/offdiag_penalty__rows-M4-D6.npz"
    manifest = json.loads((ortho_root / "MANIFEST.json").read_text())
    arrays = tables.load(rel, ortho_root)
    for member in ("output.out", "grad.w"):
        atol = manifest["files"][rel]["members"][member]["verify_atol"]
        arrays[member] = _nudge(arrays[member], 0.5 * atol)
    _rewrite(ortho_root, rel, arrays)
    assert not tables.verify(ortho_root, only=EDGE_ONLY, quiet=True)["stale"]


def test_a_regeneration_that_changes_only_the_gradients_is_reported(ortho_root, monkeypatch):
    """Code that changes the VJP by 1e-11 relative (and nothing else) makes every table stale
    through its grad.* member: verify does not skip gradients."""
    from kexue_ref import _records
    original = _records.reference_grads

    def slightly_wrong(case, cots):
        return {k: g * (1 + 1e-11) for k, g in original(case, cots).items()}

    # the records module computes every table's VJP (tables.py re-exports what it builds)
    monkeypatch.setattr(_records, "reference_grads", slightly_wrong)
    problems = tables.verify(ortho_root, only=EDGE_ONLY, quiet=True)
    nonzero = [rel for rel in json.loads((ortho_root / "MANIFEST.json").read_text())["files"]
               if np.abs(tables.load(rel, ortho_root)["grad.w"]).max()
               > 1e-2 * json.loads((ortho_root / "MANIFEST.json").read_text())["files"][rel]["members"]["grad.w"]["scale"]]
    assert nonzero
    for rel in nonzero:
        line = next((ln for ln in problems["stale"] if ln.startswith(rel)), "")
        assert "grad.w" in line and "output.out" not in line, (rel, problems["stale"])


def test_an_edited_tolerance_is_reported(ortho_root):
    """A manifest whose tolerance was widened to let a wrong table pass is itself stale."""
    manifest_path = ortho_root / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    rel = "orthogonality/offdiag_penalty__rows-M4-D6.npz"
    manifest["files"][rel]["members"]["output.out"]["verify_atol"] *= 100
    manifest_path.write_text(json.dumps(manifest))
    problems = tables.verify(ortho_root, only=EDGE_ONLY, quiet=True)
    assert any(ln.startswith(rel) and "verify tolerance" in ln for ln in problems["stale"])


def test_integer_members_are_exact(tmp_path):
    only = "sparse_attention.local_mask"
    tables.generate(tmp_path, only=only, quiet=True)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    rel = next(iter(manifest["files"]))
    arrays = tables.load(rel, tmp_path)
    out = arrays["output.out"].copy()
    out.reshape(-1)[0] = not out.reshape(-1)[0] if out.dtype == bool else out.reshape(-1)[0] + 1
    arrays["output.out"] = out
    _rewrite(tmp_path, rel, arrays)
    problems = tables.verify(tmp_path, only=only, quiet=True)
    assert any(ln.startswith(rel) and "compared exactly" in ln for ln in problems["stale"])


def test_sensitivity_ignores_a_jump():
    """The natural scale measures smooth sensitivity only: a step crossed by the probe (a tie
    broken by the perturbation) must not pass for a slope of 1/η."""
    import autograd.numpy as anp
    from kexue_ref.registry import CaseDef, OpSpec

    def ref(x):
        # f(x) = x where x < 1, 2x where x ≥ 1: a jump of 1 at the stored x = 1
        return anp.where(x >= 1.0, 2.0 * x, x)

    spec = OpSpec("synthetic.step", ref, ("x",), ("x",),
                  (CaseDef("tie", {"x": np.array([1.0, 0.5])}),), source="test")
    case = registry._build(spec, spec.cases[0])
    rec = tables.case_record(case)
    scales = tables.natural_scales(case, rec)
    # without the jump the largest entry (2) and the slope × x (≤ 2) agree
    assert scales["output.out"]["scale"] == pytest.approx(2.0, rel=1e-6)


def test_verify_of_a_missing_folder_says_so(capsys):
    from kexue_ref.cli import main
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tables.verify("/nonexistent/kexue_tables", quiet=True)
    assert main(["tables", "verify", "--root", "/nonexistent/kexue_tables", "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_show_takes_paths_ids_and_says_what_is_missing(capsys, monkeypatch, tmp_path):
    from kexue_ref.cli import main
    root = tables.default_root()
    monkeypatch.chdir(root.parent)
    # a path from the current folder (tables/...) is not doubled into tables/tables/...
    assert main(["tables", "show", "tables/smoothing/smooth_max__post-x-K10.npz"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smoothing/smooth_max__post-x-K10.npz") and "case_id: smoothing.smooth_max" in out
    # unknown names: one line on stderr, exit 2, no traceback
    for name in ("nosuch", "smoothing/nosuch.npz"):
        assert main(["tables", "show", name]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tables show: no table") and "Traceback" not in err and err.count("\n") == 1


def test_cli_list_into_a_closed_pipe_is_quiet():
    import subprocess
    import sys
    r = subprocess.run(f"{sys.executable} -m kexue_ref tables list | head -1", shell=True,
                       capture_output=True, text=True)
    assert r.stdout.count("\n") == 1 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr
