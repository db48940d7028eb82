"""Reference tables: every non-error registry case as a framework-neutral ``.npz`` file.

Layout (decision D8, format version ``kexue_ref.TABLE_FORMAT_VERSION``)::

    tables/MANIFEST.json
    tables/<topic>/<function>__<case>.npz

Each ``.npz`` holds plain arrays, loadable with ``numpy.load(path, allow_pickle=False)``,
in this order (the manifest's ``call`` names the same order):

* ``input.<name>``     every array input of the op, in positional call order;
* ``param.<name>``     every keyword parameter, in keyword order (0-d or 1-d arrays; strings
  as unicode, None as an empty float array with ``"none": true`` in the manifest);
* ``output.<name>``    the reference outputs in return order, float64 for float outputs;
* ``cotangent.<name>`` the seeded cotangent of each differentiable output;
* ``grad.<name>``      the VJP of the reference for that cotangent, per differentiable input.

Files are written deterministically (fixed member order and zip timestamps), so the same
machine regenerates them bit for bit. ``verify`` recomputes every computed member from the
*stored* inputs and cotangents and allows each member ``VERIFY_TAU · S``, ``S`` its natural
scale (:func:`natural_scales`: the size of the terms that round and cancel, recorded in the
manifest with its reason), so other machines (SIMD width, BLAS kernel, threads) verify too;
it also checks every file's sha256 against the manifest. ``kexue-ref tables certify``
(:mod:`kexue_ref.certify`) adds a certificate against 50-digit arithmetic to every member.

Command line: ``kexue-ref tables generate [--only PATTERN]``, ``verify``, ``certify``,
``certify-report``, ``list``, ``show NAME``.
"""
import contextlib
import fnmatch
import hashlib
import importlib.metadata
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
from kexue_ref._records import (COMPUTED_KINDS, SCALE_ETA, TABLE_TIERS, VERIFY_TAU,  # noqa: F401
                                _evaluate, case_record, member_kind, natural_scales)
from kexue_ref.testing.tolerances import table_as_dict, tolerance_for

__all__ = ["default_root", "case_path", "case_record", "write_npz", "load", "generate",
           "verify", "list_tables", "natural_scales", "MANIFEST"]

MANIFEST = "MANIFEST.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


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


