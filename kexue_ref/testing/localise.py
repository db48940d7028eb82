r"""Localisation: *where* a failing output's error lives, along each axis of the op.

A convention (``kexue_ref.testing.diagnose``) names a mismatch that is a documented choice;
:func:`localise` names one that is a structural bug. Given one compared member of one failing
case (``"value out"``, ``"grad k"``, …), the candidate's array, the oracle's and the boolean
array of entries outside the tolerance, it returns at most three one-line phrases such as

* ``"the candidate matches the oracle with keys at distance W+1 = 4 from the query also
  allowed: a window one too wide (|i − j| ≤ W+1)"`` (a hypothesis, re-run on the oracle),
* ``"only fully masked rows (5 of 10 query rows); the candidate returns NaN there"``,
* ``"only query positions ≥ T−3 = 10 (the last 3 = W)"``, ``"only level 0"``,
  ``"only the last time step (t = T−1 = 6)"``,
* ``"the error grows with the time step (×40 from the first to the last quarter)"``,
* ``"all entries (52/52): no structure along batch, head, query position, feature"``
  when nothing structural is found.

How it works, in order (each step adds at most one line):

1. **Hypotheses.** Cheap alternatives are tried and the first the candidate matches (within the
   comparison's tolerance when ``rtol``/``atol`` are given, else to 1e-3 of its error) is named:
   for the attention family a perturbed allowed-mask (a window one wider or narrower, no
   diagonal key, padded keys attended, the last partial group padded with attended zeros),
   evaluated with the dense oracle :func:`kexue_ref.sparse_attention.attention` (≤ 5 oracle
   evaluations, VJPs for gradient members); for every op a constant offset, a constant factor
   (a flipped sign), transposed last axes and a shift by one along a named axis (no oracle).
2. **Masked classes** from the case's inputs and parameters: fully masked or padded query rows
   (attention, masked softmax), padded or never-attended keys (gradients of k, v), padded
   time steps and fully padded samples (DGCNN), with what the candidate returns there
   (NaN, the uniform average).
3. **Axes.** The projection of ``bad`` on each named axis (:func:`axis_names`), described when
   it is a simple set: one index (the first, the last), a run at either end (related to the
   case's R, W, block or chunk: "the last partial group, T mod R = 1"), both ends, a residue
   class modulo such a parameter, or whole ON-LSTM levels. A scattered set gets no label.
4. **Growth** of the per-position error along a position axis that is bad everywhere.
5. Otherwise ``"all entries"`` / ``"scattered"`` with the fraction, naming no structure.

Deterministic (no random draw), and cheap: no candidate call, a few small oracle calls.
The axis table and the generic statistics live in ``kexue_ref.testing._localise_axes``, the
attention family's hypotheses in ``kexue_ref.testing._localise_attention``.

>>> import numpy as np
>>> from kexue_ref import registry
>>> case = [c for c in registry.cases("numerics.softmax") if c.name == "n5"][0]
>>> e = np.asarray(case.spec.ref(case.inputs["x"], **case.params))
>>> a = 2.0 * e                                     # a factor-2 bug
>>> localise(case, "value out", a, e, mismatch_mask(a, e, 1e-12, 1e-13))[0]
'the candidate is 2 × the oracle everywhere (a constant factor)'
"""
import numpy as onp

from kexue_ref import registry
from kexue_ref.testing._localise_attention import (  # noqa: F401  (importable from here)
    _attention_classes, _attention_hypotheses, _attention_setup, _bool_or_none, _dense,
    _hypothesis_values, _padded)
from kexue_ref.testing._localise_axes import (  # noqa: F401
    _ATTENTION, _DGCNN_SEQ, _LABELS, _ON_LSTM_CELL, _ON_LSTM_LAYER, _POSITIONAL, _SOFTMAX_LIKE,
    _abs_diff, _axis_phrases, _describe, _generic_hypotheses, _growth, _level_chunk, _Matcher,
    _parse_what, _relate, _sequence_classes, _softmax_classes, _symbols, axis_names,
    mismatch_mask)

__all__ = ["localise", "axis_names", "mismatch_mask"]


# ---------------------------------------------------------------------------
# localise
# ---------------------------------------------------------------------------

def _check_args(case, what, actual, expected, bad):
    if not isinstance(case, registry.Case):
        raise TypeError(f"case must be a kexue_ref.registry.Case, got {type(case).__name__}")
    if not isinstance(what, str):
        raise TypeError(f"what must be a str such as 'value out' or 'grad q', got {type(what).__name__}")
    a = onp.asarray(actual)
    e = onp.asarray(expected)
    m = onp.asarray(bad)
    if a.dtype.kind not in "fiub" or e.dtype.kind not in "fiub":
        raise TypeError(f"actual and expected must be real numeric arrays, got {a.dtype} and {e.dtype}")
    if a.shape != e.shape:
        raise ValueError(f"actual of shape {a.shape} and expected of shape {e.shape} differ")
    if m.dtype != bool:
        raise TypeError(f"bad must be a boolean array, got dtype {m.dtype}")
    if m.shape != e.shape:
        raise ValueError(f"bad of shape {m.shape} does not match expected of shape {e.shape}")
    return a.astype(onp.float64), e.astype(onp.float64), m


