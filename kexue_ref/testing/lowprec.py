r"""Acceptance rules for ``check``: the published table, or "k times the naive error".

``rule="table"`` (the default) is the per-dtype table of
:mod:`kexue_ref.testing.tolerances`: elementwise :math:`|a - e| \le atol + rtol\,|e|`.

``rule="relative"`` is the FlashAttention-style rule for low-precision candidates (the
tests of Dao-AILab/flash-attention, ``tests/test_flash_attn.py``, accept a fused kernel whose
error is at most twice that of the plain PyTorch attention run in the same dtype; Dao et
al., *FlashAttention*, arXiv:2205.14135): a candidate run in dtype ``d`` may be off the
float64 oracle by at most ``k`` times the error that the *reference itself* makes when it is
run naively in ``d``, plus a floor.
For each compared array (every value output, every gradient):

.. math:: \max_i |a_i - e_i| \;\le\; k \cdot \max_i |n_i - e_i| \;+\; atol_d

where ``e`` is the float64 oracle, ``a`` the candidate, ``n`` the *naive run* and
:math:`atol_d` the table's absolute tolerance for ``d`` and the kind (values or gradients,
after any ``Tol`` override), which keeps exact or near-exact outputs from demanding a zero
error. The maxima run over the entries where ``e`` is finite; infinities must match exactly,
as in the table rule. The naive run is precisely:

* ``float64``, ``float32``, ``float16``: the reference called on the float64 inputs cast to
  ``d`` (NumPy then computes every operation in ``d``), and autograd's VJP of it with the
  oracle's cotangent cast to ``d``;
* ``bfloat16`` (NumPy has no bfloat16 arithmetic): inputs and cotangent rounded to bfloat16
  (round to nearest even, through float32), the reference and its VJP computed in float32,
  outputs and gradients rounded to bfloat16. This is a bfloat16-storage, float32-compute
  baseline, the way framework kernels accumulate; it is stricter than an op-by-op bfloat16
  run, so raise ``k`` if a candidate rounds to bfloat16 between operations.

When the naive run fails (raises, or is not finite where the oracle is), there is no
meaningful baseline and that array falls back to the table rule; the report says so.
``k = 2`` is FlashAttention's factor.
"""
import warnings

import numpy as onp

from kexue_ref.testing._oracle import autograd_vjp
from kexue_ref.testing.tolerances import tolerance_for

__all__ = ["RULES", "round_to", "naive_outputs", "naive_grads", "tolerances"]

RULES = ("table", "relative")


def _bf16_round(a):
    """Round to the nearest bfloat16 (ties to even), returned as float32."""
    f = onp.array(a, dtype=onp.float32)  # a C-contiguous copy that keeps 0-d arrays 0-d
    bits = f.view(onp.uint32).astype(onp.uint64)
    # add 0x7FFF plus the lowest kept bit, then drop the 16 low bits (round half to even)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(onp.uint32)
    out = rounded.view(onp.float32)
    return onp.where(onp.isnan(f), f, out)


def round_to(array, dtype):
    """A float array rounded to the precision of ``dtype``.

    Parameters
    ----------
    array : array; non-float arrays are returned unchanged.
    dtype : "float64", "float32", "float16" or "bfloat16" (or a torch dtype name).

    Returns
    -------
    array of ``dtype`` (bfloat16: float32 values that are exactly bfloat16 numbers, rounded to
    nearest even through float32, since NumPy has no bfloat16 type).
    """
    a = onp.asarray(array)
    if a.dtype.kind != "f":
        return a
    name = str(dtype).replace("torch.", "")
    if name == "bfloat16":
        return _bf16_round(a)
    return a.astype(onp.dtype(name))


def _compute_dtype(dtype):
    name = str(dtype).replace("torch.", "")
    return "float32" if name == "bfloat16" else name


