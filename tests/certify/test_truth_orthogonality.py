"""The truth functions of kernel orthogonality (https://kexue.fm/archives/7169) are judged against
hand calculations, identities and exact small cases, never against the float64 oracle; and the
certifier must reject tables that are a few ulps (× scale) off."""
import itertools
from fractions import Fraction

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")

from kexue_ref import certify, registry, tables  # noqa: E402
from kexue_ref.certify import _mp  # noqa: E402
from ._util import mp  # noqa: E402
from kexue_ref.certify import truth_orthogonality as T  # noqa: E402

DPS = 50


@pytest.fixture(autouse=True)
def _precision():
    with mpmath.workdps(DPS):
        yield


def close(a, b, tol=mpmath.mpf(10) ** -45):
    a = np.asarray(a, dtype=object).reshape(-1)
    b = np.asarray(b, dtype=object).reshape(-1)
    return all(abs(mpmath.mpf(x) - mpmath.mpf(y)) <= tol * max(1, abs(mpmath.mpf(y))) for x, y in zip(a, b))


def fd_vjp(fn, inputs, name, cot, h=mpmath.mpf(10) ** -18, **params):
    """Σ_k cot_k ∂out_k/∂inputs[name] by central differences at DPS digits (independent of GRADS)."""
    x = inputs[name]
    g = np.empty(x.shape, dtype=object)
    cot = np.asarray(cot, dtype=float)

    def phi():
        out = np.asarray(fn(*inputs.values(), **params), dtype=object).reshape(-1)
        return sum((mpmath.mpf(float(u)) * o for u, o in zip(cot.reshape(-1), out)), mpmath.mpf(0))

    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + h
        fp = phi()
        x[idx] = orig - h
        fm = phi()
        x[idx] = orig
        g[idx] = (fp - fm) / (2 * h)
    return g


def case(op, name):
    return next(c for c in registry.cases(f"orthogonality.{op}", "all") if c.name == name)


# ---------------------------------------------------------------------------
# angle_gram: ϑ = 1 − 2θ/π
# ---------------------------------------------------------------------------

def test_angle_gram_known_angles():
    # columns at angles 0, π/4, π/2, π (norms 1, √2, 3, 2): ϑ = 1, 1/2, 0, −1 against the first
    w = mp([[1.0, 1.0, 0.0, -2.0], [0.0, 1.0, 3.0, 0.0]])
    th = T.angle_gram(w)
    assert th[0, 0] == 1 and th[0, 1] == mpmath.mpf(1) / 2 and th[0, 2] == 0 and th[0, 3] == -1
    # π/4 and π/2 apart: 1/2; π/4 and π: 3π/4 → −1/2
    assert close(th[1, 2], mpmath.mpf(1) / 2) and close(th[1, 3], -mpmath.mpf(1) / 2)
    assert all(th[i, j] == th[j, i] for i in range(4) for j in range(4))


def test_angle_gram_matches_arccos_and_scale_invariance():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 4))
    th = T.angle_gram(mp(w))
    W = mp(w)
    for i, j in itertools.combinations(range(4), 2):
        c = sum(W[k, i] * W[k, j] for k in range(6)) / mpmath.sqrt(
            sum(W[k, i] ** 2 for k in range(6)) * sum(W[k, j] ** 2 for k in range(6)))
        # the post's form 1 − 2 arccos(c)/π, at 50 digits
        assert close(th[i, j], 1 - 2 * mpmath.acos(c) / mpmath.pi)
    # positive rescaling of filters changes nothing; negating a filter negates its row/column
    scaled = T.angle_gram(mp(w * np.array([2.0, 0.5, 4.0, 1.0])))
    flipped = T.angle_gram(mp(w * np.array([1.0, -1.0, 1.0, 1.0])))
    assert close(scaled, th)
    sign = np.array([1, -1, 1, 1])
    assert close(flipped, th * np.outer(sign, sign))


def test_angle_gram_tiny_angle_to_full_precision():
    d = 1e-7
    w = np.array([[1.0, np.cos(d)], [0.0, np.sin(d)]])
    th = T.angle_gram(mp(w))
    # the angle between (1, 0) and (c, s) is exactly atan2(s, c) for the stored floats c, s
    theta = mpmath.atan2(mpmath.mpf(float(np.sin(d))), mpmath.mpf(float(np.cos(d))))
    assert close(th[0, 1], 1 - 2 * theta / mpmath.pi)
    assert abs(theta - mpmath.mpf(d)) < 1e-22


