"""``kexue-ref check TARGET --op NAME``: run a candidate function against the oracle.

TARGET is ``package.module:function`` (a dotted attribute path may follow the colon, e.g.
``mypkg.layers:Attention.reference``) or ``path/to/file.py:function``; the current directory
is put on ``sys.path`` first, as ``python -m`` does. The candidate is called with the
registry's convention, ``fn(*arrays, **params)`` (``kexue-ref cases NAME`` lists them).

Examples::

    kexue-ref check mymodel.ops:smooth_max --op smoothing.smooth_max --framework torch --grads
    kexue-ref check ops.py:softmax --op numerics.softmax --cases all --dtype float32 --json
    kexue-ref check ops:attn --op sparse_attention.attention --framework torch \\
        --dtype bfloat16 --rule relative --k 2

The report has one line per passing case (PASS, the case id, its tier; "refused" and the
exception for an error case the candidate refused) and at most four per failing case, in
torch.testing's words: the mismatched elements, the greatest absolute and relative
differences with their indices and the tolerance allowed, and where the error lies. When a
case fails, the registered convention options of the op are tried
(``kexue_ref.testing.diagnose``) and the report says which one the candidate follows.

Cases that reproduce a peer's quirk rather than the post (``compat='keras'``, replacement
fills, ...) run only with ``--quirks``. ``--only``, ``--skip`` and ``--xfail`` take case
names, ids or glob patterns, comma-separated and repeatable, or ``@FILE`` with one per line
(``#`` starts a comment); an xfailed case is reported as XFAIL (XPASS when it passes) and
never fails the run.

Exit status: 0 when every case passes, 1 on a mismatch, 2 on a usage error (the target, the
op, the framework or the device cannot be loaded, a pattern matches no case, nothing is
selected, the output was closed early): one line on stderr, never a traceback.
"""
import importlib
import importlib.util
import json
import math
import os
import sys

__all__ = ["add_parser", "run", "load_target"]

TIER_CHOICES = ("quick", "full", "edge", "error", "all")


def add_parser(sub):
    p = sub.add_parser(
        "check", help="check a candidate function against the oracle (values, gradients)",
        description="Run the registry cases of an op through a candidate and compare it with "
                    "the float64 oracle. Exit 0: all cases pass; 1: a mismatch; 2: usage error.")
    p.add_argument("target", metavar="PACKAGE.MODULE:FUNCTION",
                   help="the candidate, e.g. mypkg.ops:smooth_max or path/to/ops.py:smooth_max")
    p.add_argument("--op", required=True, help="registry op name, e.g. smoothing.smooth_max")
    p.add_argument("--framework", default="numpy", choices=("numpy", "torch", "jax"),
                   help="how arrays are handed to the candidate (default numpy)")
    p.add_argument("--cases", default="quick",
                   help="tier(s): quick (default), full, edge, error, all, or a comma list "
                        "such as quick,edge")
    p.add_argument("--dtype", default="float64",
                   help="the candidate's dtype: float64 (default), float32, float16, bfloat16 "
                        "(torch/jax)")
    p.add_argument("--grads", action="store_true",
                   help="also compare gradients, from the framework's own autodiff "
                        "(autograd for numpy candidates) with the oracle's cotangent")
    p.add_argument("--device", default=None, help="torch device (default cpu) or jax platform")
    p.add_argument("--rule", default="table", choices=("table", "relative"),
                   help="table: published per-dtype tolerances (default); relative: error at "
                        "most K x that of the reference run naively in the same dtype")
    p.add_argument("--k", type=float, default=2.0, help="the factor of --rule relative (default 2)")
    p.add_argument("--no-diagnose", action="store_true",
                   help="do not try the op's convention options or localise failures")
    p.add_argument("--quirks", action="store_true",
                   help="also run the cases that reproduce a peer's quirk (compat='keras', "
                        "replacement fills, ...) rather than the post")
    p.add_argument("--no-dtype-check", action="store_true",
                   help="accept outputs and gradients of another dtype than --dtype")
    for flag, what in (("--only", "run only these cases"), ("--skip", "leave these cases out"),
                       ("--xfail", "expect these cases to fail (XFAIL; XPASS if they pass)")):
        p.add_argument(flag, action="append", default=None, metavar="PATTERNS",
                       help=f"{what}: case names, ids or glob patterns, comma-separated, "
                            "repeatable, or @FILE with one per line")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def load_target(target):
    """The callable named by a ``module:attr`` or ``file.py:attr`` string.

    Parameters
    ----------
    target : str, ``package.module:function`` (the attribute may be dotted, e.g.
        ``pkg.mod:Class.method``; the current directory is put on ``sys.path``) or
        ``path/to/file.py:function`` (the file is imported under a private module name).

    Returns
    -------
    callable. Raises ``ValueError`` for a malformed target, a missing file or attribute,
    or a non-callable; ``ImportError`` when the module cannot be imported.
    """
    if ":" not in target:
        raise ValueError(f"target {target!r} must be PACKAGE.MODULE:FUNCTION or FILE.py:FUNCTION")
    where, attr = target.rsplit(":", 1)
    if not where or not attr:
        raise ValueError(f"target {target!r} must be PACKAGE.MODULE:FUNCTION or FILE.py:FUNCTION")
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise ValueError(f"no file {where!r}")
        name = "_kexue_ref_candidate_" + os.path.splitext(os.path.basename(where))[0]
        spec = importlib.util.spec_from_file_location(name, where)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{target!r} is not callable")
    return obj


