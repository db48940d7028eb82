"""The shared stable primitives: SciPy where SciPy defines the value, exact identities, and the
fully-masked / all -inf policy (D4) with finite gradients where peers return NaN."""
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special as sp
from autograd import elementwise_grad, grad, jacobian

from kexue_ref import numerics as nx
from kexue_ref.testing import check_grads

NEG = -np.inf


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_logsumexp_softmax_log_softmax_match_scipy(rng, axis):
    x = rng.normal(scale=5.0, size=(4, 6))
    np.testing.assert_allclose(nx.logsumexp(x, axis=axis), sp.logsumexp(x, axis=axis), rtol=1e-14)
    np.testing.assert_allclose(nx.softmax(x, axis=axis), sp.softmax(x, axis=axis), rtol=1e-13)
    np.testing.assert_allclose(nx.log_softmax(x, axis=axis), sp.log_softmax(x, axis=axis), rtol=1e-13,
                               atol=1e-14)


def test_keepdims(rng):
    x = rng.normal(size=(3, 4))
    assert nx.logsumexp(x, axis=0, keepdims=True).shape == (1, 4)


def test_sigmoid_family_matches_scipy(rng):
    x = np.concatenate([rng.normal(scale=10, size=50), [-800.0, -40.0, 0.0, 40.0, 800.0]])
    np.testing.assert_allclose(nx.sigmoid(x), sp.expit(x), rtol=1e-15)
    np.testing.assert_allclose(nx.log_sigmoid(x), sp.log_expit(x), rtol=1e-14)
    # softplus(x) = log(1 + e^x) = -log_expit(-x)
    np.testing.assert_allclose(nx.softplus(x), -sp.log_expit(-x), rtol=1e-14)


