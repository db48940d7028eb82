"""Every public function of every topic module carries the documentation the project promises:
its equation, its source, and a Parameters section that agrees with its signature."""
import importlib
import inspect
import re

import pytest

from kexue_ref.cases import TOPICS

MODULES = ["kexue_ref._numerics"] + [f"kexue_ref.{t}" for t in TOPICS if t != "numerics"]


def _public_functions():
    out = []
    for name in MODULES:
        module = importlib.import_module(name)
        for fname in getattr(module, "__all__", []):
            obj = getattr(module, fname)
            if inspect.isfunction(obj) or callable(obj) and hasattr(obj, "__wrapped__"):
                out.append(pytest.param(name, fname, obj, id=f"{name}.{fname}"))
    return out


def _documented_params(doc):
    m = re.search(r"Parameters\n\s*-+\n(.*?)(\n\s*\n\s*(Returns|Raises|Yields|Notes|Examples|See Also)\n|\Z)",
                  doc, re.S)
    if not m:
        return None
    names = set()
    for line in m.group(1).splitlines():
        head = re.match(r"^([A-Za-z_*][\w, *]*?)\s*:", line)
        if head:  # "name : ..." or "a, b : ..." at the left margin; descriptions are indented
            names.update(n.strip().lstrip("*") for n in head.group(1).split(","))
    return names


@pytest.mark.parametrize("module, name, fn", _public_functions())
def test_docstring_has_equation_source_and_matching_parameters(module, name, fn):
    doc = inspect.getdoc(fn) or ""
    assert ".. math::" in doc or "Equation" in doc, f"{module}.{name}: no equation in the docstring"
    assert "Source" in doc, f"{module}.{name}: no 'Source:' line"
    target = inspect.unwrap(fn)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = {p for p in sig.parameters if p not in ("self", "args", "kwargs", "called_by_autograd_dispatcher")}
    if not params:
        return
    documented = _documented_params(inspect.cleandoc(fn.__doc__ or ""))
    assert documented is not None, f"{module}.{name}: no Parameters section"
    missing = params - documented
    unknown = documented - params
    assert not missing, f"{module}.{name}: parameters not documented: {sorted(missing)}"
    assert not unknown, f"{module}.{name}: documented parameters not in the signature: {sorted(unknown)}"
