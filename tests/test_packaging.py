"""setup.py and pyproject.toml describe the same package, and the files an adopter needs exist.

pyproject.toml holds the static metadata and declares `dynamic` what setup.py supplies
(version, dependencies, extras, entry points); each value is written once, except the name,
which both carry and which must agree.
"""
import ast
import re
from pathlib import Path

import pytest

import kexue_ref

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")      # Python ≥ 3.11


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _setup_keywords():
    """The keyword names (and literal values where literal) of the setup() call."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", None) == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            out[kw.arg] = None
    return out


def test_build_system_is_setuptools():
    bs = _pyproject()["build-system"]
    assert bs["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("setuptools") for r in bs["requires"])


def test_each_field_has_one_source():
    project = _pyproject()["project"]
    setup_kw = _setup_keywords()
    assert project["name"] == setup_kw["name"] == "kexue-ref"
    # what setup.py supplies is declared dynamic, and is not also written statically
    supplied = {"version": "version", "dependencies": "install_requires",
                "optional-dependencies": "extras_require", "entry-points": "entry_points",
                "scripts": "entry_points"}
    for field, kw in supplied.items():
        assert field in project["dynamic"], field
        assert field not in project, f"{field} is both static and dynamic"
        assert kw in setup_kw, kw
    # what pyproject writes statically is not repeated (and so cannot drift) in setup.py
    for kw in ("description", "long_description", "python_requires", "license", "classifiers",
               "url", "project_urls", "author"):
        assert kw not in setup_kw, f"setup.py repeats {kw}, which pyproject.toml holds"


def test_version_comes_from_the_package():
    src = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert "kexue_ref" in src and "__version__" in src
    assert re.fullmatch(r"\d+\.\d+\.\d+", kexue_ref.__version__)


def test_metadata_an_adopter_needs():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
    assert project["readme"] == "README.md" and project["requires-python"].startswith(">=")
    assert any(c.startswith("Programming Language :: Python :: 3") for c in project["classifiers"])
    assert project["urls"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the kexue_ref authors" in text


def test_changelog_names_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    assert f"## [{kexue_ref.__version__}]" in text
