"""The registered conventions of the six posts' ops: the alternatives the diagnosis tries.

A :class:`Convention` changes the oracle's call, never the candidate's (parameters, inputs or
the reference function); :data:`CONVENTIONS` lists them by op, and
:func:`register_conventions` adds more. The table below records the options documented in
``docs/conventions.md`` and the peers' quirks of ``docs/quirks.md``;
:func:`kexue_ref.testing.diagnose.diagnose` tries them on a failing candidate.
"""
import dataclasses
import importlib
from typing import Any, Callable, Mapping

import numpy as onp

from kexue_ref import registry

__all__ = ["Convention", "CONVENTIONS", "register_conventions", "conventions_for"]


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


# --- the options of the six posts' ops (docs/conventions.md, docs/quirks.md) ----------------
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
                                    note="the author's Keras code, docs/sparse_attention.md"))
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
