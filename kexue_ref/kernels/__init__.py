"""numba twins of the readable functions (decision D7), loaded on first attribute access.

``from kexue_ref.kernels import sparse_attention as fast`` imports numba; ``import
kexue_ref.kernels`` alone does not. A twin has the same name and signature as its readable
function, is an autograd primitive with a first-order VJP, and never falls back silently to
the reference.
"""
import importlib

_TWINS = {"sparse_attention"}


def __getattr__(name):
    if name in _TWINS:
        module = importlib.import_module(f"kexue_ref.kernels.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kexue_ref.kernels' has no attribute {name!r}")