def _adapter(framework, device):
    from kexue_ref.testing.adapters import get_adapter

    if framework == "numpy":
        if device not in (None, "cpu"):
            raise ValueError("--device applies to --framework torch or jax")
        return get_adapter(None)
    if framework == "torch":
        from kexue_ref.testing.adapters_torch import TorchAdapter
        # raises ValueError for a device this torch build cannot use
        return TorchAdapter(device=device or "cpu")
    from kexue_ref.testing.adapters_jax import JaxAdapter
    if device is None:
        return JaxAdapter()
    import jax
    try:
        found = jax.devices(device)
    except RuntimeError as exc:  # an unknown or unavailable platform
        raise ValueError(f"jax cannot use device {device!r}: {' '.join(str(exc).split())}") from None
    return JaxAdapter(device=found[0])


def _pattern_list(values, flag):
    """Patterns from repeated ``--only a,b --only @file`` arguments (None when not given)."""
    if not values:
        return None
    out = []
    for value in values:
        if value.startswith("@"):
            path = value[1:]
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                raise ValueError(f"{flag} {value}: cannot read {path!r} ({exc.strerror})") from None
            # one pattern per line; '#' starts a comment
            out += [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        else:
            out += [p.strip() for p in value.split(",")]
    out = [p for p in out if p]
    if not out:
        raise ValueError(f"{flag} names no case")
    return out


def _tiers(text):
    if text == "all":
        return "all"
    tiers = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tiers if t not in TIER_CHOICES or t == "all"]
    if bad or not tiers:
        raise ValueError(f"--cases must be one of {', '.join(TIER_CHOICES)} or a comma list of "
                         f"tiers, got {text!r}")
    return tiers


def _json_safe(obj):
    """Replace non-finite floats by strings so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _fail(message):
    """Print one usage-error line on stderr and return exit status 2."""
    print(f"kexue-ref check: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run(args):
    """Run ``kexue-ref check``: 0 all pass, 1 a mismatch, 2 a usage error (one line, no traceback)."""
    from kexue_ref import registry
    from kexue_ref.testing._check import check

    try:
        candidate = load_target(args.target)
    except ImportError as exc:
        return _fail(f"cannot import {exc.name or args.target}: {exc}")
    except ValueError as exc:
        return _fail(exc)
    except Exception as exc:  # the candidate's module itself failed to import
        return _fail(f"importing {args.target} raised {type(exc).__name__}: {exc}")
    try:
        spec = registry.get_op(args.op)
        tiers = _tiers(args.cases)
        if args.framework == "numpy" and args.dtype not in ("float64", "float32", "float16"):
            raise ValueError(f"--dtype {args.dtype} needs --framework torch or jax "
                             "(NumPy has float64, float32 and float16)")
        adapter = _adapter(args.framework, args.device)
        selection = {flag: _pattern_list(getattr(args, flag), f"--{flag}")
                     for flag in ("only", "skip", "xfail")}
    except ImportError as exc:
        return _fail(f"cannot import {exc.name or exc}: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        return _fail(exc.args[0] if exc.args else exc)
    grads = None
    if args.grads:
        grads = "autograd" if args.framework == "numpy" else True
    try:
        report = check(candidate, spec, cases=tiers, grads=grads, dtype=args.dtype,
                       adapter=adapter, rule=args.rule, k=args.k, quirks=args.quirks,
                       check_dtype=not args.no_dtype_check, diagnose=not args.no_diagnose,
                       **selection)
    except (ValueError, TypeError) as exc:  # an empty selection, a dtype without a tolerance...
        return _fail(exc)
    report.candidate = args.target
    if args.json:
        text = json.dumps(_json_safe(report.to_dict()), indent=1, ensure_ascii=False)
    else:
        text = str(report)
    status = 0 if report.passed else 1
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`| head`): point stdout at devnull so the interpreter's
        # final flush does not raise again, and say in one line what the cut-off report said
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _fail(f"output closed early (broken pipe); {report.op}: {report.summary()}")
    return status
