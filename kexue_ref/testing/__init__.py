"""The checking API: compare any implementation with the oracle, values and gradients.

>>> import numpy as np
>>> from kexue_ref.testing import check
>>> def my_smooth_max(x, scale=1.0, axis=-1):          # a candidate written without the shift
...     return np.log(np.sum(np.exp(scale * x), axis=axis)) / scale
>>> report = check(my_smooth_max, "smoothing.smooth_max", cases="quick")
>>> report.passed
True

Main entry points: :func:`check` (returns a :class:`Report`), :func:`assert_matches`
(raises ``AssertionError`` with the report), :func:`compare`, :func:`check_grads`, and the
published tolerance table :data:`TOLERANCES`. Loaded on first use (so that importing this
package imports neither pytest nor a framework): the pytest helpers :func:`conformance_test`,
:func:`parametrize_cases` and :func:`check_case`. The module :mod:`kexue_ref.testing.diagnose`
says which registered convention a failing candidate matches. Framework adapters: ``adapter="torch"`` or
``"jax"`` (``docs/frameworks.md``).
"""
import importlib

from kexue_ref.testing._check import (  # noqa: F401
    CaseResult,
    Comparison,
    Report,
    assert_matches,
    autograd_vjp,
    check,
    compare,
    make_cotangents,
    reference_grads,
    reference_outputs,
)
from kexue_ref.testing.gradcheck import DegenerateCheckError, GradCheckError, check_grads  # noqa: F401
from kexue_ref.testing.tolerances import TOLERANCES, tolerance_for  # noqa: F401

__all__ = ["check", "assert_matches", "compare", "Report", "CaseResult", "Comparison",
           "reference_outputs", "reference_grads", "make_cotangents", "autograd_vjp",
           "check_grads", "GradCheckError", "DegenerateCheckError", "TOLERANCES", "tolerance_for",
           "conformance_test", "parametrize_cases", "check_case"]

_LAZY = {
    "conformance_test": "kexue_ref.testing.pytest_plugin",
    "parametrize_cases": "kexue_ref.testing.pytest_plugin",
    "check_case": "kexue_ref.testing.pytest_plugin",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kexue_ref.testing' has no attribute {name!r}")