def write_npz(path, arrays):
    """Write ``arrays`` as an uncompressed ``.npz``, members in the given order, fixed timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in arrays:
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
    """Load one table as a dict of arrays (in file order), by path or case id (no pickle).

    ``name`` is a path relative to the tables folder (``smoothing/smooth_max__post-x-K1.npz``),
    a path to a ``.npz`` file from the current folder (``tables/smoothing/...``), or a case id
    (``smoothing.smooth_max[post-x-K1]``). Raises ``FileNotFoundError`` / ``KeyError`` naming
    what was looked for.

    >>> t = load("smoothing/soft_argmax__post-x-K1-base1.npz")
    >>> round(float(t["output.out"]), 4)
    3.7336
    """
    root = Path(root) if root else default_root()
    path, _ = _locate(name, root)
    with onp.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _locate(name, root):
    """``(path of the file, its path relative to root or None)`` for a table name."""
    root = Path(root)
    if str(name).endswith(".npz"):
        given = Path(name)
        for path in ([root / given] if not given.is_absolute() else []) + [given]:
            if path.is_file():
                try:
                    rel = path.resolve().relative_to(root.resolve()).as_posix()
                except ValueError:
                    rel = None
                return path, rel
        raise FileNotFoundError(f"no table file {name!r} (looked in {root} and in the current folder)")
    rel = _resolve_name(name, root)
    return root / rel, rel


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
        value = value.item()
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
        "call": {"inputs": list(case.spec.inputs), "params": list(case.params),
                 "outputs": list(case.spec.outputs)},
        "params": {k: _jsonable(v) for k, v in case.params.items()},
        "flags": {k: _jsonable(v) for k, v in case.spec.flags.items()},
        "note": case.defn.note,
        "source": case.spec.source,
        "members": _member_entries(case, rec),
        "differentiable_inputs": list(case.spec.diff),
        "tolerances": _tolerance_entry(case),
        "sha256": sha,
    }


def _manifest_header():
    import scipy
    return {
        "format_version": kexue_ref.TABLE_FORMAT_VERSION,
        "library": "kexue_ref",
        "library_version": kexue_ref.__version__,
        "numpy_version": onp.__version__,
        "scipy_version": scipy.__version__,
        "autograd_version": _dist_version("autograd"),
        "python_version": platform.python_version(),
        "layout": "<topic>/<function>__<case>.npz; members in this order: input.* (call order), "
                  "param.* (keyword order), output.* (return order), cotangent.*, grad.* "
                  "(differentiable inputs in call order)",
        "call": "outputs = fn(*[input.<name> for name in call.inputs], "
                "**{name: param.<name> for name in call.params}), returned in call.outputs order",
        "cotangent_rule": "default_rng([seed, 1]).standard_normal per differentiable output, "
                          "0 where the output is not finite",
        "grads_rule": "grad.<x> = VJP of the float64 reference w.r.t. input x for the stored cotangents",
        "tolerance_rule": "candidate passes where |a - b| <= atol + rtol*|b| elementwise",
        "tolerances": table_as_dict(),
        "verify_rule": (f"per member: |regenerated - stored| <= verify_atol = {VERIFY_TAU:g} * scale, "
                        "scale = the member's natural scale (members.<m>.scale, with its reason); "
                        "computed members are regenerated from the stored inputs and cotangents; "
                        "integer and boolean members exactly"),
        "scale_rule": ("data: max |entry|; computed: max(max |entry|, sensitivity), sensitivity = "
                       "max |change| / eta when the differentiable inputs and the cotangents move "
                       "by a relative eta = 2^-36 with random signs (the size of the terms that "
                       "cancel); declared floors where a case states one"),
    }


def _dist_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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
        old_files = old.get("files", {}) if old else {}
        files = dict(old_files) if only else {}
        for rel, entry in written.items():
            # a certificate belongs to the exact bytes it certified: keep it while they stay
            prev = old_files.get(rel)
            if prev and prev.get("sha256") == entry["sha256"]:
                for key, meta in prev.get("members", {}).items():
                    if "certificate" in meta and key in entry["members"]:
                        entry["members"][key]["certificate"] = meta["certificate"]
        files.update(written)
        if not only:
            for path in root.rglob("*.npz"):
                rel = path.relative_to(root).as_posix()
                if rel not in files:
                    path.unlink()
        _write_manifest(root, files)
    return sorted(written)


def _compare_member(key, new, old, atol):
    """None if ``new`` reproduces the stored ``old`` within ``atol``, else a short reason.

    Float members: ``|new − old| ≤ atol`` elementwise (``atol = VERIFY_TAU·S``, the member's
    natural scale), infinities in the same places with the same signs, never a NaN. Integer,
    boolean and string members: exactly equal.
    """
    if new.shape != old.shape:
        return f"{key}: shape {old.shape} stored, {new.shape} regenerated"
    if new.dtype.kind != old.dtype.kind:
        return f"{key}: dtype {old.dtype} stored, {new.dtype} regenerated"
    if new.dtype.kind not in "fc":
        if not onp.array_equal(new, old):
            bad = onp.argwhere(new != old)
            at = tuple(int(i) for i in bad[0]) if bad.size else ()
            return f"{key}: values differ (first at {at}; compared exactly)"
        return None
    if new.size == 0:
        return None
    if onp.any(onp.isnan(new) | onp.isnan(old)):
        return f"{key}: NaN entries"
    if onp.any(onp.isinf(new) != onp.isinf(old)) or onp.any(onp.isinf(old) & (new != old)):
        return f"{key}: non-finite entries differ"
    finite = onp.isfinite(old)
    diff = onp.where(finite, onp.abs(onp.where(finite, new, 0.0) - onp.where(finite, old, 0.0)), 0.0)
    if onp.any(diff > atol):
        idx = tuple(int(i) for i in onp.unravel_index(int(onp.argmax(diff)), old.shape))
        return (f"{key}: max |Δ| {float(diff.max()):.3g} at {idx} exceeds its verify tolerance "
                f"{atol:.3g}")
    return None


def _member_entries(case, rec):
    """The manifest's ``members``: every member in file order, with kind, shape, dtype and,
    for float members, the natural scale, the verify tolerance and its reason."""
    scales = natural_scales(case, rec)
    out = {}
    for key, arr in rec.items():
        entry = {"kind": member_kind(key), "shape": list(arr.shape), "dtype": arr.dtype.str}
        if entry["kind"] == "param" and case.params.get(key.split(".", 1)[1], 0) is None:
            entry["none"] = True        # stored as an empty float array
        if key in scales:
            entry.update(scale=_round_sig(scales[key]["scale"]), verify_atol=_round_sig(scales[key]["atol"]),
                         scale_reason=scales[key]["reason"])
        out[key] = entry
    return out


def _round_sig(x, digits=6):
    """A scale rounded to 6 significant digits (the manifest is text; the rule is not that fine)."""
    return float(f"{x:.{digits - 1}e}")


def _verify_one(case, data, entry):
    """Reasons why a stored table (bytes) is stale; [] when it reproduces."""
    with onp.load(io.BytesIO(data), allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    spec = case.spec
    reasons = []
    # 1. the data: the inputs, parameters and cotangents the case draws today
    fresh_data = case_record(case)
    if set(stored) != set(fresh_data):
        reasons.append(f"members differ: stored {sorted(set(stored) - set(fresh_data))} "
                       f"vs regenerated {sorted(set(fresh_data) - set(stored))}")
    members = entry.get("members", {})
    for key in [k for k in fresh_data if member_kind(k) not in COMPUTED_KINDS and k in stored]:
        atol = float(members.get(key, {}).get("verify_atol", 0.0))
        r = _compare_member(key, fresh_data[key], stored[key], atol)
        if r:
            reasons.append(r)
    # 2. the computed members, evaluated on the *stored* inputs and cotangents, so that a
    #    difference in how another machine draws the inputs is not amplified into them
    missing = [n for n in spec.inputs if f"input.{n}" not in stored]
    if missing:
        return reasons or [f"inputs {missing} missing"]
    inputs = {n: stored[f"input.{n}"] for n in spec.inputs}
    cots = {k.split(".", 1)[1]: v for k, v in stored.items() if member_kind(k) == "cotangent"}
    try:
        fresh = _evaluate(case, inputs, cots or None)
    except Exception as exc:  # the stored inputs no longer run: that is a stale table
        return reasons + [f"the reference raises on the stored inputs ({type(exc).__name__}: {exc})"]
    for key in [k for k in fresh if k in stored]:
        meta = members.get(key)
        if fresh[key].dtype.kind in "fc" and (meta is None or "verify_atol" not in meta):
            reasons.append(f"{key}: the manifest records no verify tolerance")
            continue
        atol = float(meta["verify_atol"]) if meta and "verify_atol" in meta else 0.0
        r = _compare_member(key, fresh[key], stored[key], atol)
        if r:
            reasons.append(r)
    # 3. the recorded tolerance must be today's (a manifest edited to pass is stale)
    scales = natural_scales(case, {**stored, **fresh})
    for key, sc in scales.items():
        rec_atol = float(members.get(key, {}).get("verify_atol", onp.nan))
        if not (0.5 * sc["atol"] <= rec_atol <= 2.0 * sc["atol"]) and not (sc["atol"] == rec_atol == 0.0):
            reasons.append(f"{key}: recorded verify tolerance {rec_atol:.3g} is not today's "
                           f"{sc['atol']:.3g} ({sc['reason']})")
    return reasons


def verify(root=None, only=None, quiet=False):
    """Check the files on disk against the registry and the reference; nothing is changed.

    Per table: the manifest entry exists and the file's sha256 matches it; the inputs,
    parameters and cotangents are what the case draws today; the reference, run on the
    *stored* inputs and cotangents, reproduces every computed member within its recorded
    tolerance ``VERIFY_TAU·S`` (:func:`natural_scales`); and that tolerance is today's.

    Returns a dict with lists ``missing``, ``extra``, ``corrupted``, ``stale`` (each entry a
    relative path with a reason) and ``checked`` (count). Raises ``FileNotFoundError`` if
    ``root`` is not a folder.
    """
    root = Path(root) if root else default_root()
    if not root.is_dir():
        raise FileNotFoundError(f"tables folder {root} does not exist (or is not a folder)")
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
    if only and not cases:
        raise ValueError(f"--only {only!r} matches no op, case id or table path")
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
            reasons = _verify_one(case, data, files[rel])
        except (OSError, ValueError, zipfile.BadZipFile) as exc:  # hash matches, file unreadable
            problems["corrupted"].append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
            continue
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