def naive_outputs(case, dtype):
    """The naive run of the reference in ``dtype`` (see the module doc).

    Parameters
    ----------
    case : registry Case.
    dtype : the candidate's dtype name.

    Returns
    -------
    tuple of arrays, one per output: float outputs rounded to ``dtype`` and widened to
    float64 for comparing.
    """
    spec = case.spec
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # overflow in the cast or the run is the point here
        inputs = {n: round_to(v, dtype) for n, v in case.inputs.items()}
        outs = spec.as_outputs(spec.ref(*[inputs[n] for n in spec.inputs], **case.params))
        return tuple(_back(onp.asarray(o), dtype) for o in outs)


def naive_grads(case, dtype, cotangents):
    """autograd's VJP of the naive run: inputs and cotangents rounded to ``dtype``.

    Parameters
    ----------
    case : registry Case.
    dtype : the candidate's dtype name.
    cotangents : the oracle's cotangents (``make_cotangents``), None for outputs without one.

    Returns
    -------
    tuple of float64 arrays, one per differentiable input (``spec.diff`` order), each rounded
    to ``dtype`` first.
    """
    spec = case.spec
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        inputs = {n: round_to(v, dtype) for n, v in case.inputs.items()}
        cot = tuple(None if u is None else round_to(u, dtype) for u in cotangents)
        g = autograd_vjp(spec.ref, spec, inputs, case.params, cot)
        return tuple(_back(onp.asarray(gi), dtype) for gi in g)


def _back(a, dtype):
    """Round a result of the naive run to ``dtype`` and widen it to float64 for comparing."""
    if a.dtype.kind != "f":
        return a
    return onp.asarray(round_to(a, dtype), dtype=onp.float64)


def _naive_error(naive, expected):
    """max |n − e| over the finite entries of e; inf if infinities or NaN disagree."""
    n = onp.asarray(naive, dtype=onp.float64)
    e = onp.asarray(expected, dtype=onp.float64)
    if n.shape != e.shape:
        return onp.inf
    finite = onp.isfinite(e)
    if onp.any(n[~finite] != e[~finite]) or not onp.all(onp.isfinite(n[finite])):
        return onp.inf
    return float(onp.max(onp.abs(n[finite] - e[finite]), initial=0.0))


def tolerances(rule, k, case, dtype, kind, expected, cotangents=None):
    r"""The tolerance of each compared array under an acceptance rule.

    .. math:: \text{relative:}\quad rtol = 0, \qquad
              atol = k \cdot \max_i |n_i - e_i| + atol_d

    Parameters
    ----------
    rule : "table" or "relative".
    k : float ≥ 1, the factor of the relative rule.
    case : registry Case.
    dtype : the candidate's dtype name.
    kind : "values" (the outputs, in order) or "grads" (the differentiable inputs, in order).
    expected : list of the oracle's arrays, in that order.
    cotangents : the oracle's cotangents (needed for ``kind="grads"``).

    Returns
    -------
    list of (rtol, atol, reason), one per array; ``reason`` is the override's reason (table)
    or states k, the naive error and the floor (relative), or why the table was used.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    rtol, atol, reason = tolerance_for(dtype, kind, case.tol)
    if rule == "table":
        return [(rtol, atol, reason)] * len(expected)
    k = float(k)
    if not onp.isfinite(k) or k < 1:
        raise ValueError(f"k must be a finite number >= 1, got {k}")
    try:
        if kind == "values":
            naive = naive_outputs(case, dtype)
        else:
            naive = naive_grads(case, dtype, cotangents)
    except Exception as exc:  # no baseline: say so and use the table
        why = f"naive {dtype} run of the reference raised {type(exc).__name__}; table rule used"
        return [(rtol, atol, why)] * len(expected)
    out = []
    for n, e in zip(naive, expected):
        if onp.asarray(e).dtype.kind != "f":
            out.append((rtol, atol, reason))
            continue
        err = _naive_error(n, e)
        if not onp.isfinite(err):
            out.append((rtol, atol, f"naive {dtype} run not finite where the oracle is; "
                                    "table rule used"))
            continue
        bound = k * err + atol
        out.append((0.0, bound, f"rule: ≤ {k:g} × naive {dtype} error {err:.3g} + atol {atol:g}"))
    return out
