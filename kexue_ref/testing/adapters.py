"""Adapters: how ``check`` hands arrays to a candidate and gets values and gradients back.

An adapter has three methods:

* ``to_candidate(array, dtype)``: a NumPy input as the candidate wants it (floating arrays
  cast to ``dtype``; integer and boolean arrays unchanged);
* ``to_numpy(x)``: a candidate output or gradient as a NumPy array;
* ``vjp(candidate, spec, case, dtype, cotangents, grads)``: the candidate's gradients w.r.t.
  ``spec.diff`` for the oracle's cotangents, in order;
* optionally ``dtype_of(x)``: the dtype name of a candidate array as the candidate made it
  (``"bfloat16"``, ``"float32"``, ``"int64"``...), before ``to_numpy`` widens anything; ``check``
  compares it with the requested dtype.

A candidate whose result has the wrong form (the wrong number of outputs or gradients, not a
tensor) makes ``vjp`` raise :class:`ResultMismatch`, which ``check`` reports as a mismatch of
the candidate's result rather than as an exception the candidate raised.

:class:`NumpyAdapter` is the default. Framework adapters (torch, jax) are looked up by name in
:data:`FRAMEWORK_ADAPTERS` and imported only when asked for, so neither framework is needed
to use the rest of the library.
"""
import importlib

import numpy as onp

from kexue_ref.testing._oracle import autograd_vjp

__all__ = ["NumpyAdapter", "get_adapter", "call_user_grads", "FRAMEWORK_ADAPTERS",
           "ResultMismatch"]


class ResultMismatch(ValueError):
    """The candidate returned results of the wrong form (count, kind): its mismatch, not a crash."""

#: name -> "module:attribute" of adapters living in optional modules (filled by the
#: frameworks issue; importing them imports the framework).
FRAMEWORK_ADAPTERS = {
    "torch": "kexue_ref.testing.adapters_torch:TorchAdapter",
    "jax": "kexue_ref.testing.adapters_jax:JaxAdapter",
}


class NumpyAdapter:
    """Candidates that take and return NumPy arrays (or anything ``numpy.asarray`` accepts)."""

    name = "numpy"

    def to_candidate(self, array, dtype):
        array = onp.asarray(array)
        if array.dtype.kind == "f":
            return array.astype(onp.dtype(str(dtype)))
        return array

    def to_numpy(self, x):
        return onp.asarray(x)

    def dtype_of(self, x):
        """The dtype name of a candidate output (a Python float is float64)."""
        return onp.asarray(x).dtype.name

    def vjp(self, candidate, spec, case, dtype, cotangents, grads):
        inputs = {n: self.to_candidate(case.inputs[n], dtype) for n in spec.inputs}
        cot = tuple(None if u is None else self.to_candidate(u, dtype) for u in cotangents)
        if grads == "autograd":
            return autograd_vjp(candidate, spec, inputs, case.params, cot)
        if not callable(grads):
            raise TypeError("grads must be None, 'autograd' or a callable "
                            "grads(cotangent, *arrays, **params)")
        return call_user_grads(grads, spec, case, inputs, cot)


def call_user_grads(grads, spec, case, inputs, cotangents):
    """Call a user's ``grads(cotangent, *arrays, **params)`` and check what it returns.

    ``cotangents`` are already in the candidate's form (None for non-differentiable
    outputs); a single-output op gets its cotangent alone, a multi-output op the tuple.
    Returns one gradient per differentiable input of ``spec``, in order.
    """
    cot_arg = cotangents[0] if len(spec.outputs) == 1 else cotangents
    out = grads(cot_arg, *[inputs[n] for n in spec.inputs], **case.params)
    if len(spec.diff) == 1 and not isinstance(out, (tuple, list)):
        out = (out,)
    if not isinstance(out, (tuple, list)):
        raise ResultMismatch(f"grads returned a {type(out).__name__}; {spec.name} has "
                             f"{len(spec.diff)} differentiable inputs {spec.diff}")
    if len(out) != len(spec.diff):
        raise ResultMismatch(f"grads returned {len(out)} arrays; {spec.name} has "
                         f"{len(spec.diff)} differentiable inputs {spec.diff}")
    return tuple(out)


def get_adapter(adapter):
    """An adapter instance from None (NumPy), a name, or an adapter object."""
    if adapter is None or adapter == "numpy":
        return NumpyAdapter()
    if isinstance(adapter, str):
        if adapter not in FRAMEWORK_ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}; known: "
                             f"{['numpy'] + sorted(FRAMEWORK_ADAPTERS)}")
        module, attr = FRAMEWORK_ADAPTERS[adapter].split(":")
        return getattr(importlib.import_module(module), attr)()
    return adapter
