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


def assert_bump_is_rejected(op, name, member, idx):
    """The case certifies; moved by 6·eps·S at ``idx``, exactly ``member`` fails certification."""
    from kexue_ref import certify, tables
    case = case_named(op, name)
    rec = tables.case_record(case)
    assert all(c.passed for c in certify.certify_record(case, rec).values())
    certs = certify.certify_record(case, bump(rec, case, member, idx))
    assert not certs[member].passed
    assert all(c.passed for k, c in certs.items() if k != member)


def close(a, b, rel=10.0 ** -50, abs_=10.0 ** -300):
    """|a − b| ≤ max(rel·max(|a|, |b|), abs_), in mpf."""
    import mpmath
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    return abs(a - b) <= max(mpmath.mpf(rel) * max(abs(a), abs(b)), mpmath.mpf(abs_))


def all_close(a, b, **kw):
    """:func:`close` for every pair of entries of two arrays of the same size."""
    a = onp.asarray(a, dtype=object).reshape(-1)
    b = onp.asarray(b, dtype=object).reshape(-1)
    return a.shape == b.shape and all(close(x, y, **kw) for x, y in zip(a, b))
