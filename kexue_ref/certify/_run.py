"""Running the certifier over many tables (in worker processes) and writing the results.

``kexue-ref tables certify`` certifies the *stored* tables and writes each member's
certificate into ``MANIFEST.json`` (beside its natural scale); ``--check`` writes nothing
and fails if a member exceeds its bound. ``python -m kexue_ref.certify`` does the same on
fresh in-memory records of the current oracle (for developing a truth module).
"""
import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as onp

__all__ = ["certify_tables", "cli", "main"]


def _one(job):
    """Worker: certify one case (by id) from its stored table, or from a fresh record."""
    case_id, root, fresh = job
    from kexue_ref import registry, tables
    from kexue_ref.certify import certify_record
    op, name = case_id[:-1].split("[", 1)
    spec = registry.get_op(op)
    case = next(c for c in registry.cases(spec, tables.TABLE_TIERS) if c.name == name)
    t0 = time.perf_counter()
    try:
        if fresh:
            rec = tables.case_record(case)
            scales = None
        else:
            rel = tables.case_path(case)
            data = (Path(root) / rel).read_bytes()
            with onp.load(io.BytesIO(data), allow_pickle=False) as z:
                rec = {k: z[k] for k in z.files}
            manifest = json.loads((Path(root) / tables.MANIFEST).read_text(encoding="utf-8"))
            members = manifest["files"][rel]["members"]
            scales = {k: m["scale"] for k, m in members.items() if "scale" in m}
        certs = certify_record(case, rec, scales)
        return case_id, {k: c.as_dict() for k, c in certs.items()}, \
            [c.line() for c in certs.values()], time.perf_counter() - t0, ""
    except Exception as exc:  # reported per case; the run goes on
        return case_id, {}, [], time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"


def certify_tables(root=None, only=None, tiers=None, fresh=False, jobs=None, progress=None):
    """Certify the selected tables; returns ``{case_id: (certs, lines, seconds, error)}``."""
    from kexue_ref import tables
    from kexue_ref.certify import truth_for
    root = Path(root) if root else tables.default_root()
    if not fresh and not root.is_dir():
        raise FileNotFoundError(f"tables folder {root} does not exist (or is not a folder)")
    cases = [c for c in tables._selected_cases(only) if tiers is None or c.tier in tiers]
    if only and not cases:
        raise ValueError(f"--only {only!r} matches no op, case id or table path")
    results = {}
    todo = []
    for c in cases:
        if truth_for(c.spec.name) is None:
            results[c.id] = ({}, [], 0.0, f"no truth function for {c.spec.name}")
        else:
            todo.append((c.id, str(root), fresh))
    # the slowest cases first, so the pool ends together
    todo.sort(key=lambda j: -_cost_hint(j[0]))
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        it = map(_one, todo)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=jobs)
        it = pool.map(_one, todo, chunksize=1)
    try:
        for i, (cid, certs, lines, secs, err) in enumerate(it, 1):
            results[cid] = (certs, lines, secs, err)
            if progress:
                progress(i, len(todo), cid)
    finally:
        if pool:
            pool.shutdown()
    return results


def _cost_hint(case_id):
    return sum(case_id.count(s) for s in ("layer", "stack", "heads", "loss", "attention", "features"))


