"""Every registry row, generically: error cases raise what they promise, the others run
without NaN, keep float32 as float32, and the reference's VJP agrees with central differences
(float64, seeded directions, order given by the row)."""
import re
import zlib

import numpy as np
import pytest

from kexue_ref import registry
from kexue_ref.testing import check_grads, reference_outputs

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


@pytest.mark.parametrize("case", registry_cases())
def test_reference_gradients(case):
    spec = case.spec
    if not spec.diff or not case.defn.gradcheck:
        pytest.skip(case.defn.note or "no differentiable input")

    def f(*diff_values):
        kw = dict(case.inputs)
        kw.update(zip(spec.diff, diff_values))
        outs = spec.as_outputs(spec.call(spec.ref, _with(case, kw)))
        return tuple(outs)

    args = [np.asarray(case.inputs[n], dtype=np.float64) for n in spec.diff]
    check_grads(f, args, np.random.default_rng(zlib.crc32(case.id.encode())),
                order=spec.grad_order, name=case.id)


@pytest.mark.parametrize("case", registry_cases(tiers=("quick",)))
def test_float32_in_float32_out(case):
    spec = case.spec
    inputs = {n: (v.astype(np.float32) if np.asarray(v).dtype.kind == "f" else v)
              for n, v in case.inputs.items()}
    if not any(np.asarray(v).dtype == np.float32 for v in inputs.values()):
        pytest.skip("no floating input")
    outs = spec.as_outputs(spec.ref(*[inputs[n] for n in spec.inputs], **case.params))
    for name, o in zip(spec.outputs, outs):
        o = np.asarray(o)
        if o.dtype.kind == "f":
            assert o.dtype == np.float32, f"output {name} is {o.dtype} for float32 input"


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


def test_every_row_names_a_source_and_has_all_tiers():
    for spec in registry.all_ops().values():
        assert spec.source, spec.name
        tiers = {c.tier for c in spec.cases}
        assert "quick" in tiers, f"{spec.name} has no quick case"
        assert "error" in tiers, f"{spec.name} has no error case"
        doc = spec.ref.__doc__ or ""
        assert "Source" in doc, f"{spec.name}: the reference's docstring has no 'Source:' line"
