"""The oracle side of a check: the float64 reference's outputs, the seeded cotangents, its VJP.

:func:`reference_outputs` runs the reference in float64, :func:`make_cotangents` draws the
seeded cotangent (the same one the tables store), :func:`autograd_vjp` takes autograd's VJP
of any function with the signature of an op, and :func:`reference_grads` applies it to the
reference. Shared by the check loop, the adapters, the low-precision rule, the localisation,
the convention diagnosis and the tables; it imports nothing of ``kexue_ref`` (a case carries
its own registry row).
"""
import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.tracer import getval

__all__ = ["reference_outputs", "make_cotangents", "autograd_vjp", "reference_grads"]


def reference_outputs(case):
    """The reference's outputs for a case, run on the float64 inputs, as a tuple of arrays."""
    spec = case.spec
    return tuple(onp.asarray(o) for o in spec.as_outputs(spec.call(spec.ref, case)))


def _diff_output_mask(spec, outputs):
    names = spec.outputs
    wanted = set(spec.diff_outputs) if spec.diff_outputs is not None else set(names)
    return [n in wanted and onp.asarray(o).dtype.kind == "f" for n, o in zip(names, outputs)]


def make_cotangents(case, outputs):
    """The seeded cotangent for each differentiable output (None for the others).

    Drawn from ``default_rng([case.seed, 1])`` as standard normals of each output's shape,
    in output order, then set to 0 where the output is not finite (an all ``-inf`` slice of
    ``logsumexp``, say), so no VJP ever multiplies an infinity. The tables store it, so a
    framework can reuse it bit for bit.
    """
    rng = onp.random.default_rng([case.seed, 1])
    mask = _diff_output_mask(case.spec, outputs)
    cots = []
    for o, m in zip(outputs, mask):
        if not m:
            cots.append(None)
            continue
        u = rng.standard_normal(onp.shape(o))
        cots.append(onp.where(onp.isfinite(o), u, 0.0))
    return tuple(cots)


def autograd_vjp(fn, spec, inputs, params, cotangents):
    """VJP of ``fn`` w.r.t. ``spec.diff`` by autograd: ∇ of Σ_k <u_k, out_k>, as a tuple."""
    if not spec.diff:
        return ()

    def phi(diff_values):
        kw = dict(inputs)
        kw.update(zip(spec.diff, diff_values))
        outs = spec.as_outputs(fn(*[kw[n] for n in spec.inputs], **params))
        total = 0.0
        for o, u in zip(outs, cotangents):
            if u is not None:
                # Σ <u, out>, skipping non-finite outputs (their cotangent is 0 by construction)
                total = total + np.sum(np.where(onp.isfinite(getval(o)), o, 0.0) * u)
        return total

    return tuple(grad(phi)(tuple(inputs[n] for n in spec.diff)))


def reference_grads(case, cotangents):
    """autograd's VJP of the reference (float64) for the case's cotangents, by input name."""
    spec = case.spec
    grads = autograd_vjp(spec.ref, spec, case.inputs, case.params, cotangents)
    return dict(zip(spec.diff, (onp.asarray(g) for g in grads)))
