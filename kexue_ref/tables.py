"""Reference tables: every non-error registry case as a framework-neutral ``.npz`` file.

Layout (decision D8, format version ``kexue_ref.TABLE_FORMAT_VERSION``)::

    tables/MANIFEST.json
    tables/<topic>/<function>__<case>.npz

Each ``.npz`` holds plain arrays, loadable with ``numpy.load(path, allow_pickle=False)``:

* ``input.<name>``     every array input of the op (as passed to the reference);
* ``param.<name>``     every keyword parameter (0-d or 1-d arrays; strings as unicode, None as
  an empty float array with ``"none": true`` in the manifest);
* ``output.<name>``    the reference outputs, float64 for float outputs;
* ``cotangent.<name>`` the seeded cotangent of each differentiable output;
* ``grad.<name>``      the VJP of the reference for that cotangent, per differentiable input.

Files are written deterministically (sorted members, fixed zip timestamps), so the same
machine regenerates them bit for bit; ``verify`` compares values within
``TABLE_VERIFY_RTOL`` of each array's scale (other machines, other BLAS) and checks every
file's sha256 against the manifest.

Command line: ``kexue-ref tables generate [--only PATTERN]``, ``verify``, ``list``, ``show NAME``.
"""
import argparse
import contextlib
import fnmatch
import hashlib
import io
import json
import os
import platform
import sys
import zipfile
from pathlib import Path

import numpy as onp

import kexue_ref
from kexue_ref import registry
from kexue_ref.testing._check import make_cotangents, reference_grads, reference_outputs
from kexue_ref.testing.tolerances import TABLE_VERIFY_RTOL, table_as_dict, tolerance_for

__all__ = ["default_root", "case_path", "case_record", "write_npz", "load", "generate",
           "verify", "list_tables", "add_parser", "MANIFEST"]

MANIFEST = "MANIFEST.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TABLE_TIERS = ("quick", "full", "edge")


def default_root():
    """``$KEXUE_REF_TABLES``, else ``tables/`` beside the package (a source checkout), else ./tables."""
    env = os.environ.get("KEXUE_REF_TABLES")
    if env:
        return Path(env)
    beside = Path(kexue_ref.__file__).resolve().parent.parent / "tables"
    return beside if beside.is_dir() else Path.cwd() / "tables"


def case_path(case):
    """Relative path of a case's table: ``<topic>/<function>__<case>.npz``."""
    return f"{case.spec.topic}/{case.spec.function}__{case.name}.npz"


def _param_array(value):
    if value is None:
        return onp.zeros(0)
    arr = onp.asarray(value)
    if arr.dtype.kind == "O":
        raise TypeError(f"parameter value {value!r} cannot be stored without pickle")
    return arr


def case_record(case):
    """The arrays of one case's table, by key (see the module docstring)."""
    spec = case.spec
    rec = {}
    for name in spec.inputs:
        rec[f"input.{name}"] = onp.asarray(case.inputs[name])
    for name, value in case.params.items():
        rec[f"param.{name}"] = _param_array(value)
    outs = reference_outputs(case)
    for name, o in zip(spec.outputs, outs):
        rec[f"output.{name}"] = o
    if spec.diff:
        cots = make_cotangents(case, outs)
        for name, u in zip(spec.outputs, cots):
            if u is not None:
                rec[f"cotangent.{name}"] = u
        for name, g in reference_grads(case, cots).items():
            rec[f"grad.{name}"] = g
    for key, arr in rec.items():
        if arr.dtype.kind == "O":
            raise TypeError(f"{case.id}: {key} has dtype object; tables hold plain arrays only")
    return rec


