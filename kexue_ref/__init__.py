"""kexue_ref: a golden numerical reference for six posts of Su Jianlin's *Scientific Spaces*.

Readable NumPy whose gradients come from autograd; numba twins for the sparse-attention
hot loops live in :mod:`kexue_ref.kernels` and are loaded only when used.

Importing this package imports NumPy and autograd only: numba, torch and jax are never
imported here (a test checks ``sys.modules`` in a fresh interpreter).

Topic modules are loaded on first attribute access, so ``kexue_ref.smoothing`` works
after a bare ``import kexue_ref``.
"""
import importlib

__version__ = "0.1.0"

#: Version of the table format written by :mod:`kexue_ref.tables` (bumped on any
#: change to the ``.npz`` layout or the manifest schema).
TABLE_FORMAT_VERSION = 2

_LAZY = {
    "numerics", "smoothing", "registry", "testing", "tables", "cli", "kernels",
    "sparse_attention", "on_lstm", "reparam", "orthogonality", "dgcnn",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"kexue_ref.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kexue_ref' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
