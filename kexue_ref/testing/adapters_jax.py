"""The JAX adapter: run registry cases through a JAX function, values and gradients.

>>> import pytest
>>> jnp = pytest.importorskip("jax.numpy")
>>> import jax
>>> from kexue_ref.testing import check
>>> def jax_smooth_max(x, scale=1.0, axis=-1):
...     return jax.nn.logsumexp(scale * x, axis=axis) / scale
>>> check(jax_smooth_max, "smoothing.smooth_max", adapter="jax", grads=True).passed
True

How a case reaches the candidate:

* floating inputs become ``jax.Array`` s of the candidate dtype (``"float64"``,
  ``"float32"``, ``"float16"``, ``"bfloat16"``) on the adapter's device (the default device
  unless ``device=`` names one, e.g. ``jax.devices("cpu")[0]``); integer inputs become int64
  and boolean inputs bool arrays; the parameters are passed unchanged as keyword arguments
  (they are static: the candidate may ``jax.jit`` itself with them as static arguments);
* outputs and gradients come back as NumPy arrays (16-bit floats widened to float32).

**float64.** JAX computes in float32 unless 64-bit mode is on. The adapter does not change
the global setting: it runs every call of the candidate, and builds its inputs, inside
``jax.enable_x64(True)`` (through the ``wrap`` hook of ``check``), so a float64 case is
really computed in float64 and nothing leaks into the rest of the process.

Gradients use JAX's own autodiff with the oracle's cotangent ``u``:
``out, pullback = jax.vjp(f, *diff_inputs); pullback(u)``, the gradient of
:math:`\\sum_k \\langle u_k, \\mathrm{out}_k \\rangle`. Integer and boolean outputs get the
``float0`` zero cotangent JAX requires.

jax is imported when the adapter is created, never by ``import kexue_ref``.
"""
import contextlib
import functools

import numpy as onp

from kexue_ref.testing.adapters import call_user_grads

__all__ = ["JaxAdapter"]

_DTYPES = ("float64", "float32", "float16", "bfloat16")


#: (function, frozen keyword arguments) -> jitted callable, so a candidate is compiled once
#: per parameter set and input shape, across cases and checks
_JIT_CACHE = {}


def _freeze(value):
    from kexue_ref.registry import OpSpec

    if isinstance(value, OpSpec):  # a registry row is identified by its name
        return ("OpSpec", value.name)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _jitted(jax, fn, kwargs):
    key = (fn, _freeze(kwargs))
    try:
        hash(key)
    except TypeError:  # an unhashable parameter: compile without caching
        return jax.jit(functools.partial(fn, **kwargs))
    if key not in _JIT_CACHE:
        if len(_JIT_CACHE) > 1024:
            _JIT_CACHE.clear()
        _JIT_CACHE[key] = jax.jit(functools.partial(fn, **kwargs))
    return _JIT_CACHE[key]


