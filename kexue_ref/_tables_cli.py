"""``kexue-ref tables ACTION`` (also ``python -m kexue_ref tables``): the command line of :mod:`kexue_ref.tables`."""
import sys
from pathlib import Path

import numpy as onp

from kexue_ref.tables import (MANIFEST, TABLE_TIERS, _locate, _read_manifest, default_root,
                              generate, list_tables, load, verify)

__all__ = ["add_parser"]


def add_parser(sub):
    """Register ``kexue-ref tables ACTION`` (generate, verify, list, certify, certify-report, show)."""
    p = sub.add_parser("tables", help="generate, verify, list or show the reference tables")
    tsub = p.add_subparsers(dest="tables_command", metavar="ACTION")
    for name, helptext in [("generate", "regenerate tables and the manifest"),
                           ("verify", "regenerate in memory and compare with the files"),
                           ("list", "list the tables in the manifest")]:
        q = tsub.add_parser(name, help=helptext)
        q.add_argument("--only", default=None, help="glob over op names, case ids or paths")
        q.add_argument("--root", default=None, help="tables folder (default: the checkout's tables/)")
        if name != "list":
            q.add_argument("--quiet", action="store_true", help="no progress output")
        q.set_defaults(func=_run)
    q = tsub.add_parser("certify", help="certify the stored numbers against mpmath (extra 'certify')")
    q.add_argument("--only", default=None, help="glob over op names, case ids or paths")
    q.add_argument("--root", default=None, help="tables folder (default: the checkout's tables/)")
    q.add_argument("--tier", action="append", choices=TABLE_TIERS,
                   help="certify only this tier (repeatable; default: every tabled tier)")
    q.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if any member exceeds its published bound")
    q.add_argument("--jobs", type=int, default=None, help="worker processes (default: the CPU count)")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    q.set_defaults(func=lambda args: __import__("kexue_ref.certify._run", fromlist=["cli"]).cli(args))
    q = tsub.add_parser("certify-report", help="rewrite the certification table of docs/tables.md")
    q.add_argument("--root", default=None, help="tables folder (default: the checkout's tables/)")
    q.add_argument("--docs", default=None, help="the page to rewrite (default: docs/tables.md beside tables/)")
    q.set_defaults(func=_certify_report)
    q = tsub.add_parser("show", help="show one table's manifest entry and arrays")
    q.add_argument("name", help="relative path (smoothing/smooth_max__post-x-K1.npz) or case id")
    q.add_argument("--root", default=None)
    q.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args):
    action = args.tables_command
    if action == "generate":
        written = generate(args.root, args.only, quiet=args.quiet)
        print(f"wrote {len(written)} tables and {MANIFEST} under {Path(args.root or default_root())}")
        return 0
    if action == "verify":
        try:
            problems = verify(args.root, args.only, quiet=args.quiet)
        except (FileNotFoundError, ValueError) as exc:
            print(f"tables verify: {exc}", file=sys.stderr)
            return 2
        bad = 0
        for kind in ("missing", "extra", "corrupted", "stale"):
            for line in problems[kind]:
                print(f"{kind.upper():<9} {line}")
                bad += 1
        verdict = "FAILED" if bad else "OK"
        print(f"tables verify {verdict}: {problems['checked']} checked, "
              f"{len(problems['missing'])} missing, {len(problems['extra'])} extra, "
              f"{len(problems['corrupted'])} corrupted, {len(problems['stale'])} stale")
        return 1 if bad else 0
    if action == "list":
        rows = list_tables(args.root, args.only)
        for rel, entry in rows:
            shapes = ", ".join(f"{k.split('.', 1)[1]}{tuple(v['shape'])}" for k, v in entry["members"].items()
                               if k.startswith("output."))
            print(f"{rel:<70} {entry['tier']:<5} {shapes}")
        print(f"{len(rows)} tables")
        return 0
    if action == "show":
        root = Path(args.root) if args.root else default_root()
        try:
            path, rel = _locate(args.name, root)
        except (KeyError, FileNotFoundError) as exc:
            print(f"tables show: {exc.args[0]}", file=sys.stderr)
            return 2
        manifest = (_read_manifest(root) or {"files": {}}) if rel else {"files": {}}
        entry = manifest["files"].get(rel)
        print(rel or str(path))
        if entry:
            for k in ("op", "case_id", "tier", "seed", "params", "flags", "note", "source", "sha256"):
                print(f"  {k}: {entry[k]}")
        with onp.printoptions(precision=6, threshold=40, edgeitems=3, linewidth=100):
            for key, arr in load(str(path.resolve()), root).items():
                print(f"  {key} {arr.dtype} {arr.shape}:\n    " + str(arr).replace("\n", "\n    "))
        return 0
    return 2


def _certify_report(args):
    from kexue_ref.certify._run import write_report
    root = Path(args.root) if args.root else default_root()
    docs = Path(args.docs) if args.docs else root.parent / "docs" / "tables.md"
    write_report(root / MANIFEST, docs)
    print(f"rewrote the certification table of {docs}")
    return 0