def _write(root, results):
    from kexue_ref import tables
    root = Path(root)
    with tables._locked(root):
        manifest = json.loads((root / tables.MANIFEST).read_text(encoding="utf-8"))
        by_id = {e["case_id"]: rel for rel, e in manifest["files"].items()}
        for cid, (certs, _, _, err) in results.items():
            rel = by_id.get(cid)
            if rel is None or err:
                continue
            members = manifest["files"][rel]["members"]
            for key, cert in certs.items():
                if key in members:
                    members[key]["certificate"] = cert
        text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
        tmp = root / (tables.MANIFEST + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(root / tables.MANIFEST)


def _summary(results, verbose):
    bad = 0
    errors = 0
    members = 0
    lines = []
    for cid in sorted(results):
        certs, clines, secs, err = results[cid]
        if err:
            errors += 1
            lines.append(f"ERROR {cid}: {err}")
            continue
        members += len(certs)
        failed = [ln for ln in clines if ln.startswith("FAIL")]
        bad += len(failed)
        if failed or verbose:
            lines.append(f"{'FAIL' if failed else 'ok  '} {cid} ({secs:.1f} s)")
            lines.extend("    " + ln for ln in (clines if verbose else failed))
    return lines, bad, errors, members


def cli(args, fresh=False):
    """``kexue-ref tables certify``: exit 0 when every member is within its bound."""
    from kexue_ref import tables
    t0 = time.perf_counter()
    progress = None if args.quiet else (lambda i, n, label: tables._progress(i, n, label))
    try:
        results = certify_tables(args.root, args.only, args.tier, fresh=fresh, jobs=args.jobs,
                                 progress=progress)
    except ImportError as exc:
        print(f"tables certify: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"tables certify: {exc}", file=sys.stderr)
        return 2
    lines, bad, errors, members = _summary(results, getattr(args, "verbose", False))
    for ln in lines:
        print(ln)
    if not args.check and not fresh:
        _write(args.root or tables.default_root(), results)
    verdict = "FAILED" if (bad or errors) else "OK"
    print(f"tables certify {verdict}: {len(results)} tables, {members} members certified, "
          f"{bad} over their bound, {errors} errors, {time.perf_counter() - t0:.0f} s")
    return 1 if (bad or errors) else 0


def main(argv=None):
    """``python -m kexue_ref.certify``: certify fresh in-memory records of the current oracle."""
    p = argparse.ArgumentParser(prog="python -m kexue_ref.certify",
                                description="Certify fresh records of the current oracle "
                                            "against the truth modules (nothing is written).")
    p.add_argument("--only", default=None, help="glob over op names, case ids or paths")
    p.add_argument("--tier", action="append", default=None,
                   help="quick, full or edge (repeatable; 'all' for every tabled tier; default quick)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="every member's line, not only failures")
    args = p.parse_args(argv)
    if args.tier is None:
        args.tier = ["quick"]
    if "all" in args.tier:
        args.tier = None
    args.root, args.check = None, True
    return cli(args, fresh=True)


DOCS_BEGIN = "<!-- certification table: generated by `kexue-ref tables certify-report`; do not edit -->"
DOCS_END = "<!-- end of the certification table -->"


def report_table(manifest):
    """The per-op certification table (Markdown) from a manifest's certificates.

    One row per op: tables, members certified (float / exact), the worst error in ulps and in
    eps·S over all its members, how many members miss the goal bound (2 ulp or 1 eps·S) and
    the bound they are held to instead, and members without a certificate.
    """
    from kexue_ref.certify import GOAL
    rows = {}
    for entry in manifest["files"].values():
        r = rows.setdefault(entry["op"], {"tables": 0, "float": 0, "exact": 0, "ulps": 0.0, "es": 0.0,
                                          "over_goal": 0, "missing": 0, "failed": 0})
        r["tables"] += 1
        for key, meta in entry["members"].items():
            if meta["kind"] not in ("output", "grad", "jvp", "hvp"):
                continue
            cert = meta.get("certificate")
            if cert is None:
                r["missing"] += 1
                continue
            if not cert["passed"]:
                r["failed"] += 1
            if cert.get("exact"):
                r["exact"] += 1
                continue
            r["float"] += 1
            u, e = float(cert["max_ulps"]), float(cert["max_eps_scale"])
            r["ulps"], r["es"] = max(r["ulps"], u), max(r["es"], e)
            b = cert["bound"]
            if b["ulps"] > GOAL["ulps"] or b["eps_scale"] > GOAL["eps_scale"]:
                r["over_goal"] += 1
    lines = ["| op | tables | members (float + exact) | worst ulps | worst eps·S | over the goal | failed | uncertified |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for op in sorted(rows):
        r = rows[op]
        lines.append(f"| `{op}` | {r['tables']} | {r['float']} + {r['exact']} | {_fmt(r['ulps'])} | "
                     f"{_fmt(r['es'])} | {r['over_goal']} | {r['failed']} | {r['missing']} |")
    return "\n".join(lines)


def _fmt(x):
    return "0" if x == 0 else (f"{x:.2g}" if x < 1e4 else f"{x:.1e}")


def write_report(manifest_path, docs_path):
    """Replace the generated block of ``docs_path`` by the table of ``manifest_path``."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    text = Path(docs_path).read_text(encoding="utf-8")
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{docs_path} has no generated block ({DOCS_BEGIN!r} … {DOCS_END!r})")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    Path(docs_path).write_text(head + DOCS_BEGIN + "\n\n" + report_table(manifest) + "\n\n" + DOCS_END + tail,
                               encoding="utf-8")