# ---------------------------------------------------------------------------
# sign_gram: exact counts
# ---------------------------------------------------------------------------

def test_sign_gram_hand_example_and_sgn0():
    # one sign disagreement in B = 4 (docstring example)
    x = mp([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    out = T.sign_gram(x, mp(np.eye(2)))
    assert out.tolist() == [[1, Fraction(1, 2)], [Fraction(1, 2), 1]]
    assert all(isinstance(v, Fraction) for v in out.reshape(-1))
    # sgn(0) = −1: a zero sample and a zero filter both give −1
    x = mp([[0.0, 0.0], [1.0, -1.0], [2.0, 1.0]])
    w = mp([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    # Y = [[0, 0, 0], [1, 0, 0], [2, 0, 3]] → S = [[−,−,−], [+,−,−], [+,−,+]]
    out = T.sign_gram(x, w)
    # columns (−,+,+), (−,−,−), (−,−,+): products summed over B = 3
    assert out.tolist() == [[1, Fraction(-1, 3), Fraction(1, 3)],
                            [Fraction(-1, 3), 1, Fraction(1, 3)],
                            [Fraction(1, 3), Fraction(1, 3), 1]]
    # a bias shifts the threshold: Y_:,1 + 0.5 > 0 everywhere, column 1 becomes (+,+,+)
    out = T.sign_gram(x, w, bias=[0.0, 0.5, 0.0])
    assert out[0, 1] == Fraction(1, 3)


def test_sign_gram_is_exact_for_a_tiny_product():
    # Y = 1e-300·1e-20 − 1e-320... the sign comes from exact rational arithmetic, not rounding
    x = mp([[1e-160, 1.0]])
    w = mp([[1e-160, 1.0], [-1e-320, 1.0]])
    y0 = Fraction(1e-160) ** 2 - Fraction(1e-320)
    out = T.sign_gram(x, w)
    assert out[0, 1] == (1 if y0 > 0 else -1)


# ---------------------------------------------------------------------------
# som_gram / som_penalty
# ---------------------------------------------------------------------------

def test_som_gram_opposite_filters_and_docstring_penalties():
    x = mp([[1.0], [-2.0]])
    w = mp([[1.0, -1.0]])
    th = T.som_gram(x, w)
    # w_2 = −w_1 and tanh is odd: Θ_12 = −‖T_1‖²/(‖T_1‖² + ε²) = −1 + O(ε²)
    assert abs(th[0, 1] + 1) < 1e-23 and abs(th[0, 0] - 1) < 1e-23
    # R = λ₁(Σ_{i≠j} Θ)² + λ₂ Σ Θ² = 100·4 + 2 = 402 (ordered), 100·1 + 1 = 101 (unordered)
    assert abs(T.som_penalty(x, w) - 402) < 1e-20
    assert abs(T.som_penalty(x, w, pairs="unordered") - 101) < 1e-20


def test_som_gram_one_sample_and_saturation():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 3)), rng.standard_normal((3, 4))
    th = T.som_gram(mp(x), mp(w), 0.5)
    s = np.sign(x @ w)[0]
    # B = 1: T̂ entries are ±1 (to ε²), so Θ_ij = sgn(y_i) sgn(y_j)
    assert all(abs(th[i, j] - s[i] * s[j]) < 1e-20 for i in range(4) for j in range(4))
    # γ → ∞: tanh → sgn and Θ → the sign estimator
    x, w = rng.standard_normal((20, 3)), rng.standard_normal((3, 3))
    th = T.som_gram(mp(x), mp(w), 1e12)
    sg = T.sign_gram(mp(x), mp(w))
    assert all(abs(th[i, j] - mpmath.mpf(sg[i, j].numerator) / sg[i, j].denominator) < 1e-9
               for i in range(3) for j in range(3))


def test_som_gram_small_gamma_gives_the_output_correlation():
    # γ → 0: tanh(γy) ≈ γy, so Θ → the cosine of the columns of Y (the post's small-γ limit)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((8, 3)), rng.standard_normal((3, 3))
    th = T.som_gram(mp(x), mp(w), 1e-15, eps=0.0)
    y = T._matmul(mp(x), mp(w))
    for i, j in itertools.product(range(3), repeat=2):
        cos = sum(y[:, i] * y[:, j]) / mpmath.sqrt(sum(y[:, i] ** 2) * sum(y[:, j] ** 2))
        assert abs(th[i, j] - cos) < 1e-25


@pytest.mark.parametrize("params", [{}, {"gamma": 1.0, "bias": [0.3, -0.2, 0.1]}, {"eps": 1e-3}])
def test_som_gram_exact_vjp_matches_central_differences(params):
    rng = np.random.default_rng(4)
    x, w = mp(0.3 * rng.standard_normal((5, 2))), mp(rng.standard_normal((2, 3)))
    u = rng.standard_normal((3, 3))
    g = T.GRADS["orthogonality.som_gram"](x, w, cotangents={"out": u}, **params)
    for name in ("x", "w"):
        assert close(g[name], fd_vjp(T.som_gram, {"x": x, "w": w}, name, u, **params),
                     tol=mpmath.mpf(10) ** -25)


@pytest.mark.parametrize("params", [{}, {"pairs": "unordered", "lam1": 2.0, "lam2": 3.0}])
def test_som_penalty_exact_vjp_matches_central_differences(params):
    rng = np.random.default_rng(5)
    x, w = mp(0.2 * rng.standard_normal((6, 3))), mp(rng.standard_normal((3, 3)))
    g = T.GRADS["orthogonality.som_penalty"](x, w, cotangents={"out": np.array(0.7)}, **params)
    for name in ("x", "w"):
        assert close(g[name], fd_vjp(T.som_penalty, {"x": x, "w": w}, name, [0.7], **params),
                     tol=mpmath.mpf(10) ** -25)
    # stop_gradient on X: its gradient is 0, W's is unchanged
    g2 = T.GRADS["orthogonality.som_penalty"](x, w, cotangents={"out": np.array(0.7)}, grad_x=False,
                                              **params)
    assert all(v == 0 for v in g2["x"].reshape(-1)) and close(g2["w"], g["w"])


def test_som_dead_unit_gradient_is_of_order_one_over_eps():
    # a zero filter: T_:,1 = 0, n_1 = ε; ∂Θ_01/∂w_:,1 = Σ_b T̂_b0 γ x_b / ε (T small, 1 − T² = 1)
    x = mp([[0.3, -1.2], [1.1, 0.4], [-0.7, 0.9]])
    w = mp([[0.8, 0.0], [0.2, 0.0]])
    u = np.array([[0.0, 1.0], [0.0, 0.0]])
    g = T.GRADS["orthogonality.som_gram"](x, w, cotangents={"out": u})
    _, t, n = T._som_parts(x, w, 10.0, None, 1e-12)
    for d in range(2):
        expected = sum(t[b, 0] / n[0] * 10 * x[b, d] for b in range(3)) / mpmath.mpf(1e-12)
        assert close(g["w"][d, 1], expected, tol=mpmath.mpf(10) ** -30)
        assert abs(g["w"][d, 1]) > 1e11


# ---------------------------------------------------------------------------
# im2col and kernel layouts: exact
# ---------------------------------------------------------------------------

def test_im2col_docstring_example_and_padding():
    out = T.im2col(mp(np.arange(5.0).reshape(1, 5, 1)), 3)
    assert out.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    out = T.im2col(mp(np.arange(1.0, 4.0).reshape(1, 3, 1)), 2, padding=[[1, 0]], stride=2)
    # padded [0, 1, 2, 3], windows at 0 and 2
    assert out.tolist() == [[0, 1], [2, 3]]


def test_im2col_times_kernel_matrix_is_the_convolution():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 4, 3))
    k = rng.standard_normal((3, 2, 3, 4))           # (kh, kw, in, out), Keras
    p = T.im2col(mp(x), [3, 2], stride=[1, 2], padding=1, dilation=[1, 1])
    km = T.kernel_matrix(mp(k))
    y = np.empty((p.shape[0], 4), dtype=object)
    for r in range(p.shape[0]):
        for m_ in range(4):
            y[r, m_] = sum(p[r, c] * km[c, m_] for c in range(p.shape[1]))
    # direct cross-correlation with zero padding 1 and stride (1, 2), in exact rationals
    X, K = T._frac_array(x), T._frac_array(k)
    H_out, W_out = 5 + 2 - 3 + 1, (4 + 2 - 2) // 2 + 1
    assert p.shape == (2 * H_out * W_out, 3 * 2 * 3)
    r = 0
    for b, i, j in itertools.product(range(2), range(H_out), range(W_out)):
        for m_ in range(4):
            s = Fraction(0)
            for a, c, q in itertools.product(range(3), range(2), range(3)):
                hh, ww = i + a - 1, 2 * j + c - 1
                if 0 <= hh < 5 and 0 <= ww < 4:
                    s += X[b, hh, ww, q] * K[a, c, q, m_]
            assert y[r, m_] == s
        r += 1


