"""Every registry row, generically: error cases raise what they promise, the others run
without NaN, run in float32 stay float32 *and* agree with the float64 oracle within the
published float32 tolerance (every tier), and the reference's VJP agrees with extrapolated
central differences (float64, seeded directions, the order given by the row, the tolerance
of ``check_grads`` unless the case states a looser one with its reason)."""
import re
import zlib

import numpy as np
import pytest

from kexue_ref import registry
from kexue_ref.testing import check_grads, reference_outputs
from kexue_ref.testing.tolerances import tolerance_for

from conftest import registry_cases


@pytest.mark.parametrize("case", registry_cases(tiers=("error",)))
def test_error_case_raises_named_error(case):
    exc_type, pattern = case.defn.raises
    with pytest.raises(exc_type) as info:
        case.spec.call(case.spec.ref, case)
    assert re.search(pattern, str(info.value)), f"message {str(info.value)!r} does not match {pattern!r}"


@pytest.mark.parametrize("case", registry_cases())
def test_reference_runs_without_nan(case):
    outs = reference_outputs(case)
    assert len(outs) == len(case.spec.outputs)
    for name, o in zip(case.spec.outputs, outs):
        assert isinstance(o, np.ndarray), f"output {name} is {type(o).__name__}, not an array"
        if o.dtype.kind == "f":
            assert not np.isnan(o).any(), f"output {name} has NaN"


def _gradcheck_kwargs(case):
    """rtol/atol for check_grads: the case's stated override, else the checker's default."""
    tol = case.defn.gradcheck_tol
    if tol is None:
        return {}
    rtol, atol, reason = tol
    # an override must say why (the registry enforces it; a test keeps it so)
    assert reason, f"{case.id}: gradcheck_tol without a reason"
    return {"rtol": rtol, "atol": atol}


@pytest.mark.parametrize("case", registry_cases())
def test_reference_gradients(case):
    spec = case.spec
    if not spec.diff:
        pytest.skip(f"{spec.name} has no differentiable input")
    if not case.defn.gradcheck:
        # the registry requires a note with gradcheck=False: it says why differences fail
        pytest.skip(f"gradcheck=False: {case.defn.note}")

    def f(*diff_values):
        kw = dict(case.inputs)
        kw.update(zip(spec.diff, diff_values))
        outs = spec.as_outputs(spec.call(spec.ref, _with(case, kw)))
        return tuple(outs)

    args = [np.asarray(case.inputs[n], dtype=np.float64) for n in spec.diff]
    check_grads(f, args, np.random.default_rng(zlib.crc32(case.id.encode())),
                order=spec.grad_order, name=case.id, **_gradcheck_kwargs(case))


def test_gradcheck_overrides_are_looser_and_explained():
    # an override exists to loosen the default for a stated reason; it must not be a typo
    # that tightens nothing or a silent opt-out (rtol >= 1 would accept any VJP)
    for spec in registry.all_ops().values():
        for d in spec.cases:
            if d.gradcheck_tol is None:
                continue
            rtol, atol, reason = d.gradcheck_tol
            assert 0 <= rtol < 1e-3 and 0 <= atol < 1e-6, f"{spec.name}[{d.name}]: {d.gradcheck_tol}"
            assert len(reason) > 20, f"{spec.name}[{d.name}]: the reason {reason!r} explains nothing"
            assert d.gradcheck, f"{spec.name}[{d.name}]: gradcheck_tol on a case that is not checked"


def _float32_inputs(case):
    # floating inputs cast to float32, the rest (integers, booleans, masks) unchanged
    return {n: (np.asarray(v).astype(np.float32) if np.asarray(v).dtype.kind == "f" else v)
            for n, v in case.inputs.items()}


