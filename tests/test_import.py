"""`import kexue_ref` stays light: no numba, torch or jax (checked in a fresh interpreter);
the CLI is reachable as `python -m kexue_ref`."""
import subprocess
import sys


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_does_not_load_heavy_modules():
    code = ("import sys, kexue_ref, kexue_ref.smoothing, kexue_ref.testing, kexue_ref.tables, kexue_ref.kernels; "
            "print(sorted(m for m in ('numba', 'torch', 'jax', 'matplotlib') if m in sys.modules))")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_python_dash_m_cli():
    r = subprocess.run([sys.executable, "-m", "kexue_ref", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "tables" in r.stdout


def test_no_fastmath_literal_outside_config():
    import pathlib
    import kexue_ref
    root = pathlib.Path(kexue_ref.__file__).parent
    offenders = [str(p) for p in root.rglob("*.py")
                 if p.name != "_config.py" and "fastmath=" in p.read_text().replace(" ", "")
                 and "fastmath=FASTMATH" not in p.read_text().replace(" ", "")]
    assert not offenders, offenders
    from kexue_ref.kernels._config import FASTMATH
    assert FASTMATH is not True and not ({"nnan", "ninf", "fast"} & set(FASTMATH or ()))
