"""Worked examples: framework implementations checked against the oracle through the adapters.

Each module imports its framework with ``pytest.importorskip`` and skips cleanly without it.
The kexue_ref pytest plugin (the ``kexue_ref`` marker) is registered here unless an installed
kexue_ref already loaded it through its ``pytest11`` entry point.
"""
from kexue_ref.testing import pytest_plugin


def pytest_configure(config):
    if not config.pluginmanager.is_registered(pytest_plugin):
        config.pluginmanager.register(pytest_plugin, "kexue_ref")
