"""The case registry: one explicit row per public op, read by the tests, the tables and ``check``.

A row (:class:`OpSpec`) names the reference function, its array inputs in call order, which of
them are differentiable, its outputs, its cases, its source and any tolerance override with the
reason for it. A case (:class:`CaseDef`) is a named point of the op's parameter grid with an
input generator that takes a seeded ``numpy.random.Generator``; :func:`cases` turns it into a
concrete :class:`Case` whose seed is derived from its id alone, so every machine builds the same
inputs.

Calling convention (the same for the reference, the tables and any candidate)::

    outputs = fn(*[case.inputs[name] for name in spec.inputs], **case.params)

Tiers: ``quick`` (a few small cases, the default of ``check``), ``full`` (the wider grid),
``edge`` (one case per pitfall of the spec) and ``error`` (bad input, with the exception type
and a regex the message must match).

Adding a topic is adding a module ``kexue_ref/cases/<topic>.py`` with a list ``OPS`` and naming
it in ``kexue_ref.cases.TOPICS``.
"""
import dataclasses
import fnmatch
import importlib
import itertools
import re
import zlib
from typing import Any, Callable, Mapping

import numpy as onp

__all__ = ["OpSpec", "CaseDef", "Case", "Tol", "grid", "all_ops", "get_op", "cases",
           "select_ops", "TIERS", "case_seed"]

TIERS = ("quick", "full", "edge", "error")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.=+-]+$")


@dataclasses.dataclass(frozen=True)
class Tol:
    """An override of the published tolerance: ``|a - b| <= atol + rtol * |b|`` elementwise.

    ``dtype`` limits it to one candidate dtype (None: all); ``kind`` is "values" or "grads"
    (None: both); ``reason`` is required and is printed in reports and the manifest.
    """
    rtol: float
    atol: float
    reason: str
    dtype: str | None = None
    kind: str | None = None

    def __post_init__(self):
        if not self.reason:
            raise ValueError("a tolerance override must state its reason")
        if self.kind not in (None, "values", "grads"):
            raise ValueError(f"Tol.kind must be None, 'values' or 'grads', got {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class CaseDef:
    """One named case of an op.

    ``inputs`` is a callable ``rng -> {name: array}`` (or a plain dict) giving every name of
    ``OpSpec.inputs``; ``params`` are the keyword arguments (JSON-able scalars, strings, lists).
    ``raises`` is ``(ExceptionType, message_regex)`` for tier "error". ``gradcheck=False``
    skips the finite-difference check of the reference for this case (say why in ``note``,
    e.g. "τ = 1e-3: curvature ~1e6 defeats central differences"); the case is still tabled.
    """
    name: str
    inputs: Callable[[onp.random.Generator], Mapping[str, Any]] | Mapping[str, Any]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tier: str = "quick"
    raises: tuple | None = None
    tol: tuple = ()
    note: str = ""
    gradcheck: bool = True          # False only with a note saying why finite differences fail
    # (rtol, atol, reason): a looser tolerance for the gradient checker on this case
    gradcheck_tol: tuple | None = None
    # natural-scale floors the sensitivity probe cannot see (an identically zero gradient):
    # {member: (record -> S, reason)}; see kexue_ref.tables.natural_scales
    scales: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f"case name {self.name!r} may use only letters, digits and _.=+-")
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {self.tier!r}")
        if (self.tier == "error") != (self.raises is not None):
            raise ValueError(f"case {self.name!r}: tier 'error' and raises= go together")
        if isinstance(self.tol, Tol):
            object.__setattr__(self, "tol", (self.tol,))
        if not self.gradcheck and not self.note:
            raise ValueError(f"case {self.name!r}: gradcheck=False needs a note saying why")
        if self.gradcheck_tol is not None and (len(self.gradcheck_tol) != 3 or not self.gradcheck_tol[2]):
            raise ValueError(f"case {self.name!r}: gradcheck_tol must be (rtol, atol, reason)")
        for member, value in dict(self.scales).items():
            if not (isinstance(value, tuple) and len(value) == 2 and callable(value[0]) and value[1]):
                raise ValueError(f"case {self.name!r}: scales[{member!r}] must be (record -> S, reason)")


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """A registry row: everything the tests, tables and checking API need to know about an op."""
    name: str                       # "<topic>.<function>", e.g. "smoothing.smooth_max"
    ref: Callable                   # the readable reference
    inputs: tuple                   # array argument names, in positional call order
    diff: tuple                     # the differentiable inputs (subset of inputs)
    cases: tuple                    # CaseDef rows
    source: str                     # post URL + equation, or paper
    outputs: tuple = ("out",)       # names of the returned arrays (a tuple if more than one)
    diff_outputs: tuple | None = None  # outputs that carry gradient (None: all float outputs)
    tol: tuple = ()                 # Tol overrides for every case of the op
    grad_order: int = 2             # order checked by the gradient checker (1 for numba twins)
    flags: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # convention flags
    # parameter values that reproduce a peer's quirk rather than the post, e.g.
    # {"compat": ("keras",)}; "*" matches any value but None. check() runs such cases only
    # when quirks are asked for (Case.quirk names the convention).
    quirks: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        if "." not in self.name:
            raise ValueError(f"op name {self.name!r} must be '<topic>.<function>'")
        missing = set(self.diff) - set(self.inputs)
        if missing:
            raise ValueError(f"{self.name}: differentiable inputs {missing} are not inputs")
        names = [c.name for c in self.cases]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"{self.name}: duplicate case names {sorted(dup)}")
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "tol", tuple(self.tol))

    @property
    def topic(self):
        return self.name.split(".", 1)[0]

    @property
    def function(self):
        return self.name.split(".", 1)[1]

    def call(self, fn, case):
        """Call ``fn`` (the reference or a candidate) on a case, with the registry convention."""
        return fn(*[case.inputs[n] for n in self.inputs], **case.params)

    def as_outputs(self, result):
        """Normalise a return value to a tuple with one entry per name of ``outputs``."""
        if len(self.outputs) == 1:
            return (result,)
        if not isinstance(result, (tuple, list)) or len(result) != len(self.outputs):
            raise ValueError(f"{self.name} should return {len(self.outputs)} outputs "
                             f"{self.outputs}, got {type(result).__name__}")
        return tuple(result)


