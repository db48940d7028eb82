"""Tests added for a mutation of ``kexue_ref/orthogonality/lemma.py`` (the sign estimator) that nothing caught.

Mutation ``orthogonality.sign-of-zero`` (``tests/mutation_run.py``): the sign estimator with
sgn(0) = +1 instead of the library's documented sgn(0) = −1 (``docs/orthogonality.md``,
"sgn(0) = −1"). Every value test of :func:`sign_gram` used inputs without an exact zero in
``X W + b``, so either convention passed. The expected matrices below are worked out by hand
from ϑ̂ = SᵀS / B with S = sgn(X W + b) ∈ {±1}.
"""
import numpy as np

from kexue_ref import orthogonality as og


def test_sign_gram_counts_an_exact_zero_as_minus_one():
    # X W = X (W = I): Y = [[0, 1], [1, 0]], so S = [[−1, +1], [+1, −1]]
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    # (SᵀS)_12 = (−1)(+1) + (+1)(−1) = −2, divided by B = 2: −1 (sgn(0) = +1 would give +1)
    np.testing.assert_array_equal(og.sign_gram(x, np.eye(2)), [[1.0, -1.0], [-1.0, 1.0]])


def test_sign_gram_a_bias_that_cancels_the_response_gives_minus_one():
    # Y = X W + b = [[1, 1], [2, 2]] + [−1, 0] = [[0, 1], [1, 2]]: S = [[−1, +1], [+1, +1]]
    x = np.array([[1.0], [2.0]])
    w = np.array([[1.0, 1.0]])
    b = np.array([-1.0, 0.0])
    # (SᵀS)_12 = (−1)(+1) + (+1)(+1) = 0: the filters look orthogonal on this batch
    np.testing.assert_array_equal(og.sign_gram(x, w, bias=b), [[1.0, 0.0], [0.0, 1.0]])


def test_sign_gram_of_a_zero_sample_agrees_with_a_negative_one():
    # the zero sample has Y = 0 in every column, i.e. S = −1 everywhere, exactly like the sample
    # −(1, 1) whose responses are all negative; the estimates must then be equal
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    rest = np.array([[1.0, -2.0], [3.0, 0.5]])
    zero = np.vstack([rest, [[0.0, 0.0]]])
    negative = np.vstack([rest, [[-1.0, -1.0]]])
    np.testing.assert_array_equal(og.sign_gram(zero, w), og.sign_gram(negative, w))
    # and by hand: S = [[+1, −1], [+1, +1], [−1, −1]], (SᵀS)_12 = −1 + 1 + 1 = 1, B = 3
    np.testing.assert_array_equal(og.sign_gram(zero, w), [[1.0, 1.0 / 3.0], [1.0 / 3.0, 1.0]])