def test_identities(rng):
    x = rng.normal(size=(2, 5))
    # softmax = exp(log_softmax); Σ softmax = 1; LSE(x + c) = LSE(x) + c
    np.testing.assert_allclose(nx.softmax(x), np.exp(nx.log_softmax(x)), rtol=1e-14)
    np.testing.assert_allclose(nx.softmax(x).sum(-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(nx.logsumexp(x + 7.5), nx.logsumexp(x) + 7.5, rtol=1e-14)
    # grad LSE = softmax
    np.testing.assert_allclose(grad(lambda z: anp.sum(nx.logsumexp(z)))(x), nx.softmax(x), rtol=1e-14)
    # σ(x) + σ(−x) = 1 and d softplus/dx = σ
    np.testing.assert_allclose(nx.sigmoid(x) + nx.sigmoid(-x), 1.0, rtol=1e-15)
    np.testing.assert_allclose(elementwise_grad(nx.softplus)(x), nx.sigmoid(x), rtol=1e-14)


def test_softplus_minus_relu_in_zero_log2(rng):
    x = np.concatenate([rng.normal(scale=5, size=100), [0.0]])
    d = nx.softplus(x) - np.maximum(x, 0)
    # log(1 + e^{-|x|}) ∈ (0, log 2]; checked against log1p of the same expression
    np.testing.assert_allclose(d, np.log1p(np.exp(-np.abs(x))), rtol=1e-12, atol=1e-15)
    assert np.all(d > 0) and np.all(d <= np.log(2) + 1e-15)
    assert nx.softplus(0.0) == pytest.approx(np.log(2), rel=1e-15)


def test_extreme_inputs_no_overflow():
    x = np.array([1e4, -1e4, 1e4 - np.log(3.0)])
    assert nx.logsumexp(x) == pytest.approx(1e4 + np.log(4 / 3), rel=1e-15)
    np.testing.assert_allclose(nx.softmax(x), [0.75, 0.0, 0.25], rtol=1e-12)
    assert nx.sigmoid(np.array([-1e4]))[0] == 0.0 and nx.sigmoid(np.array([1e4]))[0] == 1.0


def test_all_neginf_slice_has_no_mass_and_zero_gradient():
    x = np.array([[0.5, NEG, 2.0], [NEG, NEG, NEG]])
    lse = nx.logsumexp(x)
    assert lse[1] == -np.inf and np.isfinite(lse[0])
    sm = nx.softmax(x)
    assert np.all(sm[1] == 0) and sm[0, 1] == 0 and sm[0].sum() == pytest.approx(1.0)
    assert np.all(nx.log_softmax(x)[1] == -np.inf)
    # SciPy gives NaN for the softmax of that slice; the library decision is 0 (D4).
    with np.errstate(invalid="ignore"):
        assert np.isnan(sp.softmax(x[1])).all()
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for f in (lambda z: anp.sum(nx.logsumexp(z) * np.array([1.0, 2.0])),
              lambda z: anp.sum(nx.softmax(z) * w),
              lambda z: anp.sum(anp.where(np.isfinite(nx.log_softmax(x)), nx.log_softmax(z), 0.0))):
        g = grad(f)(x)
        assert np.all(np.isfinite(g)), g
        assert np.all(g[1] == 0)
    # second derivatives stay finite too
    h = jacobian(lambda z: nx.softmax(z)[0])(x)
    assert np.all(np.isfinite(h))


def test_masked_softmax_d4_and_fill():
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    m = np.array([[True, False, True], [False, False, False]])
    p = nx.masked_softmax(x, m)
    # allowed entries: softmax over {1, 3}; the fully masked row is 0 (D4)
    np.testing.assert_allclose(p[0], [1 / (1 + np.e ** 2), 0.0, np.e ** 2 / (1 + np.e ** 2)], rtol=1e-14)
    assert np.all(p[1] == 0)
    g = grad(lambda z: anp.sum(nx.masked_softmax(z, m) * np.arange(3.0)))(x)
    assert np.all(g[1] == 0) and g[0, 1] == 0
    # replacement with a finite constant: a fully masked row becomes uniform, others unchanged
    pf = nx.masked_softmax(x, m, fill=-1e9)
    np.testing.assert_allclose(pf[1], 1 / 3, rtol=1e-14)
    np.testing.assert_allclose(pf[0], p[0], rtol=1e-14)


def test_masked_softmax_equals_softmax_of_neginf_filled(rng):
    x = rng.normal(size=(3, 5))
    m = rng.random((3, 5)) < 0.5
    m[:, 0] = True
    np.testing.assert_allclose(nx.masked_softmax(x, m), nx.softmax(np.where(m, x, -np.inf)), rtol=1e-15)


def test_float32_stays_float32():
    x = np.array([[1.0, 2.0, NEG]], dtype=np.float32)
    for f in (nx.logsumexp, nx.softmax, nx.log_softmax):
        assert f(x).dtype == np.float32
    for f in (nx.sigmoid, nx.softplus, nx.log_sigmoid):
        assert f(np.float32([0.5, -3.0])).dtype == np.float32
    assert nx.masked_softmax(x, np.array([[True, False, True]]), fill=-1e4).dtype == np.float32


def test_stop_gradient_has_zero_vjp():
    f = lambda z: anp.sum(z * nx.stop_gradient(z))  # d/dz = stop(z), not 2z
    z = np.array([1.0, -2.0])
    np.testing.assert_array_equal(grad(f)(z), z)


def test_higher_order_gradients(rng):
    x = rng.normal(size=(2, 4))
    check_grads(lambda z: nx.logsumexp(z), [x], rng, order=2)
    check_grads(lambda z: nx.log_softmax(z, axis=0), [x], rng, order=2)
    check_grads(lambda z: nx.sigmoid(z), [x], rng, order=2)


@pytest.mark.parametrize("bad, err, msg", [
    (np.array([1.0, np.nan]), ValueError, "x contains NaN at index"),
    (np.array([1.0, np.inf]), ValueError, r"\+inf"),
    (np.array(["a", "b"]), TypeError, "x must be a real"),
    (np.zeros((2, 0)), ValueError, "empty axis"),
    (np.float64(1.0), ValueError, "at least one dimension"),
])
def test_bad_input_is_named(bad, err, msg):
    with pytest.raises(err, match=msg):
        nx.softmax(bad)


def test_masked_softmax_bad_masks():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="boolean"):
        nx.masked_softmax(x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="does not broadcast"):
        nx.masked_softmax(x, np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="would enlarge"):
        nx.masked_softmax(x, np.ones((4, 2, 3), bool))
    with pytest.raises(ValueError, match="fill must be a finite number"):
        nx.masked_softmax(x, np.ones((2, 3), bool), fill=-np.inf)


def test_tanh_gradient_is_sech2_without_overflow():
    t = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(elementwise_grad(nx.tanh)(t), 1 / np.cosh(t) ** 2, rtol=1e-14)
    big = np.array([-800.0, -60.0, 60.0, 800.0])
    g = elementwise_grad(nx.tanh)(big)            # autograd's 1/cosh² overflows here
    np.testing.assert_allclose(g, 4 * np.exp(-2 * np.abs(big)), rtol=1e-12, atol=0)
    assert nx.tanh(np.float32(3.0)).dtype == np.float32
    check_grads(nx.tanh, [np.array([-2.0, 0.0, 0.3, 4.0])], np.random.default_rng(0), order=2)


def test_tolerance_lookup_accepts_numpy_and_framework_dtype_spellings():
    from kexue_ref.testing import tolerance_for
    expected = tolerance_for("float32", "values")
    for spelling in (np.float32, np.dtype("float32"), "torch.float32"):
        assert tolerance_for(spelling, "values") == expected
    with pytest.raises(ValueError, match="no published tolerance"):
        tolerance_for("int8", "values")


# --- accuracy of the float64 forms (checked in closed form, see docs/conventions.md) ---------

def test_log_softmax_winner_keeps_a_tiny_negative_value():
    # log P_0 = −log(1 + e^{−140}) = −e^{−140}(1 − e^{−140}/2 + ...) ≈ −1.58e−61, not 0
    out = nx.log_softmax(np.array([0.0, -140.0]))
    assert out[0] < 0 and out[0] == pytest.approx(-np.exp(-140.0), rel=1e-15)
    assert out[1] == -140.0
    # the same with the maximum not first, along axis 0, and shifted by a large constant
    x = np.array([[-141.0, 7.0], [1.0, 7.0 - 145.0], [-140.0, 7.0 - 146.0]])
    out = nx.log_softmax(x, axis=0)
    assert out[1, 0] == pytest.approx(-(np.exp(-142.0) + np.exp(-141.0)), rel=1e-15)
    assert out[0, 1] == pytest.approx(-(np.exp(-145.0) + np.exp(-146.0)), rel=1e-15)


def test_logsumexp_of_a_tiny_tail_is_not_rounded_away():
    # LSE(0, −200) = log1p(e^{−200}) = e^{−200} to relative e^{−200}; log(1 + e^{−200}) = 0
    assert nx.logsumexp(np.array([0.0, -200.0])) == pytest.approx(np.exp(-200.0), rel=1e-15)
    assert nx.logsumexp(np.array([NEG, 0.0, -40.0])) == pytest.approx(np.log1p(np.exp(-40.0)), rel=1e-15)


def test_tied_maxima_keep_the_exact_values_and_gradients():
    x = np.array([[3.0, 3.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(nx.logsumexp(x), [3.0 + np.log(2 + np.exp(-2.0)), np.log(3.0)], rtol=1e-15)
    g = grad(lambda z: anp.sum(nx.logsumexp(z)))(x)
    e = np.exp(-2.0)
    np.testing.assert_allclose(g[0], [1 / (2 + e), 1 / (2 + e), e / (2 + e)], rtol=1e-15)
    np.testing.assert_allclose(g[1], [1 / 3] * 3, rtol=1e-15)


def test_softmax_vjp_keeps_relative_precision_near_a_one_hot():
    # P = softmax(0, −30): the VJP is P_0 P_1 (u_0 − u_1) for entry 0 and its negative for 1;
    # u_0 − Σ u P subtracts two numbers ≈ u_0 and kept only ~3 digits of the ~1e−13 result
    x, u = np.array([0.0, -30.0]), np.array([1.0, 0.5])
    p1 = np.exp(-30.0) / (1 + np.exp(-30.0))
    g = grad(lambda z: anp.sum(nx.softmax(z) * u))(x)
    np.testing.assert_allclose(g, [0.5 * p1 * (1 - p1), -0.5 * p1 * (1 - p1)], rtol=1e-14)


def test_sigmoid_and_softplus_derivatives_keep_relative_precision():
    x = np.array([-30.0, -5.0, 0.0, 5.0, 30.0, 700.0])
    # dσ/dx = σ(x)σ(−x) = e^{−|x|}/(1 + e^{−|x|})²: σ(1 − σ) kept ~3 digits at x = 30
    t = np.exp(-np.abs(x))
    np.testing.assert_allclose(elementwise_grad(nx.sigmoid)(x), t / (1 + t) ** 2, rtol=1e-15)
    # d softplus/dx = σ(x) and d log σ/dx = σ(−x), to the last bit of SciPy's expit
    np.testing.assert_allclose(elementwise_grad(nx.softplus)(x), sp.expit(x), rtol=2e-16)
    np.testing.assert_allclose(elementwise_grad(nx.log_sigmoid)(x), sp.expit(-x), rtol=2e-16)


def test_reworked_primitives_differentiate_to_order_two(rng):
    x = rng.normal(scale=3.0, size=(2, 5))
    for f in (lambda z: nx.logsumexp(z), lambda z: nx.log_softmax(z, axis=0),
              lambda z: nx.softmax(z), lambda z: nx.sigmoid(z), lambda z: nx.softplus(z),
              lambda z: nx.log_sigmoid(z)):
        check_grads(f, [x], rng, order=2)