def _close(actual, expected, rtol, atol):
    """Elementwise |actual - expected| <= atol + rtol |expected| (float64 arithmetic), with
    infinities equal in place and sign and NaN never passing. Returns (ok, message)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return False, f"shape {a.shape} != {e.shape}"
    if np.isnan(a).any():
        return False, f"{int(np.isnan(a).sum())} NaN entries"
    # non-finite entries must match exactly (same infinity, same place)
    special = ~np.isfinite(e)
    if not np.array_equal(a[special], e[special]) or not np.isfinite(a[~special]).all():
        return False, "infinities differ in place or sign"
    # the differences of the finite entries (the others matched above)
    err = np.abs(np.where(special, 0.0, a) - np.where(special, 0.0, e))
    bound = atol + rtol * np.abs(np.where(special, 0.0, e))
    bad = (err > bound) & ~special
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), a.shape)
        return False, (f"{int(bad.sum())}/{a.size} outside; worst at {tuple(int(k) for k in i)}: "
                       f"{a[i]!r} vs {e[i]!r} (|diff| {err[i]:.3g} > {bound[i]:.3g})")
    return True, ""


@pytest.mark.parametrize("case", registry_cases())
def test_float32_matches_float64_oracle(case):
    spec = case.spec
    inputs = _float32_inputs(case)
    if not any(np.asarray(v).dtype == np.float32 for v in inputs.values()):
        pytest.skip("no floating input")
    # the oracle: the reference on the float64 inputs (what check(dtype="float32") compares with)
    expected = reference_outputs(case)
    outs = spec.as_outputs(spec.ref(*[inputs[n] for n in spec.inputs], **case.params))
    rtol, atol, reason = tolerance_for("float32", "values", case.tol)
    for name, o, e in zip(spec.outputs, outs, expected):
        o = np.asarray(o)
        if e.dtype.kind == "f":
            # float32 in, float32 out
            assert o.dtype == np.float32, f"output {name} is {o.dtype} for float32 input"
            ok, msg = _close(o, e, rtol, atol)
            assert ok, (f"output {name}: float32 run vs float64 oracle (rtol {rtol:g}, atol {atol:g}"
                        f"{'; ' + reason if reason else ''}): {msg}")
        else:
            # integers, booleans and strings are compared exactly
            assert o.dtype.kind == e.dtype.kind, f"output {name} is {o.dtype}, oracle {e.dtype}"
            assert np.array_equal(o, e), f"output {name} differs from the oracle in float32"


def test_float32_comparison_rejects_wrong_values():
    # the judge of the test above, judged: a float32 result off by 10x the tolerance, a
    # misplaced infinity and a NaN fail; one within the tolerance passes
    rtol, atol, _ = tolerance_for("float32", "values")
    e = np.array([1.0, -2.0, 1e3, -np.inf])
    assert _close(e * (1 + 0.5 * rtol), e, rtol, atol)[0]
    assert not _close(e * (1 + 10 * rtol), e, rtol, atol)[0]
    assert not _close(np.array([1.0, -2.0, 1e3, np.inf]), e, rtol, atol)[0]
    assert not _close(np.array([np.nan, -2.0, 1e3, -np.inf]), e, rtol, atol)[0]
    assert not _close(np.array([1.0, -2.0, 1e3]), e, rtol, atol)[0]


def _with(case, inputs):
    class _C:
        pass
    c = _C()
    c.inputs = inputs
    c.params = case.params
    return c


def test_case_ids_are_unique_and_seeds_stable():
    ids = [c.id for s in registry.all_ops().values() for c in registry.cases(s, "all")]
    assert len(ids) == len(set(ids))
    # the seed is CRC-32 of the id, independent of the process (hash randomisation)
    assert registry.case_seed("a.b", "c") == zlib.crc32(b"a.b[c]")


def test_every_row_names_a_source_and_has_quick_and_error_cases():
    # not "all tiers": full and edge are optional (a converter has no pitfall beyond its
    # error cases); every row needs a quick case for the default run and an error case
    for spec in registry.all_ops().values():
        assert spec.source, spec.name
        tiers = {c.tier for c in spec.cases}
        assert "quick" in tiers, f"{spec.name} has no quick case"
        assert "error" in tiers, f"{spec.name} has no error case"
        doc = spec.ref.__doc__ or ""
        assert "Source" in doc, f"{spec.name}: the reference's docstring has no 'Source:' line"


def test_every_tier_is_used():
    # each tier name of the registry has cases somewhere (a tier nobody uses is a typo)
    used = {d.tier for spec in registry.all_ops().values() for d in spec.cases}
    assert used == set(registry.TIERS), sorted(set(registry.TIERS) - used)