class JaxAdapter:
    """Hand NumPy case inputs to a JAX candidate and take its values and VJP back.

    Parameters
    ----------
    device : None (JAX's default device) or a ``jax.Device`` the inputs are placed on.
    x64 : bool, run the candidate inside ``jax.enable_x64(True)`` (default True; needed for
        float64 candidates, harmless for the others since their inputs carry their dtype).
    jit : bool, compile each call (forward, and forward + VJP) with ``jax.jit``, the keyword
        parameters static (default True: several times faster than op-by-op dispatch). A
        candidate that cannot be traced (Python branching on array values) runs eagerly.

    Notes
    -----
    ``grads`` (the argument of :func:`kexue_ref.testing.check`) may be ``True`` (or
    ``"jax"``, ``"framework"``, ``"autograd"``) for ``jax.vjp``, or a callable
    ``grads(cotangent, *arrays, **params)`` returning the gradients itself.
    """

    name = "jax"

    def __init__(self, device=None, x64=True, jit=True):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.jnp = jnp
        self.device = device
        self.x64 = x64
        self.jit = jit

    def __repr__(self):
        return f"JaxAdapter(device={self.device!r}, x64={self.x64}, jit={self.jit})"

    def _context(self):
        if self.x64:
            # jax.enable_x64 (recent JAX); jax.experimental.enable_x64 before it
            enable = getattr(self.jax, "enable_x64", None)
            if enable is None:
                from jax.experimental import enable_x64 as enable
            return enable(True)
        return contextlib.nullcontext()

    # -- the hook check() uses to run the candidate ------------------------------------

    def wrap(self, candidate):
        """The candidate, run inside the adapter's 64-bit context (and under ``jax.jit``)."""
        @functools.wraps(candidate)
        def run(*args, **kwargs):
            with self._context():
                return self._call(candidate, args, kwargs)
        return run

    def _call(self, fn, args, kwargs):
        """``fn(*args, **kwargs)``, jit-compiled with the keyword arguments static when
        ``jit`` is on; eagerly if the function cannot be traced (value-dependent Python)."""
        if not self.jit:
            return fn(*args, **kwargs)
        try:
            return _jitted(self.jax, fn, kwargs)(*args)
        except self.jax.errors.ConcretizationTypeError:
            return fn(*args, **kwargs)

    # -- conversions -------------------------------------------------------------------

    def jax_dtype(self, dtype):
        name = str(dtype)
        if name not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)} for the jax adapter, "
                             f"got {dtype!r}")
        return getattr(self.jnp, name)

    def to_candidate(self, array, dtype):
        """A ``jax.Array``: floats in ``dtype``, integers int64, bools bool."""
        a = onp.asarray(array)
        if a.dtype.kind == "f":
            target = self.jax_dtype(dtype)
            a = a.astype(onp.float64)
        elif a.dtype.kind in "iu":
            target = self.jnp.int64
        elif a.dtype.kind == "b":
            target = self.jnp.bool_
        else:
            raise TypeError(f"the jax adapter passes float, integer and boolean arrays; "
                            f"got dtype {a.dtype}")
        with self._context():
            x = self.jnp.asarray(a, dtype=target)
            if self.device is not None:
                x = self.jax.device_put(x, self.device)
        return x

    def to_numpy(self, x):
        """A NumPy array from a JAX array (16-bit floats as float32)."""
        a = onp.asarray(x)
        if a.dtype.kind not in "fiubcSU":  # bfloat16 (ml_dtypes) and other extension floats
            a = a.astype(onp.float32)
        elif a.dtype == onp.float16:
            a = a.astype(onp.float32)
        return a

    def dtype_of(self, x):
        """The dtype name of a candidate output (``"bfloat16"`` for a bfloat16 array)."""
        dt = getattr(x, "dtype", None)
        # jax arrays carry a NumPy (or ml_dtypes) dtype; anything else goes through asarray
        return onp.dtype(dt if dt is not None else onp.asarray(x).dtype).name

    # -- gradients ---------------------------------------------------------------------

    def vjp(self, candidate, spec, case, dtype, cotangents, grads):
        """The candidate's gradients w.r.t. ``spec.diff`` for the oracle's cotangents."""
        inputs = {n: self.to_candidate(case.inputs[n], dtype) for n in spec.inputs}
        with self._context():
            if callable(grads):
                cot = tuple(None if u is None else self.to_candidate(u, dtype) for u in cotangents)
                return call_user_grads(grads, spec, case, inputs, cot)
            if grads not in (True, "jax", "framework", "autograd"):
                raise TypeError("grads must be None, True (jax.vjp) or a callable "
                                "grads(cotangent, *arrays, **params)")

            values = tuple(inputs[n] for n in spec.inputs)
            cots = tuple(None if u is None else onp.asarray(u, dtype=onp.float64) for u in cotangents)
            return self._call(_pullback, (values, cots),
                              dict(candidate=candidate, spec=spec, params=case.params))


def _pullback(values, cots, candidate, spec, params):
    """The candidate's VJP at ``values`` (all inputs, in ``spec.inputs`` order) for ``cots``."""
    import jax
    import jax.numpy as jnp

    def f(*diff_values):
        kw = dict(zip(spec.inputs, values))
        kw.update(zip(spec.diff, diff_values))
        return tuple(spec.as_outputs(candidate(*[kw[n] for n in spec.inputs], **params)))

    outs, vjp_fn = jax.vjp(f, *[values[spec.inputs.index(n)] for n in spec.diff])
    cts = []
    for o, u in zip(outs, cots):
        if not jnp.issubdtype(o.dtype, jnp.inexact):
            # integer / bool outputs take the float0 zero cotangent
            cts.append(onp.zeros(o.shape, dtype=jax.dtypes.float0))
        elif u is None:
            cts.append(jnp.zeros_like(o))
        else:
            # the oracle's cotangent u in the output's dtype
            cts.append(jnp.asarray(u).astype(o.dtype))
    # ∇_x Σ_k <u_k, out_k>
    return tuple(vjp_fn(tuple(cts)))
