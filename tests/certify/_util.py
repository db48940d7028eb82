"""Helpers of the truth-function tests: exact conversion of float data to mpf arrays."""
import numpy as onp

from kexue_ref.certify import _mp

#: float64 machine epsilon, 2^-52 (the unit of the eps·S error measure)
EPS = 2.0 ** -52


def mp(a):
    """Float data as an object array of mpf, each value converted exactly."""
    return _mp.mpf_array(onp.asarray(a, dtype=float))