def test_im2col_channels_first_is_the_moved_channels_last():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 4))
    a = T.im2col(mp(x), 2, padding=[1, 0], data_format="channels_first")
    b = T.im2col(mp(np.moveaxis(x, 1, -1)), 2, padding=[1, 0])
    assert a.tolist() == b.tolist()


def test_layouts_elementwise_and_round_trip():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4, 3, 3, 2))           # torch (out, in, kh, kw)
    k = T.torch_to_keras_kernel(mp(w))
    assert k.shape == (3, 2, 3, 4)
    for m_, q, a, c in np.ndindex(w.shape):
        assert k[a, c, q, m_] == Fraction(float(w[m_, q, a, c]))
    back = T.keras_to_torch_kernel(_mp.mpf_array(np.array(k.tolist(), dtype=float)))
    assert back.tolist() == T._frac_array(w).tolist()
    # kernel_matrix of the torch weight = the Keras reshape of its transposed kernel
    km = T.kernel_matrix(mp(w), layout="torch")
    assert km.shape == (18, 4)
    for a, c, q, m_ in np.ndindex(3, 2, 3, 4):
        assert km[(a * 2 + c) * 3 + q, m_] == k[a, c, q, m_]
    dense = rng.standard_normal((4, 6))
    assert T.torch_to_keras_kernel(mp(dense)).tolist() == T._frac_array(dense.T).tolist()


