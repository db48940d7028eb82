"""Table records and their natural scales: what a table holds and how finely it is checked.

:func:`case_record` builds the arrays of one case's table (inputs, parameters, outputs,
cotangents, VJPs, in call order); :func:`natural_scales` gives every float member its natural
scale ``S`` — the size of the terms that round and cancel in it — and the verify tolerance
``VERIFY_TAU · S`` that :mod:`kexue_ref.tables` records in the manifest and applies. The
rule is explained in ``docs/tables.md`` ("The verify rule").
"""
import dataclasses
import warnings

import numpy as onp

from kexue_ref.testing._oracle import make_cotangents, reference_grads, reference_outputs

__all__ = ["TABLE_TIERS", "VERIFY_TAU", "SCALE_ETA", "COMPUTED_KINDS", "case_record", "member_kind",
           "natural_scales"]

TABLE_TIERS = ("quick", "full", "edge")
#: ``verify`` allows ``|regenerated − stored| ≤ VERIFY_TAU · S`` per member, ``S`` its natural
#: scale (:func:`natural_scales`): ~450 ulps of ``S``, ten times below the ``1e-12·S`` change
#: that must be reported.
VERIFY_TAU = 1e-13
#: Relative step of the sensitivity probe of :func:`natural_scales` (2^-36 ≈ 1.5e-11: far
#: above rounding, far below any curvature of the cases).
SCALE_ETA = 2.0 ** -36



def _param_array(value):
    if value is None:
        return onp.zeros(0)
    arr = onp.asarray(value)
    if arr.dtype.kind == "O":
        raise TypeError(f"parameter value {value!r} cannot be stored without pickle")
    return arr


def case_record(case, cotangents=None):
    """The arrays of one case's table, by key, in the documented order (see the module docstring).

    Members come in call order: ``input.*`` in the op's positional order, ``param.*`` in
    keyword order, ``output.*`` in return order, then ``cotangent.*`` and ``grad.*`` (the
    differentiable inputs in call order). ``cotangents`` (by output name) replaces the seeded
    draw, so :func:`verify` can recompute the VJP for exactly the stored cotangents.
    """
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
        if cotangents is None:
            cots = make_cotangents(case, outs)
        else:
            cots = tuple(cotangents.get(name) for name in spec.outputs)
        for name, u in zip(spec.outputs, cots):
            if u is not None:
                rec[f"cotangent.{name}"] = u
        grads = reference_grads(case, cots)
        for name in spec.diff:
            rec[f"grad.{name}"] = grads[name]
    for key, arr in rec.items():
        if arr.dtype.kind == "O":
            raise TypeError(f"{case.id}: {key} has dtype object; tables hold plain arrays only")
    return rec


def member_kind(key):
    """``"input"``, ``"param"``, ``"output"``, ``"cotangent"``, ``"grad"`` (the part before the dot)."""
    return key.split(".", 1)[0]


#: Members that the reference computes (everything else is data the case generator draws).
COMPUTED_KINDS = ("output", "grad", "jvp", "hvp")


