"""The only place where numba compilation flags are set (decision D7; ``docs/references.md``, "Fastmath flags").

* ``FASTMATH``: a named flag set *without* ``nnan`` and ``ninf``, so the ``-inf`` and
  fully-masked-row guards of the kernels cannot be optimised away. ``reassoc`` is left out as
  well, so reductions keep their written order and results do not depend on vectorisation.
* ``CACHE = True``: compiled code is stored beside the source and reused by later processes
  (``NUMBA_CACHE_DIR`` moves it).
* ``PARALLEL = True``: kernels use ``prange`` over independent output rows only.

A test greps the package for ``fastmath=`` literals outside this file.
"""
# Immutable here; numba 0.68 accepts only a bool, dict or set, so kernels pass set(FASTMATH).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})
CACHE = True
PARALLEL = True