@pytest.mark.parametrize("op, shape, params", [
    ("im2col", (2, 6, 5, 2), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("im2col", (2, 9, 2), {"kernel_size": 2, "stride": 2, "dilation": 2, "padding": [[0, 1]]}),
    ("torch_to_keras_kernel", (5, 2, 3), {}),
    ("keras_to_torch_kernel", (3, 2, 3, 4), {}),
    ("kernel_matrix", (4, 3, 3, 2), {"layout": "torch"}),
    ("kernel_matrix", (3, 2, 3, 4), {}),
])
def test_exact_adjoints(op, shape, params):
    # ⟨U, f(x)⟩ = ⟨fᵀ(U), x⟩ exactly, for the linear copy maps and their GRADS
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    out = T.TRUTH[f"orthogonality.{op}"](mp(x), **params)
    u = rng.standard_normal(out.shape)
    g = T.GRADS[f"orthogonality.{op}"](mp(x), cotangents={"out": u}, **params)["x" if op == "im2col" else "w"]
    lhs = sum(Fraction(float(a)) * b for a, b in zip(u.reshape(-1), out.reshape(-1)))
    rhs = sum(a * Fraction(float(b)) for a, b in zip(g.reshape(-1), x.reshape(-1)))
    assert lhs == rhs


# ---------------------------------------------------------------------------
# classic penalties
# ---------------------------------------------------------------------------

def test_orthonormal_penalty_hand_values():
    w = mp(2.0 * np.eye(2))                          # A = 3 I
    assert T.orthonormal_penalty(w) == 18
    assert T.orthonormal_penalty(w, "spectral") == 9
    assert T.orthonormal_penalty(w, "spectral", v0=[1.0, 0.0], squared=False) == 3
    # W = diag(2, s): A = diag(3, a), a = s² − 1; from v0 = (1, 1): σ̂² = (81 + a⁴)/(9 + a²)
    s = float(np.sqrt(0.5))
    a = mpmath.mpf(s) ** 2 - 1
    got = T.orthonormal_penalty(mp(np.diag([2.0, s])), "spectral", v0=[1.0, 1.0])
    assert close(got, (81 + a ** 4) / (9 + a ** 2))
    # many steps converge to ‖A‖₂² = 9 from below
    many = T.orthonormal_penalty(mp(np.diag([2.0, s])), "spectral", v0=[1.0, 1.0], n_iter=60)
    assert close(many, 9, tol=mpmath.mpf(10) ** -40) and many <= 9


def test_spectral_norm_agrees_with_svd_and_frobenius_bounds():
    rng = np.random.default_rng(10)
    for D, M in [(6, 4), (3, 5), (4, 4)]:
        w = 0.5 * rng.standard_normal((D, M))
        W = mpmath.matrix(w.tolist())
        A = W.T * W - mpmath.eye(M)
        sv = mpmath.svd_r(A, compute_uv=False)
        top = max(sv[i] for i in range(M))
        spec = T.orthonormal_penalty(mp(w), "spectral", squared=False)
        assert close(spec, top)
        fro = T.orthonormal_penalty(mp(w))
        # ‖A‖₂² ≤ ‖A‖_F² = Σ σ_k², M > D: ‖A‖_F² ≥ M − D and ‖A‖₂ ≥ 1
        assert close(fro, sum(sv[i] ** 2 for i in range(M)))
        if M > D:
            assert fro >= M - D and spec >= 1 - mpmath.mpf(10) ** -40
        # the power estimate never exceeds the exact norm
        assert T.orthonormal_penalty(mp(w), "spectral", v0=[0.7, 0.2, 0.9, 0.4, 0.3][:M],
                                     squared=False) <= spec


def test_tight_frame_attains_the_bounds():
    # the Mercedes frame: 3 unit vectors 120° apart in the plane (M = 3 > D = 2)
    m = np.array([[1.0, -0.5, -0.5], [0.0, np.sqrt(3) / 2, -np.sqrt(3) / 2]])
    # Welch bound M(M − D)/D = 1.5 for unit columns (to the rounding of √3/2 in the input)
    assert abs(T.offdiag_penalty(mp(m)) - mpmath.mpf(3) / 2) < 1e-15
    # scaled by √(2/3) its rows are orthonormal (W Wᵀ = I_2): ‖WᵀW − I‖_F² = M − D = 1, ‖·‖₂² = 1
    tight = m * np.sqrt(2 / 3)
    assert abs(T.orthonormal_penalty(mp(tight)) - 1) < 1e-15
    assert abs(T.orthonormal_penalty(mp(tight), "spectral") - 1) < 1e-15


def test_offdiag_penalty_mixed_signs_and_layouts():
    w = mp([[1.0, 0.5, 0.5], [0.0, 1.0, -1.0]])
    # w1ᵀw2 = 0.5, w1ᵀw3 = 0.5, w2ᵀw3 = −0.75: 2·(0.25 + 0.25 + 0.5625) = 2.125 (squares, not signs)
    assert T.offdiag_penalty(w) == mpmath.mpf(2.125)
    rng = np.random.default_rng(11)
    v = rng.standard_normal((4, 2, 3, 3))
    # rows of a torch weight = columns of its transposed Keras kernel (the Gram matrix is the same)
    assert close(T.offdiag_penalty(mp(v), filters="rows"),
                 T.offdiag_penalty(mp(np.transpose(v, (2, 3, 1, 0)))))


def test_orthonormal_penalty_exact_vjp_matches_central_differences():
    rng = np.random.default_rng(12)
    w = mp(0.5 * rng.standard_normal((5, 3)))
    grad = T.GRADS["orthogonality.orthonormal_penalty"]
    for params in ({}, {"squared": False}, {"norm": "spectral"}, {"norm": "spectral", "squared": False},
                   {"norm": "spectral", "v0": [0.7, 0.2, 0.9]},
                   {"norm": "spectral", "v0": [0.7, 0.2, 0.9], "n_iter": 4, "squared": False},
                   {"filters": "rows"}):
        g = grad(w, cotangents={"out": np.array(1.3)}, **params)["w"]
        assert close(g, fd_vjp(T.orthonormal_penalty, {"w": w}, "w", [1.3], **params),
                     tol=mpmath.mpf(10) ** -25), params


def test_orthonormal_penalty_kink_has_zero_gradient():
    # A = 0 exactly: the iterate A v0 is 0, σ̂ = 0, and the documented gradient is 0
    w = mp(np.eye(4)[:, :3])
    g = T.GRADS["orthogonality.orthonormal_penalty"](w, "spectral", cotangents={"out": np.array(1.0)},
                                                     v0=[0.7, 0.2, 0.9], squared=False)
    assert all(v == 0 for v in g["w"].reshape(-1))
    assert T.orthonormal_penalty(w, "spectral", v0=[0.7, 0.2, 0.9], squared=False) == 0


def test_biggan_is_the_gradient_of_half_strength_penalties():
    assert T.biggan_ortho_grad(mp([[1.0, 1.0], [0.0, 1.0]]), strength=0.5).tolist() == [[0, 1], [1, 1]]
    rng = np.random.default_rng(13)
    w = mp(0.5 * rng.standard_normal((3, 4)))
    s = 0.25
    # ortho: Δ = ∇ (s/2)·‖W Wᵀ ⊙ (1 − I)‖_F² (rows); default: ∇ (s/2)·‖W Wᵀ − I‖_F²
    fd = fd_vjp(T.offdiag_penalty, {"w": w}, "w", [s / 2], filters="rows")
    assert close(T.biggan_ortho_grad(w, s), fd, tol=mpmath.mpf(10) ** -25)
    fd = fd_vjp(T.orthonormal_penalty, {"w": w}, "w", [s / 2], filters="rows")
    assert close(T.biggan_ortho_grad(w, s, "default"), fd, tol=mpmath.mpf(10) ** -25)
    # columns: the same with W transposed
    wc = w.T.copy()
    assert close(T.biggan_ortho_grad(wc, s, filters="columns"), T.biggan_ortho_grad(w, s).T)


def test_every_op_has_a_truth():
    from kexue_ref.cases import orthogonality as cases
    assert {spec.name for spec in cases.OPS} == set(T.TRUTH)


# ---------------------------------------------------------------------------
# the certifier rejects wrong tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op, name, key", [
    ("angle_gram", "D5-M4", "output.out"),
    ("angle_gram", "D5-M4", "grad.w"),
    ("sign_gram", "B64-D5-M4", "output.out"),
    ("som_gram", "B16-D5-M4", "grad.x"),
    ("som_penalty", "B32-D6-M4", "output.out"),
    ("im2col", "1d-k3", "output.out"),
    ("im2col", "1d-k3", "grad.x"),
    ("torch_to_keras_kernel", "conv2d", "output.out"),
    ("kernel_matrix", "torch-conv2d", "grad.w"),
    ("orthonormal_penalty", "srip-keras-v0", "grad.w"),
    ("orthonormal_penalty", "fro-D6-M4", "output.out"),
    ("offdiag_penalty", "columns-D6-M4", "output.out"),
    ("biggan_ortho_grad", "ortho-rows-M4-D6", "output.grad"),
])
def test_certifier_rejects_a_spoiled_member(op, name, key):
    c = case(op, name)
    rec = tables.case_record(c)
    scales = {k: v["scale"] for k, v in tables.natural_scales(c, rec).items()}
    assert certify.certify_record(c, rec, scales)[key].passed
    # the largest entry, moved by 8 ulps of itself plus 4·eps·S: past both halves of the rule
    arr = np.array(rec[key], dtype=float, order="C")
    idx = np.unravel_index(int(np.argmax(np.abs(arr))), arr.shape)
    arr[idx] += 8 * np.spacing(abs(arr[idx])) + 4 * 2.0 ** -52 * scales[key]
    cert = certify.certify_record(c, dict(rec, **{key: arr}), scales)[key]
    assert not cert.passed
    assert cert.worst == tuple(int(i) for i in idx)


def test_certifier_rejects_a_wrong_sign_convention():
    # sgn(0) = +1 instead of −1 changes the exact-zeros table; the exact truth reports it
    c = case("sign_gram", "exact-zeros")
    rec = tables.case_record(c)
    y = rec["input.x"] @ rec["input.w"]
    s = np.where(y >= 0, 1.0, -1.0)
    wrong = dict(rec, **{"output.out": s.T @ s / y.shape[0]})
    assert not np.array_equal(wrong["output.out"], rec["output.out"])
    assert certify.certify_record(c, rec)["output.out"].passed
    assert not certify.certify_record(c, wrong)["output.out"].passed


def test_certifier_rejects_the_arccos_with_cancellation_at_pi_over_2():
    # ϑ = 1 − 2θ/π with θ from arccos loses its relative accuracy near θ = π/2
    c = case("angle_gram", "D16-M8")
    rec = tables.case_record(c)
    w = rec["input.w"]
    wh = w / np.linalg.norm(w, axis=0)
    naive = 1 - 2 * np.arccos(np.clip(wh.T @ wh, -1, 1)) / np.pi
    assert certify.certify_record(c, rec)["output.out"].passed
    assert not certify.certify_record(c, dict(rec, **{"output.out": naive}))["output.out"].passed
