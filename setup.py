"""Packaging for kexue_ref, the numerical reference for six posts of kexue.fm.

Runtime needs only NumPy, autograd, SciPy and numba; torch, jax and matplotlib are
optional extras and are imported lazily where they are used.

pyproject.toml holds the static metadata (name, description, readme, Python versions,
license, classifiers, URLs) and declares the fields below `dynamic`: the version (read from
``kexue_ref/__init__.py``), the dependencies, the extras and the entry points are written
only here. ``name`` is repeated so that tools reading this file alone see it;
``tests/test_packaging.py`` keeps the two files consistent.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"',
                    (HERE / "kexue_ref" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="kexue-ref",
    version=VERSION,
    packages=find_packages(include=["kexue_ref", "kexue_ref.*"]),
    package_data={"kexue_ref": ["schemas/*.json"]},
    install_requires=[
        "numpy>=1.24,<3",
        "autograd>=1.7",  # 1.7 is the first autograd release that supports NumPy 2
        "scipy>=1.10",
        "numba>=0.59",
        # Limits OpenBLAS to one thread inside the parallel numba kernels: nested BLAS pools
        # made the sparse-attention twins 2-4x slower and erratic (docs/sparse_attention_kernels.md).
        "threadpoolctl>=3.1",
    ],
    extras_require={
        # the test suite also certifies the quick tier and validates the JSON Schemas
        "test": ["pytest>=7", "mpmath>=1.3", "gmpy2>=2.1", "jsonschema>=4.18"],
        # `kexue-ref tables certify`: 50-digit truth (gmpy2 makes mpmath several times faster)
        "certify": ["mpmath>=1.3", "gmpy2>=2.1"],
        "plots": ["matplotlib>=3.6"],
        "frameworks": ["torch>=2.1", "jax>=0.4.30"],
    },
    entry_points={
        "console_scripts": ["kexue-ref = kexue_ref.cli:main"],
        # the `kexue_ref` marker and fixture for one-test-per-case conformance suites
        "pytest11": ["kexue_ref = kexue_ref.testing.pytest_plugin"],
    },
)
