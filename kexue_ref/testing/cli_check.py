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

The report has one line per case (PASS/FAIL, case id, tier) and, for failures, one line
per compared array: the largest absolute and relative error, the worst index, the number of
entries outside the tolerance and the tolerance used. When a case fails, the registered
convention options of the op are tried (``kexue_ref.testing.diagnose``) and the report says
which one the candidate follows. Exit status: 0 when every case passes, 1 on a mismatch,
2 when the target, the op or the framework cannot be loaded.
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
                   help="do not try the op's convention options on failures")
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
        return TorchAdapter(device=device or "cpu")
    from kexue_ref.testing.adapters_jax import JaxAdapter
    if device is None:
        return JaxAdapter()
    import jax
    return JaxAdapter(device=jax.devices(device)[0])


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


def run(args):
    from kexue_ref import registry
    from kexue_ref.testing._check import check
    from kexue_ref.testing.diagnose import diagnose

    try:
        candidate = load_target(args.target)
        spec = registry.get_op(args.op)
        tiers = _tiers(args.cases)
        adapter = _adapter(args.framework, args.device)
        if args.framework == "numpy" and args.dtype not in ("float64", "float32", "float16"):
            raise ValueError(f"--dtype {args.dtype} needs --framework torch or jax "
                             "(NumPy has float64, float32 and float16)")
    except ImportError as exc:
        print(f"kexue-ref check: cannot import {exc.name or exc}: {exc}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        print(f"kexue-ref check: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    grads = None
    if args.grads:
        grads = "autograd" if args.framework == "numpy" else True
    try:
        report = check(candidate, spec, cases=tiers, grads=grads, dtype=args.dtype,
                       adapter=adapter, rule=args.rule, k=args.k)
    except ValueError as exc:  # e.g. a dtype without a published tolerance, a bad rule
        print(f"kexue-ref check: {exc}", file=sys.stderr)
        return 2
    report.candidate = args.target
    diagnosis = None
    if not report.passed and not args.no_diagnose:
        diagnosis = diagnose(candidate, spec, grads=grads, dtype=args.dtype, adapter=adapter,
                             report=report)
        report.notes.extend(diagnosis.lines())
    if args.json:
        data = report.to_dict()
        data.update(framework=args.framework, rule=args.rule, k=args.k,
                    diagnosis=[] if diagnosis is None else
                    [m.convention.label for m in diagnosis.matches])
        print(json.dumps(_json_safe(data), indent=1, ensure_ascii=False))
    else:
        print(report)
    return 0 if report.passed else 1
