"""The committed tables carry a certificate for every computed member, and the quick tier
re-certifies within its published bounds (the whole run: `kexue-ref tables certify --check`)."""
import json

import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import tables  # noqa: E402
from kexue_ref.certify import GOAL, _run  # noqa: E402


@pytest.fixture(scope="module")
def manifest():
    return json.loads((tables.default_root() / tables.MANIFEST).read_text(encoding="utf-8"))


def test_every_computed_member_has_a_passing_certificate(manifest):
    missing, failed = [], []
    for rel, entry in manifest["files"].items():
        for key, meta in entry["members"].items():
            if meta["kind"] not in tables.COMPUTED_KINDS:
                continue
            cert = meta.get("certificate")
            if cert is None:
                missing.append(f"{rel}:{key}")
            elif not cert["passed"]:
                failed.append(f"{rel}:{key} {cert}")
    assert not missing, f"{len(missing)} members without a certificate, e.g. {missing[:5]} " \
                        "(run `kexue-ref tables certify`)"
    assert not failed, failed[:5]


def test_bounds_looser_than_the_goal_say_why(manifest):
    for rel, entry in manifest["files"].items():
        for key, meta in entry["members"].items():
            b = meta.get("certificate", {}).get("bound")
            if b and (b["ulps"] > GOAL["ulps"] or b["eps_scale"] > GOAL["eps_scale"]):
                assert b.get("reason"), f"{rel}:{key} is held to {b} without a reason"


def test_quick_tier_recertifies(manifest):
    results = _run.certify_tables(tiers=["quick"])
    errors = {cid: r[3] for cid, r in results.items() if r[3]}
    assert not errors, errors
    bad = {cid: [ln for ln in r[1] if ln.startswith("FAIL")] for cid, r in results.items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, bad
    # and it certifies what the manifest says it certified (same worst errors, to 3 digits)
    by_id = {e["case_id"]: e for e in manifest["files"].values()}
    for cid, (certs, _, _, _) in results.items():
        for key, cert in certs.items():
            stored = by_id[cid]["members"][key]["certificate"]
            assert stored["passed"] == cert["passed"]
            if not cert.get("exact"):
                assert float(stored["max_ulps"]) == pytest.approx(float(cert["max_ulps"]), rel=1e-3, abs=1e-6)


def test_docs_show_the_certification_table_of_the_committed_manifest(manifest):
    page = (tables.default_root().parent / "docs" / "tables.md").read_text(encoding="utf-8")
    block = page.split(_run.DOCS_BEGIN, 1)[1].split(_run.DOCS_END, 1)[0].strip()
    assert block == _run.report_table(manifest), "run `kexue-ref tables certify-report`"
