"""Convention diagnosis: when a candidate fails, which documented convention does it follow?

Many mismatches are not bugs but a different convention: 1-based positions, a temperature
that divides instead of multiplies, the ``-1e9`` mask constant, the official ON-LSTM master
input gate, the Keras sparse-attention code, the other DGCNN gate placement. Each op can list
such alternatives in :data:`CONVENTIONS`; :func:`diagnose` re-runs the oracle with each of
them on the failing cases and says which one the candidate matches.

>>> import numpy as np
>>> from kexue_ref.testing import check
>>> def soft_argmax_1based(x, scale=1.0, axis=-1, base=0):   # counts from 1 like the post
...     p = np.exp(scale * x - np.max(scale * x, axis=axis, keepdims=True))
...     p = p / p.sum(axis=axis, keepdims=True)
...     return np.sum(np.arange(1, x.shape[axis] + 1) * np.moveaxis(p, axis, -1), axis=-1)
>>> report = check(soft_argmax_1based, "smoothing.soft_argmax")
>>> report.passed
False
>>> d = diagnose(soft_argmax_1based, "smoothing.soft_argmax", report=report)
>>> d.matches[0].convention.label
'base=1'
>>> print(d.lines()[0])
diagnosis: the candidate matches the oracle called with base=1 (the post's 1-based positions) on 2/2 failing cases

An alternative (:class:`Convention`) changes the oracle's call, never the candidate's:
``params`` override keyword arguments (a value, or a callable of the case's parameters);
``inputs`` maps the case's inputs to the ones the oracle gets (e.g. an inverted mask); ``ref``
replaces the reference function (``"module:function"`` strings are imported when needed).
Alternatives for ops that are not in the registry, or that the reference does not accept
(it raises on the changed call), are skipped, so options can be listed before their rows exist.
"""
import dataclasses
import importlib
from typing import Any, Callable, Mapping

import numpy as onp

from kexue_ref import registry
from kexue_ref.testing._check import (
    compare, make_cotangents, reference_outputs, autograd_vjp)

__all__ = ["Convention", "CONVENTIONS", "register_conventions", "conventions_for",
           "diagnose", "Diagnosis", "Match"]


@dataclasses.dataclass(frozen=True)
class Convention:
    """One documented alternative convention of an op.

    label : short name shown in reports, e.g. ``"base=1"``.
    params : keyword arguments to override; a value may be a callable ``f(params) -> value``
        of the case's parameters (e.g. a temperature ``1 / scale``).
    inputs : None, or a callable ``f(inputs) -> inputs`` (a dict of NumPy arrays).
    ref : None (the op's reference), a callable, or a ``"module:function"`` string.
    note : what the alternative is and who uses it.
    """
    label: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inputs: Callable | None = None
    ref: Callable | str | None = None
    note: str = ""

    def reference(self, spec):
        if self.ref is None:
            return spec.ref
        if isinstance(self.ref, str):
            module, attr = self.ref.split(":")
            return getattr(importlib.import_module(module), attr)
        return self.ref

    def apply(self, case):
        """The case's (inputs, params) as the alternative oracle is called with them."""
        params = dict(case.params)
        for key, value in self.params.items():
            params[key] = value(case.params) if callable(value) else value
        inputs = dict(case.inputs)
        if self.inputs is not None:
            inputs = dict(self.inputs(dict(case.inputs)))
        return inputs, params

    def text(self):
        return f"{self.label} ({self.note})" if self.note else self.label


def _as_convention(alt):
    if isinstance(alt, Convention):
        return alt
    if isinstance(alt, Mapping):
        label = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:g}"
                          if isinstance(v, float) else f"{k}={v}" for k, v in alt.items())
        return Convention(label=label, params=dict(alt))
    raise TypeError(f"a convention is a Convention or a dict of parameters, got {type(alt).__name__}")


def _temperature(params):
    # the scale K multiplies the scores; a temperature T divides them: K = 1 / T
    return 1.0 / params.get("scale", 1.0)


def _invert_mask(inputs):
    # True = "masked out" instead of D4's True = "may attend"
    out = dict(inputs)
    out["mask"] = ~onp.asarray(out["mask"], dtype=bool)
    return out


def _flip(key):
    return _flip_default(key, False)


def _flip_default(key, default):
    return lambda params: not params.get(key, default)