def write_npz(path, arrays):
    """Write ``arrays`` as an uncompressed ``.npz`` with sorted members and fixed timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            onp.lib.format.write_array(member, onp.array(arrays[key], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    data = buf.getvalue()
    tmp = path.with_suffix(".npz.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load(name, root=None):
    """Load one table as a dict of arrays, by relative path or case id (no pickle).

    >>> t = load("smoothing/soft_argmax__post-x-K1-base1.npz")
    >>> round(float(t["output.out"]), 4)
    3.7336
    """
    root = Path(root) if root else default_root()
    rel = _resolve_name(name, root)
    with onp.load(root / rel, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _resolve_name(name, root):
    if name.endswith(".npz"):
        return name
    for spec in registry.all_ops().values():
        for d in spec.cases:
            if f"{spec.name}[{d.name}]" == name:
                return f"{spec.topic}/{spec.function}__{d.name}.npz"
    raise KeyError(f"no table named {name!r} (give a path like 'smoothing/smooth_max__post-x-K1.npz' "
                   "or a case id like 'smoothing.smooth_max[post-x-K1]')")


def _selected_cases(only):
    out = []
    for spec in registry.all_ops().values():
        for case in registry.cases(spec, TABLE_TIERS):
            if only and not (fnmatch.fnmatchcase(spec.name, only) or fnmatch.fnmatchcase(case.id, only)
                             or fnmatch.fnmatchcase(case_path(case), only)):
                continue
            out.append(case)
    return out


def _tolerance_entry(case):
    entry = {}
    for kind in ("values", "grads"):
        entry[kind] = {}
        for dtype in ("float64", "float32", "float16", "bfloat16"):
            rtol, atol, reason = tolerance_for(dtype, kind, case.tol)
            entry[kind][dtype] = {"rtol": rtol, "atol": atol, **({"reason": reason} if reason else {})}
    return entry


def _jsonable(value):
    if isinstance(value, (onp.generic,)):
        return value.item()
    if isinstance(value, float) and not onp.isfinite(value):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _manifest_entry(case, rec, sha):
    return {
        "op": case.spec.name,
        "case": case.name,
        "case_id": case.id,
        "tier": case.tier,
        "seed": case.seed,
        "params": {k: _jsonable(v) for k, v in case.params.items()},
        "flags": {k: _jsonable(v) for k, v in case.spec.flags.items()},
        "note": case.defn.note,
        "source": case.spec.source,
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in sorted(rec.items())},
        "differentiable_inputs": list(case.spec.diff),
        "tolerances": _tolerance_entry(case),
        "sha256": sha,
    }


def _manifest_header():
    import autograd
    import scipy
    return {
        "format_version": kexue_ref.TABLE_FORMAT_VERSION,
        "library": "kexue_ref",
        "library_version": kexue_ref.__version__,
        "numpy_version": onp.__version__,
        "scipy_version": scipy.__version__,
        "autograd_version": getattr(autograd, "__version__", "unknown"),
        "python_version": platform.python_version(),
        "layout": "<topic>/<function>__<case>.npz; members input.*, param.*, output.*, cotangent.*, grad.*",
        "call": "outputs = fn(*inputs in the op's order, **params)",
        "cotangent_rule": "default_rng([seed, 1]).standard_normal per differentiable output, "
                          "0 where the output is not finite",
        "grads_rule": "grad.<x> = VJP of the float64 reference w.r.t. input x for the stored cotangents",
        "tolerance_rule": "candidate passes where |a - b| <= atol + rtol*|b| elementwise",
        "tolerances": table_as_dict(),
        "verify_rule": f"|regenerated - stored| <= {TABLE_VERIFY_RTOL:g} * (|stored| + max|stored|)",
    }


@contextlib.contextmanager
def _locked(root):
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / ".manifest.lock", "w")
    try:
        try:
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover (Windows): no concurrent generation there
            pass
        yield
    finally:
        lock.close()


def _read_manifest(root):
    path = root / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_manifest(root, files):
    data = dict(_manifest_header())
    data["files"] = {k: files[k] for k in sorted(files)}
    text = json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(root / MANIFEST)


def _progress(i, n, label, stream=sys.stderr):
    if stream.isatty():
        stream.write(f"\r[{i}/{n}] {label[:70]:<70}")
        if i == n:
            stream.write("\n")
    elif i == n or i % 100 == 0:
        stream.write(f"[{i}/{n}] {label}\n")
    stream.flush()


def generate(root=None, only=None, quiet=False):
    """Regenerate the tables (all, or those matching the glob ``only``) and the manifest.

    A full run (``only=None``) also deletes ``.npz`` files that no registry case produces.
    Returns the list of relative paths written.
    """
    root = Path(root) if root else default_root()
    cases = _selected_cases(only)
    if only and not cases:
        raise ValueError(f"--only {only!r} matches no op, case id or table path")
    written = {}
    for i, case in enumerate(cases, 1):
        rel = case_path(case)
        rec = case_record(case)
        sha = write_npz(root / rel, rec)
        written[rel] = _manifest_entry(case, rec, sha)
        if not quiet:
            _progress(i, len(cases), case.id)
    with _locked(root):
        old = _read_manifest(root)
        files = dict(old["files"]) if (old and only) else {}
        files.update(written)
        if not only:
            for path in root.rglob("*.npz"):
                rel = path.relative_to(root).as_posix()
                if rel not in files:
                    path.unlink()
        _write_manifest(root, files)
    return sorted(written)


def _compare_arrays(key, new, old):
    """None if equal within the verify rule, else a short reason."""
    if new.shape != old.shape:
        return f"{key}: shape {old.shape} stored, {new.shape} regenerated"
    if new.dtype.kind != old.dtype.kind:
        return f"{key}: dtype {old.dtype} stored, {new.dtype} regenerated"
    if new.dtype.kind not in "fc":
        if not onp.array_equal(new, old):
            return f"{key}: values differ"
        return None
    if new.size == 0:
        return None
    same_inf = onp.isinf(new) & onp.isinf(old) & (onp.sign(new) == onp.sign(old))
    finite = onp.isfinite(old)
    if onp.any(onp.isinf(new) != onp.isinf(old)) or onp.any(onp.isnan(new) | onp.isnan(old)):
        return f"{key}: non-finite entries differ"
    scale = onp.max(onp.abs(old[finite])) if finite.any() else 0.0
    with onp.errstate(invalid="ignore"):
        diff = onp.where(same_inf, 0.0, onp.abs(new - old))
    allowed = TABLE_VERIFY_RTOL * (onp.where(finite, onp.abs(old), 0.0) + scale)
    bad = diff > allowed
    if bad.any():
        idx = tuple(int(i) for i in onp.unravel_index(int(onp.argmax(diff - allowed)), old.shape))
        return f"{key}: max |Δ| {float(diff.max()):.3g} at {idx} exceeds the verify tolerance"
    return None


def verify(root=None, only=None, quiet=False):
    """Regenerate in memory and compare with the files on disk.

    Returns a dict with lists ``missing``, ``extra``, ``corrupted``, ``stale`` (each entry a
    relative path with a reason) and ``checked`` (count). Nothing on disk is changed.
    """
    root = Path(root) if root else default_root()
    problems = {"missing": [], "extra": [], "corrupted": [], "stale": [], "checked": 0}
    manifest = _read_manifest(root)
    if manifest is None:
        problems["missing"].append(f"{MANIFEST}: no manifest in {root}")
        files = {}
    else:
        files = manifest.get("files", {})
        if manifest.get("format_version") != kexue_ref.TABLE_FORMAT_VERSION:
            problems["stale"].append(f"{MANIFEST}: format version {manifest.get('format_version')} "
                                     f"!= {kexue_ref.TABLE_FORMAT_VERSION}")
    cases = _selected_cases(only)
    expected = {case_path(c): c for c in cases}
    for i, (rel, case) in enumerate(sorted(expected.items()), 1):
        if not quiet:
            _progress(i, len(expected), case.id)
        path = root / rel
        if not path.exists():
            problems["missing"].append(f"{rel}: no file (case {case.id})")
            continue
        if rel not in files:
            problems["missing"].append(f"{rel}: not in the manifest")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != files[rel].get("sha256"):
            problems["corrupted"].append(f"{rel}: sha256 differs from the manifest")
            continue
        try:
            with onp.load(io.BytesIO(data), allow_pickle=False) as z:
                stored = {k: z[k] for k in z.files}
        except Exception as exc:  # a file whose hash matches but cannot be read
            problems["corrupted"].append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
            continue
        fresh = case_record(case)
        reasons = []
        if set(stored) != set(fresh):
            reasons.append(f"members differ: stored {sorted(set(stored) - set(fresh))} "
                           f"vs regenerated {sorted(set(fresh) - set(stored))}")
        for key in sorted(set(stored) & set(fresh)):
            r = _compare_arrays(key, fresh[key], stored[key])
            if r:
                reasons.append(r)
        if reasons:
            problems["stale"].append(f"{rel}: " + "; ".join(reasons))
        problems["checked"] += 1
    if not only:
        on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.npz")}
        for rel in sorted(on_disk - set(expected)):
            problems["extra"].append(f"{rel}: file produced by no registry case")
        for rel in sorted(set(files) - set(expected) - on_disk):
            problems["extra"].append(f"{rel}: manifest entry for no registry case")
    return problems


def list_tables(root=None, only=None):
    """(relative path, manifest entry) pairs from the manifest, optionally filtered by a glob."""
    root = Path(root) if root else default_root()
    manifest = _read_manifest(root) or {"files": {}}
    out = []
    for rel, entry in manifest["files"].items():
        if only and not (fnmatch.fnmatchcase(rel, only) or fnmatch.fnmatchcase(entry["op"], only)
                         or fnmatch.fnmatchcase(entry["case_id"], only)):
            continue
        out.append((rel, entry))
    return out


# ---------------------------------------------------------------------------
# Command line: kexue-ref tables ...
# ---------------------------------------------------------------------------

def add_parser(sub):
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
        problems = verify(args.root, args.only, quiet=args.quiet)
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
            shapes = ", ".join(f"{k.split('.', 1)[1]}{tuple(v['shape'])}" for k, v in entry["arrays"].items()
                               if k.startswith("output."))
            print(f"{rel:<70} {entry['tier']:<5} {shapes}")
        print(f"{len(rows)} tables")
        return 0
    if action == "show":
        root = Path(args.root) if args.root else default_root()
        rel = _resolve_name(args.name, root)
        manifest = _read_manifest(root) or {"files": {}}
        entry = manifest["files"].get(rel)
        print(rel)
        if entry:
            for k in ("op", "case_id", "tier", "seed", "params", "flags", "note", "source", "sha256"):
                print(f"  {k}: {entry[k]}")
        with onp.printoptions(precision=6, threshold=40, edgeitems=3, linewidth=100):
            for key, arr in load(rel, root).items():
                print(f"  {key} {arr.dtype} {arr.shape}:\n    " + str(arr).replace("\n", "\n    "))
        return 0
    return 2


def main(argv=None):
    """``python -m kexue_ref.tables ...``: the same as ``kexue-ref tables ...``."""
    parser = argparse.ArgumentParser(prog="python -m kexue_ref.tables")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["tables"] + list(sys.argv[1:] if argv is None else argv))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
