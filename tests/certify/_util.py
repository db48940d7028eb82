"""Helpers of the truth-function tests: exact conversion of float data to mpf arrays."""
import numpy as onp

from kexue_ref.certify import _mp

#: float64 machine epsilon, 2^-52 (the unit of the eps·S error measure)
EPS = 2.0 ** -52


def mp(a):
    """Float data as an object array of mpf, each value converted exactly."""
    return _mp.mpf_array(onp.asarray(a, dtype=float))


def case_named(op, name):
    """The registry case ``op[name]`` (any tier)."""
    from kexue_ref import registry
    return next(c for c in registry.cases(op, "all") if c.name == name)


def bump(rec, case, member, idx, k=6.0):
    """A copy of ``rec`` with one entry of ``member`` moved by k·eps·S (≥ k ulps of any entry ≤ S)."""
    from kexue_ref import tables
    scale = tables.natural_scales(case, rec)[member]["scale"]
    bad = dict(rec)
    bad[member] = rec[member].copy()
    bad[member][idx] += k * EPS * scale
    return bad