_SCALE_DIVIDES = Convention(
    "scale divides", {"scale": _temperature},
    note="a temperature T = 1/K dividing the scores, as TF's spatial_softmax")
_MASK_INVERTED = Convention(
    "mask inverted", inputs=_invert_mask, note="True means 'masked out' (D4: True = may attend)")

#: op name -> alternatives (``Convention``). Extend with :func:`register_conventions`.
CONVENTIONS: dict = {}


def register_conventions(op, *alternatives):
    """Add alternative conventions for an op (the op need not be registered yet).

    Parameters
    ----------
    op : str, the registry name, e.g. ``"on_lstm.cell"``.
    *alternatives : :class:`Convention` objects or plain dicts of parameters, e.g.
        ``{"master_input": "paper"}`` (labelled ``"master_input='paper'"``). An alternative
        whose label is already listed for the op is not added twice.

    Returns
    -------
    list of Convention, the op's alternatives after the addition (the live list of
    :data:`CONVENTIONS`).
    """
    lst = CONVENTIONS.setdefault(str(op), [])
    for alt in alternatives:
        conv = _as_convention(alt)
        if all(c.label != conv.label for c in lst):
            lst.append(conv)
    return lst


def conventions_for(op):
    """The registered alternatives of an op.

    Parameters
    ----------
    op : str or OpSpec.

    Returns
    -------
    list of Convention (a copy), empty when none is registered.
    """
    name = op.name if isinstance(op, registry.OpSpec) else str(op)
    return list(CONVENTIONS.get(name, ()))


# --- the options of the six posts' ops (SPEC §2-§7 "known divergences", ANCHORS §4) --------
for _op in ("smooth_max", "smooth_min", "soft_onehot", "smooth_abs", "soft_relu"):
    register_conventions(f"smoothing.{_op}", _SCALE_DIVIDES)
register_conventions("smoothing.soft_argmax",
                     Convention("base=1", {"base": 1}, note="the post's 1-based positions"),
                     _SCALE_DIVIDES)
for _op in ("smooth_f1", "smooth_precision", "smooth_recall"):
    register_conventions(f"smoothing.{_op}",
                         Convention("average='macro'", {"average": "macro"},
                                    note="per-label scores averaged, as multi-label soft F1"),
                         Convention("average='micro'", {"average": "micro"},
                                    note="one score over every entry, the post's form"))
register_conventions("smoothing.smooth_precision",
                     Convention("FP and FN swapped", ref="kexue_ref.smoothing:smooth_recall",
                                note="computes the recall"))
register_conventions("smoothing.smooth_recall",
                     Convention("FP and FN swapped", ref="kexue_ref.smoothing:smooth_precision",
                                note="computes the precision"))
register_conventions("numerics.masked_softmax",
                     Convention("fill=-1e9", {"fill": -1e9},
                                note="masked scores replaced by -1e9: fully masked rows uniform"),
                     _MASK_INVERTED)
_ON_LSTM = ("master_gates", "cell", "cell_official", "layer", "layer_official",
            "layer_dropconnect", "layer_official_dropconnect", "stack2")
for _op in _ON_LSTM:
    register_conventions(f"on_lstm.{_op}",
                         Convention("master_input='paper'", {"master_input": "paper"},
                                    note="the official code's 1 - cumax (exclusive) master input gate"),
                         Convention("master_input='su'", {"master_input": "su"},
                                    note="Su's reverse cumsum (inclusive) master input gate"))
for _op in ("cell", "layer_dropconnect"):
    register_conventions(f"on_lstm.{_op}",
                         Convention("dropconnect='official'", {"dropconnect": "official"},
                                    note="mask without 1/(1-p) rescaling, as Ordered-Neurons"),
                         Convention("dropconnect='inverted'", {"dropconnect": "inverted"},
                                    note="mask with 1/(1-p) rescaling, as Keras dropout"))
for _op in ("soft_level", "hard_master_gates", "partitioned_update"):
    register_conventions(f"on_lstm.{_op}",
                         Convention("base=1", {"base": 1}, note="the post's 1-based levels"))
for _op in ("dgcnn_block", "dgcnn_stack"):
    register_conventions(f"dgcnn.{_op}",
                         Convention("gate='keras'", {"gate": "keras"},
                                    note="σ on the identity branch, as bojone/kg-2019"),
                         Convention("gate='post'", {"gate": "post"},
                                    note="σ on the convolution branch, the post's form"))
