"""The published tolerance table (decision D3).

A candidate run in ``dtype`` passes a comparison with the float64 oracle when, elementwise,

    |actual - expected| <= atol + rtol * |expected|

with (rtol, atol) from :data:`TOLERANCES` for values and gradients separately. Per-op and
per-case overrides (:class:`kexue_ref.registry.Tol`) replace the entry for the dtype and kind
they name, and carry their reason into reports and the table manifest.

The float64 rows are for implementations that compute in float64 with a different order
of operations; the lower-precision rows follow the usual framework defaults (torch's
``assert_close``, JAX's ``default_tolerance``), a little looser for gradients, which
accumulate more rounding. Integer, boolean and string outputs are always compared exactly.
"""
import numpy as onp

__all__ = ["TOLERANCES", "tolerance_for", "table_as_dict", "TABLE_VERIFY_RTOL"]

#: dtype -> {"values": (rtol, atol), "grads": (rtol, atol)}
TOLERANCES = {
    "float64": {"values": (1e-12, 1e-13), "grads": (1e-9, 1e-10)},
    "float32": {"values": (1e-5, 1e-6), "grads": (1e-3, 1e-5)},
    "float16": {"values": (1e-3, 1e-4), "grads": (1e-2, 1e-3)},
    "bfloat16": {"values": (1e-2, 1e-3), "grads": (1e-1, 1e-2)},
}

#: ``tables verify`` compares a regenerated float64 array ``a`` with the stored ``b`` by
#: ``|a - b| <= TABLE_VERIFY_RTOL * (|b| + max|b|)``: relative to each element and to the
#: array's scale, so BLAS differences between machines pass and a stale table does not.
TABLE_VERIFY_RTOL = 1e-12


def _dtype_name(dtype):
    # numpy dtypes and scalar types (np.float32, np.dtype("float32"), "float32") first
    try:
        return onp.dtype(dtype).name
    except TypeError:
        pass
    name = str(dtype)
    if name.startswith("torch."):
        name = name[len("torch."):]
    try:
        return onp.dtype(name).name
    except TypeError:
        return name


def tolerance_for(dtype, kind, overrides=()):
    """(rtol, atol, reason) for a candidate dtype and kind ("values" or "grads").

    The last matching override wins; ``reason`` is "" for the published default.
    """
    name = _dtype_name(dtype)
    if name not in TOLERANCES:
        raise ValueError(f"no published tolerance for dtype {name!r}; "
                         f"known: {sorted(TOLERANCES)}")
    rtol, atol = TOLERANCES[name][kind]
    reason = ""
    for tol in overrides:
        if tol.dtype not in (None, name) or tol.kind not in (None, kind):
            continue
        rtol, atol, reason = tol.rtol, tol.atol, tol.reason
    return rtol, atol, reason


def table_as_dict():
    """The table as plain JSON-able data (written into every manifest)."""
    return {d: {k: {"rtol": r, "atol": a} for k, (r, a) in kinds.items()}
            for d, kinds in TOLERANCES.items()}