def localise(case, what, actual, expected, bad, *, rtol=None, atol=None, max_lines=3):
    """Summarise where the error of one failing member of one case lives.

    Parameters
    ----------
    case : kexue_ref.registry.Case, the failing case.
    what : str, the compared member as ``check`` names it: ``"value <output>"`` or
        ``"grad <input>"`` (e.g. ``"value out"``, ``"grad k"``).
    actual, expected : real arrays of the same shape, the candidate's and the float64 oracle's.
    bad : bool array of that shape, True where the entry is outside the tolerance
        (:func:`mismatch_mask` computes it as ``check`` does).
    rtol, atol : the comparison's tolerance (optional): a hypothesis explains the candidate
        when ``|a − h| ≤ atol + rtol·|h|`` everywhere; without them, when ``max|a − h|`` is
        at most 1e-3 of the candidate's largest finite error.
    max_lines : int ≥ 1, the most lines returned (default 3).

    Returns
    -------
    list of str, one-line phrases (no member name, no trailing period), most specific first;
    ``[]`` when ``bad`` has no True entry. A phrase names a structure only when the evidence
    is exact (a hypothesis met to the tolerance, or a bad set confined to a simple index set
    or masked class); otherwise the single line says ``"all entries"`` or ``"scattered"``.

    Notes
    -----
    The op families and axis names are those of :func:`axis_names`; see the module docstring
    and ``docs/localisation.md`` for the steps. At most five oracle evaluations (VJPs for a
    gradient member) are made, all on the case's own float64 inputs.
    """
    a, e, bad = _check_args(case, what, actual, expected, bad)
    if not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError(f"max_lines must be an int >= 1, got {max_lines!r}")
    if not bad.any():
        return []
    # a candidate's NaN and inf entries are data here, not a numerical accident to warn about
    with onp.errstate(all="ignore"):
        return _localise(case, what, a, e, bad, rtol, atol)[:max_lines]


def _localise(case, what, a, e, bad, rtol, atol):
    """The body of :func:`localise` on checked float64 arrays: every line, most specific first."""
    kind, member = _parse_what(what)
    names = axis_names(case, what, e.ndim)
    match = _Matcher(a, e, bad, rtol, atol)
    ctx = _symbols(case)
    lines = []

    # 1. hypotheses: the attention family's masks first, then the generic ones
    setup = _attention_setup(case) if names is not None and case.spec.name in _ATTENTION else None
    found = None
    if setup is not None:
        for phrase, fn in _attention_hypotheses(setup):
            try:
                h = _hypothesis_values(case, kind, member, fn)
            except Exception:       # an alternative the oracle refuses explains nothing
                continue
            if match(onp.asarray(h)):
                found = phrase
                break
    if found is None:
        found = _generic_hypotheses(names, a, e, bad, match)
    if found:
        lines.append(found)

    # 2. masked classes
    if setup is not None:
        cls = _attention_classes(setup, kind, member, a, bad)
    else:
        cls = _softmax_classes(case, names, a, bad) or _sequence_classes(case, names, bad)
    if cls:
        lines.append(cls)

    # 3. axes
    axis_kinds = names if names is not None else ["axis"] * e.ndim
    axes = _axis_phrases(case, axis_kinds, bad, ctx)
    if axes:
        lines.append("; ".join(axes))

    # 4. growth along a position axis
    if names is not None and not axes:
        grow = _growth(names, a, e, bad)
        if grow:
            lines.append(grow)

    nonfinite = int(onp.sum(bad & ~onp.isfinite(a)))
    if nonfinite and not any("NaN" in line for line in lines):
        lines.append(f"the candidate returns NaN or inf at {nonfinite} of {int(bad.sum())} "
                     f"mismatched entries")

    # 5. nothing structural
    if not lines:
        n_bad, size = int(bad.sum()), bad.size
        along = ", ".join(_LABELS.get(k, (f"axis {i}",))[0] for i, k in enumerate(axis_kinds))
        along = along or "the array"
        if n_bad == size:
            lines.append(f"all entries ({n_bad}/{size}): no structure along {along}")
        else:
            lines.append(f"scattered: {n_bad}/{size} entries ({100 * n_bad / size:.0f}%), "
                         f"no structure along {along}")
    return lines