register_conventions("dgcnn.multihead_attention",
                     Convention("compat='keras'", {"compat": "keras"},
                                note="the author's Keras attention (additive -1e10, rows unzeroed)"))
for _mode, _note in (("exact", "-log(-log u), the post"), ("keras", "-log(-log(u + 1e-7) + 1e-7), Su's code"),
                     ("clip", "u clamped to [eps, 1 - eps], as torch.distributions"),
                     ("tiny", "u floored at finfo.tiny, as TFP / JAX")):
    register_conventions("reparam.gumbel_from_uniform", Convention(f"mode='{_mode}'", {"mode": _mode}, note=_note))
register_conventions("reparam.gumbel_softmax",
                     Convention("tau multiplies", {"tau": lambda p: 1.0 / p.get("tau", 1.0)},
                                note="τ multiplying instead of dividing the perturbed logits"),
                     Convention("hard flipped", {"hard": _flip("hard")},
                                note="straight-through on/off"))
for _op in ("atrous_attention", "local_attention", "sparse_attention"):
    register_conventions(f"sparse_attention.{_op}",
                         Convention("compat='keras'", {"compat": "keras"},
                                    note="the author's Keras code (SPEC §7.5)"))
for _op in ("attention", "atrous_attention", "local_attention", "sparse_attention",
            "atrous_attention_blocked", "local_attention_blocked", "sparse_attention_blocked"):
    register_conventions(f"sparse_attention.{_op}",
                         Convention("causal flipped", {"causal": _flip("causal")},
                                    note="causal when the case is not, or the reverse"))
register_conventions("sparse_attention.attention",
                     Convention("fill=-1e9", {"fill": -1e9},
                                note="masked scores replaced by -1e9: fully masked rows uniform"))
register_conventions("orthogonality.som_penalty",
                     Convention("pairs='unordered'", {"pairs": "unordered"},
                                note="each pair i < j counted once"),
                     Convention("pairs='ordered'", {"pairs": "ordered"},
                                note="each pair counted twice, (i, j) and (j, i)"))
register_conventions("orthogonality.biggan_ortho_grad",
                     Convention("mode='default'", {"mode": "default"},
                                note="BigGAN's default_ortho (diagonal kept)"),
                     Convention("mode='ortho'", {"mode": "ortho"},
                                note="BigGAN's ortho (diagonal masked)"))


def _other_filters(params):
    return "rows" if params.get("filters", "columns") == "columns" else "columns"


for _op in ("biggan_ortho_grad", "orthonormal_penalty", "offdiag_penalty"):
    register_conventions(f"orthogonality.{_op}",
                         Convention("filters flipped", {"filters": _other_filters},
                                    note="filters as rows instead of columns, or the reverse"))
register_conventions("orthogonality.orthonormal_penalty",
                     Convention("squared flipped", {"squared": _flip_default("squared", True)},
                                note="the norm squared or not"))


# ---------------------------------------------------------------------------
# diagnose
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Match:
    """How one alternative fared on the failing cases."""
    convention: Convention
    matched: list          # case ids the candidate matches under the alternative
    tried: list            # case ids where the alternative could be evaluated
    skipped: list          # case ids where the alternative oracle raised (not applicable)

    @property
    def complete(self):
        return bool(self.tried) and len(self.matched) == len(self.tried)


@dataclasses.dataclass
class Diagnosis:
    """The result of :func:`diagnose`: alternatives that explain every failing case first."""
    op: str
    failing: list                    # the failing case ids that were diagnosed
    results: list                    # Match per alternative, in registration order

    @property
    def matches(self):
        """The alternatives that the candidate matches on every diagnosed case."""
        return [m for m in self.results if m.complete]

    def lines(self):
        if not self.failing:
            return ["diagnosis: no failing value case to diagnose"]
        if not self.results:
            return [f"diagnosis: {self.op} has no registered convention options "
                    "(kexue_ref.testing.diagnose.register_conventions)"]
        out = []
        for m in self.matches:
            out.append(f"diagnosis: the candidate matches the oracle called with "
                       f"{m.convention.text()} on {len(m.matched)}/{len(m.tried)} failing cases")
        partial = [m for m in self.results if m.matched and not m.complete]
        for m in partial:
            rest = [_short(i) for i in m.tried if i not in m.matched]
            more = f", +{len(rest) - 3} more" if len(rest) > 3 else ""
            out.append(f"diagnosis: partial match with {m.convention.text()} on "
                       f"{len(m.matched)}/{len(m.tried)} failing cases (not on "
                       f"{', '.join(rest[:3])}{more})")
        if not out:
            tried = "; ".join(m.convention.label for m in self.results)
            out.append(f"diagnosis: no registered convention of {self.op} explains the failures "
                       f"(tried: {tried})")
        return out

    def __str__(self):
        return "\n".join(self.lines())


