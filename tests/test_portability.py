"""Portability of the tables: generated under one CPU configuration, verified under others.

A table generated where NumPy uses AVX-512 loops and OpenBLAS its SkylakeX kernels must
verify where NumPy is limited to its baseline SIMD and OpenBLAS runs another kernel on
another number of threads. One machine can imitate the others through environment
variables read at import time, so each configuration runs in its own interpreter:

* ``NPY_DISABLE_CPU_FEATURES``: NumPy's dispatched SIMD loops (exp, log, sums, …) fall back
  to the baseline build (all of the features this CPU has beyond it are disabled);
* ``OPENBLAS_NUM_THREADS`` / ``NUMBA_NUM_THREADS``: 1 or 2 threads (BLAS splits matrix
  products differently, which changes the order of the additions);
* ``OPENBLAS_CORETYPE``: another OpenBLAS kernel (Sandybridge, Haswell, SkylakeX where the
  CPU has AVX-512) — only in the full matrix below, because these machines pin the core type
  on some CPUs and CI keeps the machine's own setting.

CI runs the cheap matrix (baseline SIMD + 1 thread → this machine's defaults, and → 2
threads). The full matrix is one command::

    KEXUE_REF_PORTABILITY=full python -m pytest -q tests/test_portability.py
"""
import os
import subprocess
import sys

import pytest


def _dispatched_features():
    """The SIMD features NumPy dispatches to on this CPU, beyond its baseline build."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as mu
    found = [f for f, on in mu.__cpu_features__.items() if on]
    return [f for f in mu.__cpu_dispatch__ if f in found]


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as fh:
            return " avx512f" in fh.read()
    except OSError:
        return False


BASELINE = {"NPY_DISABLE_CPU_FEATURES": " ".join(_dispatched_features()),
            "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
DEFAULT = {}
TWO_THREADS = {"OPENBLAS_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
FULL = os.environ.get("KEXUE_REF_PORTABILITY") == "full"

MATRIX = [("baseline-1thread", BASELINE, [("default", DEFAULT), ("2threads", TWO_THREADS)])]
if FULL:
    cores = ["Sandybridge", "Haswell"] + (["SkylakeX"] if _cpu_has_avx512() else [])
    others = [(f"{c}-{n}t", {"OPENBLAS_CORETYPE": c, "OPENBLAS_NUM_THREADS": n, "NUMBA_NUM_THREADS": n})
              for c in cores for n in ("1", "2")]
    MATRIX = [("baseline-1thread", BASELINE, [("default", DEFAULT)] + others),
              ("default", DEFAULT, [("baseline-1thread", BASELINE)] + others)]
    MATRIX += [(name, env, [("default", DEFAULT), ("baseline-1thread", BASELINE)]) for name, env in others]


def _run(args, env_changes, cwd):
    env = dict(os.environ)
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "kexue_ref", "tables", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("gen_name,gen_env,targets", MATRIX, ids=[m[0] for m in MATRIX])
def test_tables_generated_here_verify_there(tmp_path, gen_name, gen_env, targets):
    root = tmp_path / "tables"
    r = _run(["generate", "--root", str(root), "--quiet"], gen_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for name, env in targets:
        r = _run(["verify", "--root", str(root), "--quiet"], env, tmp_path)
        assert r.returncode == 0, f"generated under {gen_name}, verified under {name}:\n{r.stdout[-4000:]}"
        assert "tables verify OK" in r.stdout


def test_the_baseline_configuration_really_changes_numpy():
    """The imitation is real: with the dispatched features disabled NumPy reports none of them."""
    if not _dispatched_features():
        pytest.skip("this CPU has no SIMD feature beyond NumPy's baseline")
    env = dict(os.environ)
    env.update(BASELINE)
    code = ("from numpy._core import _multiarray_umath as mu\n"
            "print(sorted(f for f in mu.__cpu_dispatch__ if mu.__cpu_features__.get(f)))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if r.returncode != 0 and "numpy._core" in r.stderr:
        pytest.skip("NumPy 1.x layout")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
