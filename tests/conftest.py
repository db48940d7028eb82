"""Shared fixtures: an explicit Generator (never a global seed) and registry case ids."""
import numpy as np
import pytest

from kexue_ref import registry


@pytest.fixture
def rng(request):
    """A Generator seeded from the test's node id, so each test has its own fixed stream."""
    import zlib
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def registry_cases(pattern="*", tiers=("quick", "full", "edge")):
    """pytest params for every case of the ops matching ``pattern``, with the case id as id."""
    params = []
    for spec in registry.select_ops(pattern):
        for case in registry.cases(spec, tiers):
            params.append(pytest.param(case, id=case.id))
    return params