def _short(case_id):
    """The case name of a case id ``op[name]``."""
    return case_id[case_id.index("[") + 1:-1] if "[" in case_id else case_id


def _alt_case(case, inputs, params):
    defn = dataclasses.replace(case.defn, params=params)
    return registry.Case(spec=case.spec, defn=defn, inputs=inputs, seed=case.seed)


def diagnose(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
             report=None, conventions=None):
    """Say which registered convention, if any, explains a candidate's failures.

    Parameters
    ----------
    candidate, op, cases, grads, dtype, adapter : as for :func:`kexue_ref.testing.check`.
    report : a :class:`~kexue_ref.testing.Report` of the same check, to reuse its verdicts
        (otherwise ``check`` is run first).
    conventions : alternatives to try instead of the registered ones (``Convention`` or dicts).

    Returns
    -------
    Diagnosis. For every failing case that is not an error case, the candidate is run once
    (values, and its VJP when ``grads`` is given) and compared, with the table tolerance of
    ``dtype``, to the oracle re-run under each alternative. An alternative "matches" a case
    when every compared array agrees.
    """
    from kexue_ref.testing._check import check
    from kexue_ref.testing.adapters import get_adapter
    from kexue_ref.testing.tolerances import tolerance_for

    spec = registry.get_op(op)
    adapter = get_adapter(adapter)
    if report is None:
        report = check(candidate, spec, cases=cases, grads=grads, dtype=dtype, adapter=adapter)
    alts = ([_as_convention(a) for a in conventions] if conventions is not None
            else conventions_for(spec))
    failing_ids = {r.case_id for r in report.failures}
    failing = [c for c in registry.cases(spec, report.tiers)
               if c.id in failing_ids and c.tier != "error"]
    results = [Match(a, [], [], []) for a in alts]
    if not alts or not failing:
        return Diagnosis(spec.name, [c.id for c in failing], results)
    run = adapter.wrap(candidate) if hasattr(adapter, "wrap") else candidate
    for case in failing:
        # the table tolerance of the dtype, with the case's overrides
        vtol = tolerance_for(dtype, "values", case.tol)
        gtol = tolerance_for(dtype, "grads", case.tol)
        try:
            args = [adapter.to_candidate(case.inputs[n], dtype) for n in spec.inputs]
            got = [adapter.to_numpy(o) for o in spec.as_outputs(run(*args, **case.params))]
        except Exception:
            continue  # a candidate that raises matches no convention
        cand_g = None
        if grads is not None and spec.diff:
            cot = make_cotangents(case, reference_outputs(case))
            try:
                cand_g = [adapter.to_numpy(g) for g in adapter.vjp(run, spec, case, dtype, cot, grads)]
            except Exception:
                cand_g = None
        for m in results:
            conv = m.convention
            try:
                inputs, params = conv.apply(case)
                alt = _alt_case(case, inputs, params)
                ref = conv.reference(spec)
                expected = [onp.asarray(o) for o in spec.as_outputs(spec.call(ref, alt))]
                alt_g = None
                if cand_g is not None:
                    alt_g = autograd_vjp(ref, spec, inputs, params, cot)
            except Exception:
                m.skipped.append(case.id)
                continue
            m.tried.append(case.id)
            ok = len(expected) == len(got) and all(
                compare(g, e, vtol[0], vtol[1]).passed for g, e in zip(got, expected))
            if ok and alt_g is not None:
                ok = all(compare(g, onp.asarray(e), gtol[0], gtol[1]).passed
                         for g, e in zip(cand_g, alt_g))
            if ok:
                m.matched.append(case.id)
    return Diagnosis(spec.name, [c.id for c in failing], results)