@dataclasses.dataclass(frozen=True)
class Case:
    """A concrete case: the op, the built inputs and parameters, and its seed."""
    spec: OpSpec
    defn: CaseDef
    inputs: Mapping[str, Any]
    seed: int

    @property
    def id(self):
        return f"{self.spec.name}[{self.defn.name}]"

    def __repr__(self):
        # the id only: the inputs are arrays, and a repr that prints them buries a report
        return f"<Case {self.id}>"

    @property
    def name(self):
        return self.defn.name

    @property
    def params(self):
        return dict(self.defn.params)

    @property
    def tier(self):
        return self.defn.tier

    @property
    def tol(self):
        return self.spec.tol + self.defn.tol

    @property
    def quirk(self):
        """The peer convention this case reproduces (``"compat='keras'"``), or "" for the post's."""
        found = []
        for name, values in self.spec.quirks.items():
            value = self.defn.params.get(name)
            if value is None:
                continue
            if values == "*" or value in tuple(values):
                found.append(f"{name}={value!r}")
        return ", ".join(found)


def case_seed(op_name, case_name):
    """The seed of a case: CRC-32 of its id, the same on every machine and Python version."""
    return zlib.crc32(f"{op_name}[{case_name}]".encode("utf-8"))


def grid(fmt, make_inputs, tier="quick", params=None, **axes):
    """Expand a parameter grid into ``CaseDef`` rows.

    ``axes`` maps axis names to value lists; each grid point ``p`` gives a case named
    ``fmt.format(**p)``, whose inputs are ``make_inputs(rng, **p)`` and whose params are
    ``params(**p)`` (default: no params). Example::

        grid("n{n}-K{K}", lambda rng, n, K: {"x": rng.normal(size=n)},
             params=lambda n, K: {"scale": K}, n=[1, 5], K=[1.0, 10.0])
    """
    rows = []
    keys = list(axes)
    for values in itertools.product(*[axes[k] for k in keys]):
        point = dict(zip(keys, values))
        rows.append(CaseDef(
            name=fmt.format(**point),
            inputs=(lambda rng, _p=point: make_inputs(rng, **_p)),
            params=params(**point) if params else {},
            tier=tier,
        ))
    return rows


def _build(spec, defn):
    seed = case_seed(spec.name, defn.name)
    if callable(defn.inputs):
        inputs = dict(defn.inputs(onp.random.default_rng(seed)))
    else:
        inputs = dict(defn.inputs)
    missing = [n for n in spec.inputs if n not in inputs]
    if missing:
        raise ValueError(f"case {spec.name}[{defn.name}] gives no input for {missing}")
    return Case(spec=spec, defn=defn, inputs=inputs, seed=seed)


_OPS = None


def all_ops():
    """Every registry row, in topic order (``kexue_ref.cases.TOPICS``), as a dict by name."""
    global _OPS
    if _OPS is None:
        from kexue_ref.cases import TOPICS
        ops = {}
        for topic in TOPICS:
            module = importlib.import_module(f"kexue_ref.cases.{topic}")
            for spec in module.OPS:
                if spec.name in ops:
                    raise ValueError(f"op {spec.name} is registered twice")
                ops[spec.name] = spec
        _OPS = ops
    return dict(_OPS)


def get_op(name):
    """The registry row for ``name`` (e.g. ``"smoothing.smooth_max"``)."""
    if isinstance(name, OpSpec):
        return name
    ops = all_ops()
    if name not in ops:
        close = [n for n in ops if name.split(".")[-1] in n]
        hint = f"; did you mean {close}?" if close else ""
        raise KeyError(f"no op named {name!r} in the registry{hint}")
    return ops[name]


def select_ops(pattern="*"):
    """Registry rows whose name matches a glob pattern (``"smoothing.*"``, ``"*softmax*"``)."""
    return [s for n, s in all_ops().items() if fnmatch.fnmatchcase(n, pattern)]


def cases(op, tiers=("quick",)):
    """The concrete cases of an op for the given tier name(s), or "all" for every tier."""
    spec = get_op(op)
    if isinstance(tiers, str):
        tiers = TIERS if tiers == "all" else (tiers,)
    bad = set(tiers) - set(TIERS)
    if bad:
        raise ValueError(f"unknown tier(s) {sorted(bad)}; tiers are {TIERS} or 'all'")
    return [_build(spec, d) for d in spec.cases if d.tier in tiers]
