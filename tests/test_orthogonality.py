"""Kernel orthogonality (https://kexue.fm/archives/7169): the angle lemma, the sign and tanh
estimators, the SOM penalty, im2col and kernel layouts, and the classic penalties (orthonormal,
off-diagonal, SRIP's power iteration, BigGAN's injected gradient).

Expected values come from the math: hand calculations, identities (Hamming, the sum identity,
the Grothendieck identity), independent formulas (SVD, explicit loops), derived bounds (M > D,
the Welch bound) and statistics with a fixed seed, a stated sample size and a tolerance in
standard errors; never from outputs of the code under test.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from kexue_ref import orthogonality as og
from kexue_ref.testing import check_grads


def orthonormal(rng, D, M):
    q, r = np.linalg.qr(rng.standard_normal((D, M)))
    return q * np.sign(np.diag(r))


def unit_columns(w):
    return w / np.linalg.norm(w, axis=0)


# --- the exact angle statistic ----------------------------------------------------------

def test_angle_gram_known_angles():
    # unit vectors in the plane at angles 0, π/6, π/2, 2π/3 and π
    phi = np.array([0.0, np.pi / 6, np.pi / 2, 2 * np.pi / 3, np.pi])
    w = np.stack([np.cos(phi), np.sin(phi)]) * np.array([1.0, 2.0, 0.5, 3.0, 1.5])  # norms do not matter
    theta = np.abs(phi[:, None] - phi[None, :])            # all differences are in [0, π]
    np.testing.assert_allclose(og.angle_gram(w), 1 - 2 * theta / np.pi, rtol=0, atol=1e-15)
    # e.g. π/6 apart: 1 − 1/3 = 2/3; orthogonal: 0; opposite: −1
    assert og.angle_gram(w)[0, 1] == pytest.approx(2 / 3, abs=1e-15)
    assert og.angle_gram(w)[0, 2] == pytest.approx(0.0, abs=1e-15)
    assert og.angle_gram(w)[0, 4] == -1.0


def test_angle_gram_grothendieck_identity_and_structure(rng):
    w = rng.standard_normal((7, 5))
    theta = og.angle_gram(w)
    c = unit_columns(w).T @ unit_columns(w)                 # cos θ_ij
    # 1 − 2θ/π = (2/π)·arcsin(cos θ)
    np.testing.assert_allclose(theta, 2 / np.pi * np.arcsin(np.clip(c, -1, 1)), atol=1e-13)
    np.testing.assert_array_equal(theta, theta.T)
    np.testing.assert_array_equal(np.diag(theta), np.ones(5))
    # positive column scaling changes nothing; negating a column negates its row and column
    np.testing.assert_allclose(og.angle_gram(w * np.array([3.0, 0.1, 1.0, 7.0, 2.0])), theta, atol=1e-14)
    flip = np.array([1.0, -1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(og.angle_gram(w * flip), theta * np.outer(flip, flip), atol=1e-14)


def test_angle_gram_is_accurate_for_tiny_angles():
    delta = 1e-7
    w = np.array([[1.0, np.cos(delta)], [0.0, np.sin(delta)]])
    # θ = δ to full precision (arccos(cos δ) would be off by ~1e-9, i.e. 1 % of δ)
    assert (1 - og.angle_gram(w)[0, 1]) * np.pi / 2 == pytest.approx(delta, rel=1e-9)


@pytest.mark.parametrize("a", [1e-9, -3e-12, 2.5e-5])
def test_angle_gram_is_relatively_accurate_near_orthogonal(a):
    # w_1 = (1, 0), w_2 = (a, 1): π/2 − θ = atan(a), so ϑ = (2/π)·atan(a) ≈ 2a/π. Evaluated as
    # 1 − 2θ/π the two terms cancel and ~1e-16 of absolute error would be 1e-7 relative at a = 1e-9
    w = np.array([[1.0, a], [0.0, 1.0]])
    assert og.angle_gram(w)[0, 1] == pytest.approx(2 / np.pi * np.arctan(a), rel=4e-16)
    assert og.angle_gram(w)[1, 0] == og.angle_gram(w)[0, 1]


# --- the sign estimator -----------------------------------------------------------------

def test_sign_gram_hamming_identity_and_invariances(rng):
    B, D, M = 50, 4, 6
    x, w = rng.standard_normal((B, D)), rng.standard_normal((D, M))
    est = og.sign_gram(x, w)
    s = np.sign(x @ w)
    hamming = (s[:, :, None] != s[:, None, :]).sum(axis=0)
    # ϑ̂_ij = (B − 2·Hamming(S_i, S_j)) / B
    np.testing.assert_array_equal(est, (B - 2 * hamming) / B)
    np.testing.assert_array_equal(est, est.T)
    np.testing.assert_array_equal(np.diag(est), np.ones(M))
    # unchanged by positive rescaling of filters (with their bias) and of samples
    c, lam, b = rng.uniform(0.1, 10, M), rng.uniform(0.1, 10, B), rng.standard_normal(M)
    np.testing.assert_array_equal(og.sign_gram(lam[:, None] * x, w * c), est)
    np.testing.assert_array_equal(og.sign_gram(x, w * c, bias=b * c), og.sign_gram(x, w, bias=b))


def test_sign_of_zero_is_minus_one():
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    w = np.array([[1.0, -1.0], [0.0, 0.0]])
    # S = [[−1, −1], [+1, −1]] (sgn(0) = −1): ϑ̂_12 = (1 − 1)/2 = 0
    np.testing.assert_array_equal(og.sign_gram(x, w), [[1.0, 0.0], [0.0, 1.0]])


def test_lsh_lemma_statistically():
    """E[sgn(xᵀw_i) sgn(xᵀw_j)] = 1 − 2θ_ij/π for isotropic x (B = 4000, 4 standard errors)."""
    rng = np.random.default_rng(7169)
    B, D, M = 4000, 8, 6
    w = rng.standard_normal((D, M))
    w[:, 1] = w[:, 0] + 0.3 * rng.standard_normal(D)        # one small angle
    w[:, 2] = -w[:, 0] + 0.5 * rng.standard_normal(D)       # one large angle
    x = rng.standard_normal((B, D))
    exact = og.angle_gram(w)
    est = og.sign_gram(x, w)
    # each entry is a mean of B independent ±1 with variance 1 − ϑ²
    se = np.sqrt((1 - exact ** 2) / B) + 1e-12
    assert np.all(np.abs(est - exact) <= 4 * se), np.max(np.abs(est - exact) / se)
    # the uniform distribution on the sphere gives the same signs
    sphere = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_array_equal(og.sign_gram(sphere, w), est)


# --- the tanh estimator Θ ------------------------------------------------------------------

def test_som_gram_structure_and_sum_identity(rng):
    B, D, M = 40, 5, 6
    x, w = rng.standard_normal((B, D)), rng.standard_normal((D, M)) / np.sqrt(D)
    theta = og.som_gram(x, w, gamma=2.0, eps=0.0)
    np.testing.assert_allclose(theta, theta.T, atol=1e-15)
    np.testing.assert_allclose(np.diag(theta), np.ones(M), atol=1e-15)
    assert np.linalg.eigvalsh(theta).min() > -1e-12       # a Gram matrix
    t = np.tanh(2.0 * x @ w)
    t_hat = t / np.linalg.norm(t, axis=0)
    # Σ_{i≠j} Θ_ij = ‖Σ_i t̂_i‖² − M ≥ −M
    off_sum = theta.sum() - np.trace(theta)
    assert off_sum == pytest.approx(np.sum(t_hat.sum(axis=1) ** 2) - M, abs=1e-12)
    assert off_sum / (M * (M - 1)) >= -1 / (M - 1)


def test_som_gram_identical_and_opposite_filters(rng):
    x = rng.standard_normal((9, 3))
    w1 = rng.standard_normal(3)
    theta = og.som_gram(x, np.stack([w1, w1, -w1, 2 * w1], axis=1))
    assert theta[0, 1] == pytest.approx(1.0, abs=1e-15)
    assert theta[0, 2] == pytest.approx(-1.0, abs=1e-15)   # tanh is odd
    assert abs(theta[0, 3]) < 1                            # tanh is not scale invariant


def test_tanh_tends_to_sign_with_derived_bound(rng):
    x, w = rng.standard_normal((30, 4)), rng.standard_normal((4, 5))
    m = np.abs(x @ w).min()                                # no exact zeros in Y
    sign = og.sign_gram(x, w)
    errors = []
    for gamma_m in [0.5, 2.0, 5.0, 12.0]:
        gamma = gamma_m / m
        err = np.abs(og.som_gram(x, w, gamma=gamma, eps=0.0) - sign).max()
        # |tanh(γy) − sgn y| ≤ δ = 2e^{−2γm}  ⇒  |Θ − ϑ̂| ≤ (1 − δ)^{−2} − 1 + 2δ
        delta = 2 * np.exp(-2 * gamma * m)
        if delta < 1:
            assert err <= (1 - delta) ** -2 - 1 + 2 * delta + 1e-14
        errors.append(err)
    assert all(a >= b for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-9


def test_small_gamma_limit_is_the_cosine_of_the_outputs(rng):
    x, w = rng.standard_normal((20, 4)), rng.standard_normal((4, 3))
    y = x @ w
    y_hat = y / np.linalg.norm(y, axis=0)
    # tanh(γy) = γy (1 + O(γ²)): Θ → Ŷᵀ Ŷ as γ → 0
    np.testing.assert_allclose(og.som_gram(x, w, gamma=1e-5), y_hat.T @ y_hat, atol=1e-8)


def test_bias_is_a_constant_feature(rng):
    x, w, b = rng.standard_normal((12, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    x1 = np.hstack([x, np.ones((12, 1))])
    w1 = np.vstack([w, b])
    np.testing.assert_allclose(og.som_gram(x, w, bias=b), og.som_gram(x1, w1), atol=1e-15)
    np.testing.assert_allclose(og.sign_gram(x, w, bias=b), og.sign_gram(x1, w1))
    check_grads(lambda bb: og.som_penalty(x, w, gamma=1.0, bias=bb), [b], rng, name="bias gradient")


def test_dead_unit_gives_zero_row_and_finite_gradient(rng):
    x = rng.standard_normal((10, 3))
    w = rng.standard_normal((3, 4))
    w[:, 2] = 0.0
    theta = og.som_gram(x, w)
    assert np.all(theta[2] == 0) and np.all(theta[:, 2] == 0)
    g = grad(lambda ww: og.som_penalty(x, ww))(w)
    assert np.all(np.isfinite(g))
    with pytest.raises(ValueError, match="dead unit"):
        og.som_gram(x, w, eps=0.0)


# --- the SOM penalty ------------------------------------------------------------------------

def test_som_penalty_hand_value():
    # D = 1 and |w_i| equal: T̂_{:,i} = s_i·t̂, so Θ = s sᵀ with s = (1, −1, 1)
    x = np.array([[0.3], [-1.2], [0.8], [2.0]])
    w = np.array([[1.0, -1.0, 1.0]])
    # ordered: Σ_{i≠j} Θ = (Σ s)² − 3 = −2, Σ Θ² = 6  →  100·4 + 6
    assert float(og.som_penalty(x, w)) == pytest.approx(406.0, abs=1e-9)
    # unordered: −1 and 3  →  100 + 3
    assert float(og.som_penalty(x, w, pairs="unordered")) == pytest.approx(103.0, abs=1e-9)
    assert float(og.som_penalty(x, w, lam1=0.0, lam2=2.5)) == pytest.approx(15.0, abs=1e-12)


def test_paper_constants_are_the_defaults(rng):
    x, w = rng.standard_normal((20, 4)), rng.standard_normal((4, 3)) / 2
    # γ = 10: the default Θ is tanh(10·)'s, not tanh(9·)'s
    np.testing.assert_array_equal(og.som_gram(x, w), og.som_gram(x, w, gamma=10.0))
    assert not np.allclose(og.som_gram(x, w), og.som_gram(x, w, gamma=9.0))
    # λ₁ = 100, λ₂ = 1
    expected = og.som_penalty(x, w, 100.0, 0.0) + og.som_penalty(x, w, 0.0, 1.0)
    assert float(og.som_penalty(x, w)) == pytest.approx(float(expected), rel=1e-14)
    assert float(og.som_penalty(x, w, 0.0, 1.0)) > 0 and float(og.som_penalty(x, w, 1.0, 0.0)) > 0


def test_unordered_pairs_scale_the_two_terms_by_4_and_2(rng):
    x, w = rng.standard_normal((30, 5)), rng.standard_normal((5, 4)) / np.sqrt(5)
    for lam1, lam2, factor in [(1.0, 0.0, 4.0), (0.0, 1.0, 2.0)]:
        ordered = og.som_penalty(x, w, lam1, lam2)
        unordered = og.som_penalty(x, w, lam1, lam2, pairs="unordered")
        assert float(ordered) == pytest.approx(factor * float(unordered), rel=1e-13)


def test_grad_x_false_stops_only_the_gradient_to_x(rng):
    x, w = rng.standard_normal((16, 4)), rng.standard_normal((4, 3)) / 2
    f_on = lambda xx, ww: og.som_penalty(xx, ww, gamma=1.5)                      # noqa: E731
    f_off = lambda xx, ww: og.som_penalty(xx, ww, gamma=1.5, grad_x=False)       # noqa: E731
    assert float(f_on(x, w)) == float(f_off(x, w))
    assert np.abs(grad(f_on, 0)(x, w)).max() > 1e-3
    np.testing.assert_array_equal(grad(f_off, 0)(x, w), np.zeros_like(x))
    np.testing.assert_allclose(grad(f_off, 1)(x, w), grad(f_on, 1)(x, w), rtol=1e-13, atol=1e-15)


def test_expected_penalty_for_orthonormal_filters():
    """Orthonormal W, Gaussian X: the entries y_bi are iid N(0, 1), so flipping one entry is a
    symmetry. Hence E[Θ_ij] = 0, E[Θ_ij²] = B·E[t_bi²/‖t_i‖²]² = 1/B, distinct pairs are
    uncorrelated, and E[R] = λ₁·2M(M−1)/B + λ₂·M(M−1)/B exactly (ε → 0).
    S = 400 batches of B = 64; tolerance 4 standard errors of the mean."""
    rng = np.random.default_rng(20200112)
    S, B, D, M = 400, 64, 6, 4
    w = orthonormal(rng, D, M)
    soft, hard = np.empty(S), np.empty(S)
    for s in range(S):
        x = rng.standard_normal((B, D))
        soft[s] = og.som_penalty(x, w, lam1=1.0, lam2=0.0, eps=0.0)
        hard[s] = og.som_penalty(x, w, lam1=0.0, lam2=1.0, eps=0.0)
    for values, expected in [(soft, 2 * M * (M - 1) / B), (hard, M * (M - 1) / B)]:
        se = values.std(ddof=1) / np.sqrt(S)
        assert abs(values.mean() - expected) <= 4 * se, (values.mean(), expected, se)


def test_m_greater_than_d_bounds_the_expected_hard_term(rng):
    """ϑ = (2/π)·arcsin(ĝ) and |arcsin c| ≥ |c|, so Σ_{i≠j} ϑ_ij² ≥ (4/π²)·Σ_{i≠j} ĝ_ij²
    ≥ (4/π²)·M(M − D)/D (the Welch bound for unit vectors): E[R_ϑ] stays positive when M > D."""
    for D, M in [(2, 3), (3, 5), (4, 9)]:
        for _ in range(5):
            theta = og.angle_gram(rng.standard_normal((D, M)))
            off = np.sum(theta ** 2) - M
            assert off >= 4 / np.pi ** 2 * M * (M - D) / D - 1e-12
    # three unit vectors 120° apart: ϑ_ij = 1 − 4/3 = −1/3, Σ = 6/9 against 6/π² ≈ 0.61
    mercedes = np.array([[1.0, -0.5, -0.5], [0.0, np.sqrt(3) / 2, -np.sqrt(3) / 2]])
    assert np.sum(og.angle_gram(mercedes) ** 2) - 3 == pytest.approx(2 / 3, abs=1e-14)


# --- im2col and kernel layouts ------------------------------------------------------------

def conv_loop_channels_last(x, k, stride, pad, dil):
    """Cross-correlation by explicit loops: x (B, H, W, C) zero-padded, k (kh, kw, C, O)."""
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw, _, O = k.shape
    Ho = (xp.shape[1] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (xp.shape[2] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], Ho, Wo, O))
    for b in range(x.shape[0]):
        for i in range(Ho):
            for j in range(Wo):
                for a in range(kh):
                    for c in range(kw):
                        out[b, i, j] += xp[b, i * stride[0] + a * dil[0], j * stride[1] + c * dil[1]] @ k[a, c]
    return out


@pytest.mark.parametrize("ksize, stride, padding, dilation", [
    ((3, 2), (1, 1), 0, 1),
    ((3, 3), (2, 2), 1, 1),
    ((2, 3), (1, 2), [[0, 1], [1, 1]], (2, 1)),
])
def test_im2col_times_kernel_matrix_is_the_convolution(rng, ksize, stride, padding, dilation):
    x = rng.standard_normal((2, 7, 6, 3))
    k = rng.standard_normal(ksize + (3, 4))                 # Keras (kh, kw, in, out), not symmetric
    pad = [(1, 1), (1, 1)] if padding == 1 else ([(0, 0), (0, 0)] if padding == 0 else padding)
    dil = (dilation, dilation) if isinstance(dilation, int) else dilation
    expected = conv_loop_channels_last(x, k, stride, pad, dil)
    cols = og.im2col(x, list(ksize), stride=list(stride), padding=padding, dilation=dilation)
    np.testing.assert_allclose(cols @ og.kernel_matrix(k), expected.reshape(-1, 4), rtol=1e-13, atol=1e-13)


def test_im2col_1d_and_output_length():
    x = np.arange(10.0).reshape(1, 10, 1)
    # L_out = ⌊(10 + 2 − 2·(3 − 1) − 1)/3⌋ + 1 = 3: taps at 3i − 1, 3i + 1, 3i + 3
    np.testing.assert_array_equal(og.im2col(x, 3, stride=3, padding=1, dilation=2),
                                  [[0.0, 1.0, 3.0], [2.0, 4.0, 6.0], [5.0, 7.0, 9.0]])


def test_im2col_gradient_counts_the_patches_covering_each_pixel():
    # L = 5, k = 3, stride 1: pixel l lies in min(l + 1, 3, 5 − l) patches
    g = grad(lambda x: anp.sum(og.im2col(x, 3)))(np.zeros((1, 5, 1)))
    np.testing.assert_array_equal(g.ravel(), [1.0, 2.0, 3.0, 2.0, 1.0])


def test_torch_layout_and_the_naive_view_that_scrambles_filters(rng):
    B, C_in, H, W_in, C_out, kh, kw = 2, 3, 5, 6, 4, 2, 3
    x = rng.standard_normal((B, C_in, H, W_in))               # PyTorch (B, C, H, W)
    w = rng.standard_normal((C_out, C_in, kh, kw))           # PyTorch (out, in, kh, kw)
    # the torch convolution by loops: out[b, m, i, j] = Σ_{q,a,c} x[b, q, i + a, j + c] w[m, q, a, c]
    Ho, Wo = H - kh + 1, W_in - kw + 1
    ref = np.zeros((B, C_out, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            ref[:, :, i, j] = np.einsum("bqac,mqac->bm", x[:, :, i:i + kh, j:j + kw], w)
    expected = ref.transpose(0, 2, 3, 1).reshape(-1, C_out)
    cols = og.im2col(x, (kh, kw), data_format="channels_first")
    good = og.kernel_matrix(w, layout="torch")
    np.testing.assert_allclose(cols @ good, expected, rtol=1e-13, atol=1e-13)
    # a torch weight reshaped as if it were (in·kh·kw, out) reinterprets memory: filters scrambled
    naive = w.reshape(C_in * kh * kw, C_out)
    assert not np.allclose(naive, good)
    assert not np.allclose(cols @ naive, expected)
    # the Gram of the filters agrees with BigGAN's rows view w.view(out, −1), not with the naive one
    assert float(og.offdiag_penalty(good)) == pytest.approx(float(og.offdiag_penalty(w, filters="rows")), rel=1e-13)
    assert float(og.offdiag_penalty(naive)) != pytest.approx(float(og.offdiag_penalty(good)), rel=1e-3)


def test_kernel_layout_round_trips_and_entries(rng):
    w = rng.standard_normal((5, 3, 2, 4))                    # torch (out, in, kh, kw)
    k = og.torch_to_keras_kernel(w)
    assert k.shape == (2, 4, 3, 5)
    assert k[1, 3, 2, 4] == w[4, 2, 1, 3]                    # K[a, c, q, m] = W[m, q, a, c]
    np.testing.assert_array_equal(og.keras_to_torch_kernel(k), w)
    w1 = rng.standard_normal((5, 3, 7))                      # Conv1d (out, in, k)
    np.testing.assert_array_equal(og.torch_to_keras_kernel(w1), w1.transpose(2, 1, 0))
    lin = rng.standard_normal((5, 3))                        # Linear (out, in) → Dense (in, out)
    np.testing.assert_array_equal(og.torch_to_keras_kernel(lin), lin.T)
    np.testing.assert_array_equal(og.kernel_matrix(w, "torch")[:, 4],
                                  w[4].transpose(1, 2, 0).ravel())  # filter 4 in (a, c, q) order


# --- classic penalties ----------------------------------------------------------------------

@pytest.mark.parametrize("D, M", [(6, 4), (5, 5)])
def test_orthonormal_filters_have_zero_penalties(rng, D, M):
    q = orthonormal(rng, D, M)
    v0 = rng.uniform(size=M)
    for w, filters in [(q, "columns"), (q.T, "rows")]:
        assert float(og.orthonormal_penalty(w, filters=filters)) < 1e-28
        assert float(og.orthonormal_penalty(w, "spectral", filters=filters)) < 1e-28
        assert float(og.orthonormal_penalty(w, "spectral", v0=v0, filters=filters, squared=False)) < 1e-14
        assert float(og.offdiag_penalty(w, filters=filters)) < 1e-28
        np.testing.assert_allclose(og.biggan_ortho_grad(w, 1.0, "default", filters=filters), 0, atol=1e-14)


def test_orthonormal_penalty_against_singular_values(rng):
    for D, M in [(6, 4), (3, 5)]:
        w = rng.standard_normal((D, M)) * 0.6
        sv = np.linalg.svd(w, compute_uv=False)
        lam = np.concatenate([sv ** 2 - 1, -np.ones(max(M - D, 0))])   # eigenvalues of WᵀW − I
        assert float(og.orthonormal_penalty(w)) == pytest.approx(np.sum(lam ** 2), rel=1e-12)
        assert float(og.orthonormal_penalty(w, "spectral")) == pytest.approx(np.max(np.abs(lam)) ** 2, rel=1e-12)
        assert float(og.orthonormal_penalty(w, "spectral", squared=False)) == pytest.approx(np.max(np.abs(lam)),
                                                                                            rel=1e-12)
        assert float(og.orthonormal_penalty(w, squared=False)) == pytest.approx(np.sqrt(np.sum(lam ** 2)),
                                                                                rel=1e-12)


def test_m_greater_than_d_lower_bounds(rng):
    """A = WᵀW − I has the eigenvalue −1 at least M − D times: ‖A‖_F² ≥ M − D, ‖A‖₂ ≥ 1;
    for unit columns ‖G ⊙ (1 − I)‖_F² ≥ M(M − D)/D (Welch); tight frames attain the bounds."""
    for D, M in [(2, 3), (3, 5), (4, 10)]:
        for _ in range(5):
            w = rng.standard_normal((D, M))
            assert float(og.orthonormal_penalty(w)) >= M - D - 1e-12
            assert float(og.orthonormal_penalty(w, "spectral", squared=False)) >= 1 - 1e-12
            assert float(og.offdiag_penalty(unit_columns(w))) >= M * (M - D) / D - 1e-12
            n2 = np.sum(w ** 2, axis=0)
            assert float(og.offdiag_penalty(w)) >= n2.sum() ** 2 / D - np.sum(n2 ** 2) - 1e-9
        tight = orthonormal(rng, M, M)[:D]                  # W Wᵀ = I_D
        assert float(og.orthonormal_penalty(tight)) == pytest.approx(M - D, rel=1e-12)
        assert float(og.orthonormal_penalty(tight, "spectral")) == pytest.approx(1.0, rel=1e-12)
    mercedes = np.array([[1.0, -0.5, -0.5], [0.0, np.sqrt(3) / 2, -np.sqrt(3) / 2]])
    assert float(og.offdiag_penalty(mercedes)) == pytest.approx(1.5, rel=1e-14)   # 6 · (−1/2)²


def test_srip_power_iteration_one_step_by_hand():
    # W = diag(2, √0.5): A = diag(3, −0.5); v0 = (1, 1) → Av0 = (3, −0.5) → v = Av0/√9.25
    # → σ̂ = ‖Av‖ = √((81 + 0.0625)/9.25)
    w = np.diag([2.0, np.sqrt(0.5)])
    expected = np.sqrt(81.0625 / 9.25)
    got = og.orthonormal_penalty(w, "spectral", v0=np.array([1.0, 1.0]), squared=False)
    assert float(got) == pytest.approx(expected, rel=1e-14)
    # the scale of v0 is irrelevant; the squared form is SRIP's PyTorch variant
    assert float(og.orthonormal_penalty(w, "spectral", v0=np.array([5.0, 5.0]))) == pytest.approx(expected ** 2,
                                                                                                 rel=1e-14)


def test_power_iteration_bounds_and_convergence(rng):
    w = rng.standard_normal((6, 4)) * 0.5
    a = w.T @ w - np.eye(4)
    lam, vec = np.linalg.eigh(a)
    k = np.argmax(np.abs(lam))
    exact = abs(lam[k])
    v0 = rng.uniform(size=4)
    est = [float(og.orthonormal_penalty(w, "spectral", v0=v0, n_iter=n, squared=False)) for n in (1, 2, 5, 300)]
    assert all(e <= exact * (1 + 1e-14) for e in est)       # ‖A v‖ ≤ ‖A‖₂ for unit v
    assert abs(est[-1] - exact) < 1e-10 * exact
    # starting on the top eigenvector gives the exact norm after one step
    top = float(og.orthonormal_penalty(w, "spectral", v0=vec[:, k], squared=False))
    assert top == pytest.approx(exact, rel=1e-13)


def test_gradient_formulas_of_the_frobenius_penalties(rng):
    w = rng.standard_normal((4, 7))                          # rows as filters (BigGAN)
    g = w @ w.T
    off = g * (1 - np.eye(4))
    # ∇‖WWᵀ ⊙ (1 − I)‖_F² = 4 (WWᵀ ⊙ (1 − I)) W and ∇‖WWᵀ − I‖_F² = 4 (WWᵀ − I) W
    np.testing.assert_allclose(grad(lambda v: og.offdiag_penalty(v, filters="rows"))(w), 4 * off @ w, rtol=1e-13)
    np.testing.assert_allclose(grad(lambda v: og.orthonormal_penalty(v, filters="rows"))(w),
                               4 * (g - np.eye(4)) @ w, rtol=1e-13)
    # columns as filters: 4 W (WᵀW ⊙ (1 − I)), the transpose of the above
    np.testing.assert_allclose(grad(og.offdiag_penalty)(w.T), (4 * off @ w).T, rtol=1e-13)


def test_gradient_of_the_exact_spectral_norm(rng):
    w = rng.standard_normal((6, 4)) * 0.5
    lam, vec = np.linalg.eigh(w.T @ w - np.eye(4))
    k = np.argmax(np.abs(lam))
    v = vec[:, k]
    # dλ_k = vᵀ (dWᵀ W + Wᵀ dW) v  ⇒  ∇_W λ_k = 2 W v vᵀ, and ∇ λ_k² = 4 λ_k W v vᵀ
    np.testing.assert_allclose(grad(lambda u: og.orthonormal_penalty(u, "spectral"))(w),
                               4 * lam[k] * np.outer(w @ v, v), rtol=1e-10, atol=1e-13)


def test_signed_offdiagonal_sums_cancel_but_squares_do_not():
    w = np.array([[1.0, 0.5, 0.5], [0.0, 1.0, -1.0]])       # w1ᵀw2 = w1ᵀw3 = 0.5, w2ᵀw3 = −0.75
    assert float(og.offdiag_penalty(w)) == pytest.approx(2 * (0.25 + 0.25 + 0.5625), rel=1e-15)
    g = w.T @ w
    assert (g.sum() - np.trace(g)) == pytest.approx(0.5)     # the signed sum of pytorch-goodies#7


def test_rows_and_columns_views_agree(rng):
    w = rng.standard_normal((5, 3))
    for fn in (og.offdiag_penalty, og.orthonormal_penalty):
        assert float(fn(w)) == pytest.approx(float(fn(w.T, filters="rows")), rel=1e-14)
    np.testing.assert_allclose(og.biggan_ortho_grad(w, 0.3, filters="columns"),
                               og.biggan_ortho_grad(w.T, 0.3).T, rtol=1e-14)


# --- BigGAN's injected gradient -----------------------------------------------------------

def test_biggan_gradient_is_half_the_true_gradient(rng):
    s = 1e-2
    w = rng.standard_normal((4, 3, 2, 2))                    # a Conv2d weight (out, in, kh, kw)
    wm = w.reshape(4, -1)                                    # BigGAN's w.view(w.shape[0], -1)
    g = wm @ wm.T
    # what BigGAN writes: strength · 2 · ((WWᵀ) ⊙ (1 − I)) W, and (WWᵀ − I) W for default_ortho
    np.testing.assert_allclose(og.biggan_ortho_grad(w, s), (s * 2 * (g * (1 - np.eye(4))) @ wm).reshape(w.shape),
                               rtol=1e-13)
    np.testing.assert_allclose(og.biggan_ortho_grad(w, s, "default"), (s * 2 * (g - np.eye(4)) @ wm).reshape(w.shape),
                               rtol=1e-13)
    # = ∇ (s/2)·‖·‖_F², i.e. half the true gradient of s·‖·‖_F² (whose factor is 4)
    true_off = grad(lambda v: s * og.offdiag_penalty(v, filters="rows"))(w)
    true_on = grad(lambda v: s * og.orthonormal_penalty(v, filters="rows"))(w)
    np.testing.assert_allclose(og.biggan_ortho_grad(w, s), true_off / 2, rtol=1e-13)
    np.testing.assert_allclose(og.biggan_ortho_grad(w, s, "default"), true_on / 2, rtol=1e-13)


def test_biggan_single_filter_gets_nothing_from_ortho(rng):
    w = rng.standard_normal((1, 6))
    np.testing.assert_array_equal(og.biggan_ortho_grad(w, 1.0), np.zeros_like(w))
    # default_ortho still pulls the filter to unit norm: 2(‖w‖² − 1) w
    np.testing.assert_allclose(og.biggan_ortho_grad(w, 1.0, "default"), 2 * (np.sum(w ** 2) - 1) * w, rtol=1e-14)


# --- dtypes and input checks beyond the registry rows ----------------------------------------

def test_float32_stays_float32(rng):
    x = rng.standard_normal((8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    assert og.som_gram(x, w, bias=[0.1, 0.2, 0.3, 0.4]).dtype == np.float32
    assert og.angle_gram(w).dtype == np.float32
    assert og.orthonormal_penalty(w, "spectral", v0=[1.0, 0.5, 0.2, 0.1]).dtype == np.float32
    assert og.im2col(x.reshape(2, 4, 3), 2).dtype == np.float32
    assert grad(lambda v: og.som_penalty(x, v))(w).dtype == np.float32


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="v0 must be a real array"):
        og.orthonormal_penalty(np.eye(2), "spectral", v0=np.array([1j, 1.0]))
    with pytest.raises(TypeError, match="squared must be True or False"):
        og.orthonormal_penalty(np.eye(2), squared="yes")
    with pytest.raises(ValueError, match="padding must be"):
        og.im2col(np.ones((1, 4, 4, 1)), 2, padding=[1, 1, 1])
    with pytest.raises(ValueError, match="gamma must be a finite positive number"):
        og.som_penalty(np.ones((2, 2)), np.eye(2), gamma=float("inf"))
