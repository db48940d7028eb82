"""Shared by the certification tests: 60-digit mpmath inside every test (the truth functions
evaluate at the ambient precision; the certifier sets its own with ``workdps``)."""
import pytest


@pytest.fixture(autouse=True)
def _digits():
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        yield
