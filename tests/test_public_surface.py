"""The public surface of every post's module — names and signatures — is pinned.

``tests/data/public_surface.json`` records, per module, every name of ``__all__`` and the
``inspect.signature`` of each callable. A refactoring (moving a post into a package, say)
must leave it unchanged; a deliberate change of the API updates the file in the same
commit, where a reviewer sees it.
"""
import importlib
import inspect
import json
from pathlib import Path

import pytest

SURFACE = json.loads((Path(__file__).parent / "data" / "public_surface.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_public_names_and_signatures_are_unchanged(module):
    mod = importlib.import_module(module)
    pinned = SURFACE[module]
    assert sorted(mod.__all__) == sorted(pinned), "names added or removed from __all__"
    for name, sig in pinned.items():
        obj = getattr(mod, name)
        try:
            now = str(inspect.signature(obj))
        except (TypeError, ValueError):
            now = None
        assert now == sig, f"{module}.{name}{now} was {name}{sig}"


def test_the_pin_is_a_real_check(monkeypatch):
    """A changed default is caught (the judge is judged)."""
    mod = importlib.import_module("kexue_ref.smoothing")
    original = mod.smooth_max

    def smooth_max(x, scale=2.0, axis=-1):  # a different default
        return original(x, scale, axis)

    monkeypatch.setattr(mod, "smooth_max", smooth_max)
    with pytest.raises(AssertionError, match="smooth_max"):
        test_public_names_and_signatures_are_unchanged("kexue_ref.smoothing")
