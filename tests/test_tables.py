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
    for key in ("library_version", "numpy_version", "tolerances", "cotangent_rule"):
        assert key in manifest
    rel, entry = next(iter(manifest["files"].items()))
    for key in ("op", "case", "seed", "sha256", "arrays", "tolerances", "params", "flags", "source"):
        assert key in entry
    data = (root / rel).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    with np.load(root / rel, allow_pickle=False) as z:
        assert {k.split(".")[0] for k in z.files} <= {"input", "param", "output", "cotangent", "grad"}
        for k in z.files:
            assert list(z[k].shape) == entry["arrays"][k]["shape"]


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