def _finite_max(arr):
    a = onp.abs(onp.asarray(arr, dtype=onp.float64))
    a = a[onp.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def _with_inputs(case, inputs):
    return dataclasses.replace(case, inputs=dict(inputs))


def _evaluate(case, inputs, cotangents):
    """The computed members for given inputs and cotangents (a record restricted to them)."""
    rec = case_record(_with_inputs(case, inputs), cotangents=cotangents)
    return {k: v for k, v in rec.items() if member_kind(k) in COMPUTED_KINDS}


def _sensitivity(case, rec):
    """``max |Δm| / η`` per computed member when the inputs move by a relative ``η``.

    Every differentiable float input and every cotangent is multiplied by ``1 + η·r`` with
    random signs ``r`` (two draws, seeded by the case), at ``η = SCALE_ETA`` and ``η/4``.
    To first order ``Δm ≈ η·J(x∘r)``: the size of the terms ``∂m/∂x_j · x_j`` that meet
    (and cancel) in the member, which is what rounding at the level of the inputs moves.
    An entry counts only where the response is smooth (``|Δm(η)| ≥ 2.5·|Δm(η/4)| > 0``);
    a jump (a tie or threshold crossed) would otherwise pass for a huge slope.
    """
    spec = case.spec
    diff = [n for n in spec.diff if rec[f"input.{n}"].dtype.kind == "f"]
    cot_keys = [k for k in rec if member_kind(k) == "cotangent"]
    base_inputs = {n: rec[f"input.{n}"] for n in spec.inputs}
    base_cots = {k.split(".", 1)[1]: rec[k] for k in cot_keys}
    base = {k: v for k, v in rec.items() if member_kind(k) in COMPUTED_KINDS}
    sens = {k: 0.0 for k in base}
    if not diff:
        return sens, "no differentiable input"
    rng = onp.random.default_rng([case.seed, 3])
    status = "ok"
    for _ in range(2):
        signs = {n: rng.choice([-1.0, 1.0], size=onp.shape(base_inputs[n])) for n in diff}
        csigns = {n: rng.choice([-1.0, 1.0], size=onp.shape(u)) for n, u in base_cots.items()}
        moved = []
        for eta in (SCALE_ETA, SCALE_ETA / 4):
            inputs = dict(base_inputs)
            for n in diff:
                inputs[n] = base_inputs[n] * (1.0 + eta * signs[n])
            cots = {n: u * (1.0 + eta * csigns[n]) for n, u in base_cots.items()}
            try:
                with onp.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    moved.append(_evaluate(case, inputs, cots or None))
            except (ValueError, TypeError, ArithmeticError):
                status = "a perturbed input left the op's domain"
                break
        if len(moved) < 2:
            continue
        for key, m0 in base.items():
            if m0.dtype.kind != "f" or key not in moved[0] or key not in moved[1]:
                continue
            with onp.errstate(all="ignore"):
                d1 = onp.abs(moved[0][key] - m0)
                d2 = onp.abs(moved[1][key] - m0)
            smooth = onp.isfinite(d1) & onp.isfinite(d2) & (d2 > 0) & (d1 >= 2.5 * d2)
            if smooth.any():
                sens[key] = max(sens[key], float(d1[smooth].max()) / SCALE_ETA)
    return sens, status


def natural_scales(case, rec):
    """The natural scale ``S`` of every float member and its verify tolerance ``VERIFY_TAU·S``.

    * data (``input.*``, ``param.*``, ``cotangent.*``): ``S`` = the largest finite |entry|;
    * computed members (``output.*``, ``grad.*``): ``S = max(max|m|, sensitivity)``, where
      the sensitivity (:func:`_sensitivity`) is the size of the terms that round and cancel.
      Where nothing cancels the two agree; where the result is a cancellation (a penalty
      at its minimum, a gradient that sums to ~0) the sensitivity is the larger, so rounding
      noise around an exact zero passes on every machine while a change of
      ``1e-12·S`` is still reported.

    Returns ``{member: {"scale": S, "atol": VERIFY_TAU·S, "reason": ...}}``.
    """
    sens, status = _sensitivity(case, rec)
    declared = dict(case.defn.scales)
    out = {}
    for key, arr in rec.items():
        if arr.dtype.kind not in "fc":
            continue
        size = _finite_max(arr)
        kind = member_kind(key)
        if key in declared and kind in COMPUTED_KINDS:
            fn, why = declared[key]
            scale = max(float(fn(rec)), size, sens.get(key, 0.0))
            out[key] = {"scale": scale, "atol": float(VERIFY_TAU * scale), "reason": f"declared: {why}"}
            continue
        if kind not in COMPUTED_KINDS:
            scale, reason = size, "data: its largest |entry|"
        elif sens.get(key, 0.0) > size:
            scale = sens[key]
            reason = (f"cancellation: the terms are {scale / size:.3g}x the result" if size > 0
                      else "cancellation: the result is zero, its terms are not")
            reason += " (sensitivity to a relative change of the inputs)"
        else:
            scale = size
            reason = "its largest |entry| (no cancellation beyond it)"
            if status != "ok":
                reason += f"; sensitivity not measured: {status}"
        out[key] = {"scale": float(scale), "atol": float(VERIFY_TAU * scale), "reason": reason}
    return out
