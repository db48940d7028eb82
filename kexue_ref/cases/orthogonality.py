"""Registry rows for kernel orthogonality (``kexue_ref.orthogonality``, https://kexue.fm/archives/7169).

Edge cases follow the failure modes listed in ``docs/orthogonality.md`` ("Registry and tables"):
dead units (a zero column), saturated tanh, M > D where orthonormality is impossible, exactly
orthonormal kernels (kinks of the spectral norm), parallel and antiparallel filters,
sgn(0) = −1, mixed-sign off-diagonal entries (``kevinzakka/pytorch-goodies`` issue #7), the
tight frame that attains the Welch bound, and PyTorch / Keras kernel layouts.
"""
import numpy as onp

from kexue_ref import orthogonality as og
from kexue_ref.cases._gen import normal
from kexue_ref.registry import CaseDef, OpSpec

POST = og.POST
DECISIONS = "docs/orthogonality.md (choices the post leaves open)"
CONV = "docs/orthogonality.md §Convolutions"
BIGGAN = "ajbrock/BigGAN-PyTorch utils.py (ortho, default_ortho)"
SRIP = "VITA-Group/Orthogonality-in-CNNs ResNet/resnet_cifar_new.py (l2_reg), Wide-Resnet/train_n.py"


def _layer(rng, B, D, M):
    """X ~ N(0, I) (B, D) and W ~ N(0, 1/D) (D, M), so that Y = XW has unit-scale entries."""
    return {"x": normal(rng, B, D), "w": normal(rng, D, M, scale=1 / onp.sqrt(D))}


def _orthonormal(rng, D, M):
    """D×M with orthonormal columns: Q of the QR of a Gaussian matrix (M ≤ D)."""
    q, r = onp.linalg.qr(rng.standard_normal((D, M)))
    return q * onp.sign(onp.diag(r))


def _tight_frame(rng, D, M):
    """D×M with orthonormal rows (W Wᵀ = I_D, M > D): the first D rows of an orthogonal M×M."""
    return _orthonormal(rng, M, M)[:D]


MERCEDES = onp.array([[1.0, -0.5, -0.5], [0.0, onp.sqrt(3) / 2, -onp.sqrt(3) / 2]])  # 3 unit vectors, 120° apart
DEAD = "a dead unit (zero column): Θ is defined (zero row and column) but the gradient is O(1/ε)"
X2 = onp.array([[0.3, -1.2], [1.1, 0.4], [-0.7, 0.9]])
W2 = onp.array([[0.8, -0.3, 0.5], [0.2, 0.9, -0.6]])


def _angle_cases():
    return [
        CaseDef("D5-M4", lambda rng: {"w": normal(rng, 5, 4)}),
        CaseDef("D3-M6", lambda rng: {"w": normal(rng, 3, 6)}, tier="full", note="M > D"),
        CaseDef("D16-M8", lambda rng: {"w": normal(rng, 16, 8)}, tier="full"),
        CaseDef("orthogonal", lambda rng: {"w": _orthonormal(rng, 5, 3) * onp.array([0.5, 1.0, 3.0])},
                tier="edge", note="orthogonal filters of different norms: ϑ = I"),
        CaseDef("parallel-antiparallel", {"w": onp.array([[1.0, 2.0, -1.0, 0.3], [0.5, 1.0, -0.5, 1.0]])},
                tier="edge", gradcheck=False,
                note="w_2 = 2 w_1 and w_3 = −w_1: ϑ = ±1; θ is not differentiable at 0 and π "
                     "(those pairs contribute the zero subgradient)"),
        CaseDef("tiny-angle", {"w": onp.array([[1.0, onp.cos(1e-7)], [0.0, onp.sin(1e-7)]])}, tier="edge",
                gradcheck=False, note="θ = 1e-7: ϑ = 1 − 2e-7/π to full precision (arccos would lose "
                                      "half the digits); the finite-difference step crosses θ = 0"),
        CaseDef("zero-column", {"w": onp.array([[1.0, 0.0], [2.0, 0.0]])}, tier="error",
                raises=(ValueError, "w has a zero column")),
        CaseDef("w-1d", {"w": onp.ones(3)}, tier="error", raises=(ValueError, r"w must have shape \(D, M\)")),
        CaseDef("nan", {"w": onp.array([[1.0, onp.nan], [0.0, 1.0]])}, tier="error",
                raises=(ValueError, "w contains NaN")),
    ]


def _layer_errors(extra_params=None):
    p = dict(extra_params or {})
    return [
        CaseDef("x-w-mismatch", {"x": onp.ones((4, 3)), "w": onp.ones((2, 5))}, dict(p), tier="error",
                raises=(ValueError, "x has D = 3 features per sample but w has 2 rows")),
        CaseDef("x-1d", {"x": onp.ones(3), "w": onp.ones((3, 2))}, dict(p), tier="error",
                raises=(ValueError, r"x must have shape \(B, D\)")),
        CaseDef("x-inf", {"x": onp.array([[1.0, onp.inf]]), "w": onp.ones((2, 2))}, dict(p), tier="error",
                raises=(ValueError, r"x contains \+inf")),
        CaseDef("w-nan", {"x": onp.ones((2, 2)), "w": onp.array([[1.0, onp.nan], [0.0, 1.0]])}, dict(p),
                tier="error", raises=(ValueError, "w contains NaN")),
        CaseDef("bias-wrong-shape", {"x": onp.ones((2, 2)), "w": onp.eye(2)}, {**p, "bias": [0.1, 0.2, 0.3]},
                tier="error", raises=(ValueError, r"bias must have shape \(M,\) = \(2,\)")),
    ]


def _sign_cases():
    return [
        CaseDef("B64-D5-M4", lambda rng: _layer(rng, 64, 5, 4)),
        CaseDef("bias", lambda rng: _layer(rng, 32, 4, 3), {"bias": [0.2, -0.1, 0.05]}, tier="full"),
        CaseDef("M-gt-D", lambda rng: _layer(rng, 48, 2, 5), tier="full", note="M > D"),
        CaseDef("exact-zeros", {"x": onp.array([[0.0, 0.0], [1.0, -1.0], [2.0, 1.0]]),
                                "w": onp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])}, tier="edge",
                note="sgn(0) = −1: the zero sample and the zero filter give −1 "
                     "(docs/orthogonality.md, the sign estimator)"),
    ] + _layer_errors()


_B1_SCALE = ("Θ is constant at B = 1 (every T̂ entry is ±1), so the gradient is an exact zero "
             "assembled from terms of size γ·|U|·|other factor|/|T| in the column normalisation")


def _b1_grad_scale(other):
    """Natural scale of an identically zero SOM gradient: γ·max|U|·max|other|/min|T|."""
    def scale(rec):
        x, w = rec["input.x"], rec["input.w"]
        t = onp.abs(onp.tanh(rec["param.gamma"] * (x @ w)))
        u = onp.abs(rec["cotangent.out"]).max()
        return float(rec["param.gamma"] * u * onp.abs(rec[other]).max() / t.min())
    return scale


def _som_gram_cases():
    return [
        CaseDef("B16-D5-M4", lambda rng: _layer(rng, 16, 5, 4)),
        CaseDef("gamma1", lambda rng: _layer(rng, 16, 5, 4), {"gamma": 1.0}),
        CaseDef("bias", lambda rng: _layer(rng, 12, 4, 3), {"bias": [0.3, -0.2, 0.1]}, tier="full"),
        CaseDef("M-gt-D", lambda rng: _layer(rng, 20, 3, 6), tier="full", note="M > D"),
        CaseDef("B1", lambda rng: _layer(rng, 1, 4, 3), {"gamma": 0.5}, tier="full",
                note="one sample: T̂ entries are ±1, Θ_ij = ±1",
                gradcheck_tol=(1e-9, 1e-12, "Θ is constant at B = 1: the gradient and its derivative are "
                               "exact zeros, so both sides of the check are rounding noise (~1e-13); "
                               "an absolute floor 1e-12 against the O(1) scale of the terms"),
                scales={"grad.x": (_b1_grad_scale("input.w"), _B1_SCALE),
                        "grad.w": (_b1_grad_scale("input.x"), _B1_SCALE)}),
        CaseDef("dead-unit", {"x": X2, "w": onp.array([[0.8, 0.0, 0.5], [0.2, 0.0, -0.6]])}, tier="edge",
                gradcheck=False, note=DEAD),
        CaseDef("saturated-gamma1e3", lambda rng: _layer(rng, 10, 3, 3), {"gamma": 1e3}, tier="edge",
                note="tanh saturates: Θ ≈ the sign estimator, gradients ≈ 0"),
        CaseDef("opposite-columns", {"x": X2, "w": onp.array([[0.8, -0.8, 0.5], [0.2, -0.2, -0.6]])},
                tier="edge", note="w_2 = −w_1: Θ_12 = −1 (tanh is odd)"),
        CaseDef("gamma-zero", {"x": X2, "w": W2}, {"gamma": 0.0}, tier="error",
                raises=(ValueError, "gamma must be a finite positive number")),
        CaseDef("gamma-negative", {"x": X2, "w": W2}, {"gamma": -10.0}, tier="error",
                raises=(ValueError, "gamma must be a finite positive number")),
        CaseDef("eps-negative", {"x": X2, "w": W2}, {"eps": -1e-12}, tier="error",
                raises=(ValueError, "eps must be a finite number >= 0")),
        CaseDef("eps0-dead-unit", {"x": X2, "w": onp.array([[0.8, 0.0], [0.2, 0.0]])}, {"eps": 0.0}, tier="error",
                raises=(ValueError, r"column 1 of tanh\(gamma·Y\) is zero \(a dead unit\) and eps = 0")),
    ] + _layer_errors()


def _som_penalty_cases():
    return [
        CaseDef("B32-D6-M4", lambda rng: _layer(rng, 32, 6, 4)),
        CaseDef("unordered", lambda rng: _layer(rng, 32, 6, 4), {"pairs": "unordered"}),
        CaseDef("gamma1-lam1-1", lambda rng: _layer(rng, 24, 5, 3), {"gamma": 1.0, "lam1": 1.0, "lam2": 1.0}),
        CaseDef("grad_x-false", lambda rng: _layer(rng, 24, 5, 3), {"grad_x": False}, tier="full",
                gradcheck=False, note="stop_gradient on X: its VJP is 0 by design while finite differences "
                                      "see the value change; the W gradient is tested in test_orthogonality.py"),
        CaseDef("bias", lambda rng: _layer(rng, 24, 5, 3), {"bias": [0.1, -0.3, 0.2]}, tier="full"),
        CaseDef("M-gt-D", lambda rng: _layer(rng, 32, 3, 6), tier="full",
                note="M > D: not every pair can be orthogonal, E[R] > 0"),
        CaseDef("orthonormal-w", lambda rng: {"x": normal(rng, 64, 6), "w": _orthonormal(rng, 6, 4)},
                tier="full", note="E[Θ_ij] = 0 for Gaussian X: R is O(1/B) noise"),
        CaseDef("saturated", lambda rng: {"x": normal(rng, 16, 4, scale=30.0), "w": normal(rng, 4, 3)},
                tier="edge", note="|γY| ≫ 1: tanh saturates and the gradient almost vanishes"),
        CaseDef("dead-unit", {"x": X2, "w": onp.array([[0.8, 0.0, 0.5], [0.2, 0.0, -0.6]])}, tier="edge",
                gradcheck=False, note=DEAD),
        CaseDef("M1", {"x": X2, "w": onp.array([[0.8], [0.2]])}, tier="error",
                raises=(ValueError, "w must have at least M = 2 columns")),
        CaseDef("gamma-zero", {"x": X2, "w": W2}, {"gamma": 0.0}, tier="error",
                raises=(ValueError, "gamma must be a finite positive number")),
        CaseDef("lam1-negative", {"x": X2, "w": W2}, {"lam1": -1.0}, tier="error",
                raises=(ValueError, "lam1 must be a finite number >= 0")),
        CaseDef("bad-pairs", {"x": X2, "w": W2}, {"pairs": "all"}, tier="error",
                raises=(ValueError, "pairs must be one of")),
        CaseDef("grad_x-not-bool", {"x": X2, "w": W2}, {"grad_x": "no"}, tier="error",
                raises=(TypeError, "grad_x must be True or False")),
    ] + _layer_errors()


def _im2col_cases():
    return [
        CaseDef("1d-k3", lambda rng: {"x": normal(rng, 2, 7, 3)}, {"kernel_size": 3}),
        CaseDef("2d-k3x2", lambda rng: {"x": normal(rng, 2, 5, 4, 3)}, {"kernel_size": [3, 2]}),
        CaseDef("2d-stride2-pad1", lambda rng: {"x": normal(rng, 1, 6, 5, 2)},
                {"kernel_size": 3, "stride": 2, "padding": 1}, tier="full"),
        CaseDef("2d-dilation2", lambda rng: {"x": normal(rng, 1, 7, 6, 2)}, {"kernel_size": [2, 3], "dilation": 2},
                tier="full"),
        CaseDef("1d-stride2-dil2-pad-pair", lambda rng: {"x": normal(rng, 2, 9, 2)},
                {"kernel_size": 2, "stride": 2, "dilation": 2, "padding": [[0, 1]]}, tier="full",
                note="asymmetric padding (Keras 'same' for an even kernel)"),
        CaseDef("2d-channels-first", lambda rng: {"x": normal(rng, 2, 3, 5, 4)},
                {"kernel_size": 2, "padding": [1, 0], "data_format": "channels_first"}, tier="full"),
        CaseDef("kernel-equals-input", lambda rng: {"x": normal(rng, 3, 3, 2, 2)}, {"kernel_size": [3, 2]},
                tier="edge", note="one output position per sample: patches are the flattened inputs"),
        CaseDef("k1", lambda rng: {"x": normal(rng, 2, 3, 3, 4)}, {"kernel_size": 1}, tier="edge",
                note="1×1 convolution: each pixel is a sample"),
        CaseDef("kernel-too-large", {"x": onp.ones((1, 4, 2))}, {"kernel_size": 3, "dilation": 2}, tier="error",
                raises=(ValueError, "spans 5 positions, more than the padded input length 4")),
        CaseDef("stride-zero", {"x": onp.ones((1, 4, 2))}, {"kernel_size": 2, "stride": 0}, tier="error",
                raises=(ValueError, "stride must be >= 1")),
        CaseDef("kernel-size-length", {"x": onp.ones((1, 4, 4, 2))}, {"kernel_size": [2, 2, 2]}, tier="error",
                raises=(ValueError, "kernel_size must be an int or 2 int")),
        CaseDef("bad-data-format", {"x": onp.ones((1, 4, 2))}, {"kernel_size": 2, "data_format": "NHWC"},
                tier="error", raises=(ValueError, "data_format must be one of")),
        CaseDef("x-2d", {"x": onp.ones((4, 2))}, {"kernel_size": 2}, tier="error",
                raises=(ValueError, r"x must have shape \(B, L_in, C_in\) or \(B, H_in, W_in, C_in\)")),
    ]


def _layout_cases(torch_side):
    def w(rng, *shape):
        return {"w": normal(rng, *shape)}
    shapes = [(4, 3, 3, 2), (5, 2, 3), (4, 6)] if torch_side else [(3, 2, 3, 4), (3, 2, 5), (6, 4)]
    names = ["conv2d", "conv1d", "dense"]
    return ([CaseDef(names[0], lambda rng: w(rng, *shapes[0]))]
            + [CaseDef(n, lambda rng, s=s: w(rng, *s), tier="full") for n, s in zip(names[1:], shapes[1:])]
            + [CaseDef("w-1d", {"w": onp.ones(3)}, tier="error", raises=(ValueError, "at least 2 dimensions")),
               CaseDef("nan", {"w": onp.array([[onp.nan, 1.0]])}, tier="error",
                       raises=(ValueError, "w contains NaN"))])


def _kernel_matrix_cases():
    return [
        CaseDef("keras-conv2d", lambda rng: {"w": normal(rng, 3, 2, 3, 4)}),
        CaseDef("torch-conv2d", lambda rng: {"w": normal(rng, 4, 3, 3, 2)}, {"layout": "torch"}),
        CaseDef("torch-conv1d", lambda rng: {"w": normal(rng, 5, 2, 3)}, {"layout": "torch"}, tier="full"),
        CaseDef("keras-dense", lambda rng: {"w": normal(rng, 6, 4)}, tier="full"),
        CaseDef("bad-layout", {"w": onp.ones((2, 2))}, {"layout": "tf"}, tier="error",
                raises=(ValueError, "layout must be one of")),
        CaseDef("w-1d", {"w": onp.ones(3)}, {"layout": "torch"}, tier="error",
                raises=(ValueError, "at least 2 dimensions")),
    ]


V0_4 = [0.7, 0.2, 0.9, 0.4]  # a fixed U[0, 1) draw, as SRIP's start vector (D2: an explicit input)


def _orthonormal_cases():
    return [
        CaseDef("fro-D6-M4", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)}),
        CaseDef("spectral-exact-D6-M4", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)}, {"norm": "spectral"}),
        CaseDef("srip-keras-v0", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)},
                {"norm": "spectral", "v0": V0_4, "n_iter": 1, "squared": False},
                note="SRIP's Keras regulariser: ‖A·(Av0/‖Av0‖)‖, not squared"),
        CaseDef("srip-torch-squared", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)},
                {"norm": "spectral", "v0": V0_4}, tier="full", note="SRIP's PyTorch code squares σ̂"),
        CaseDef("power-n_iter8", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)},
                {"norm": "spectral", "v0": V0_4, "n_iter": 8}, tier="full"),
        CaseDef("fro-rows", lambda rng: {"w": normal(rng, 4, 6, scale=0.5)}, {"filters": "rows"}, tier="full"),
        CaseDef("fro-unsquared", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)}, {"squared": False}, tier="full"),
        CaseDef("keras-conv-kernel", lambda rng: {"w": normal(rng, 3, 3, 2, 4, scale=0.3)},
                {"norm": "spectral", "v0": V0_4}, tier="full",
                note="(kh, kw, in, out) → (kh·kw·in, out) as SRIP's reshape"),
        CaseDef("torch-conv-weight-rows", lambda rng: {"w": normal(rng, 4, 2, 3, 3, scale=0.3)},
                {"filters": "rows"}, tier="full"),
        CaseDef("M-gt-D-fro", lambda rng: {"w": normal(rng, 3, 5, scale=0.6)}, tier="edge",
                note="M > D: ‖WᵀW − I‖_F² ≥ M − D = 2"),
        CaseDef("M-gt-D-spectral", lambda rng: {"w": normal(rng, 3, 4, scale=0.6)}, {"norm": "spectral"},
                tier="edge", note="M > D: ‖WᵀW − I‖₂ ≥ 1 (eigenvalue −1)"),
        CaseDef("tight-frame-fro", lambda rng: {"w": _tight_frame(rng, 3, 5)}, tier="edge",
                note="W Wᵀ = I_D: the M > D bound M − D = 2 is attained"),
        CaseDef("orthonormal-fro", lambda rng: {"w": _orthonormal(rng, 5, 3)}, tier="edge",
                note="orthonormal columns (QR): 0 to rounding",
                gradcheck_tol=(1e-9, 1e-12, "a minimum of the penalty: the gradient is 0, so both sides "
                               "of the first-order check are rounding noise (~1e-16); an absolute floor "
                               "1e-12 against the O(1) scale of WᵀW")),
        CaseDef("orthonormal-spectral", {"w": onp.eye(4)[:, :3]}, {"norm": "spectral"}, tier="edge",
                gradcheck=False, note="A = 0: every eigenvalue is 0 (degenerate), the second derivative of "
                                      "the eigen-decomposition is undefined"),
        CaseDef("orthonormal-power", {"w": onp.eye(4)[:, :3]}, {"norm": "spectral", "v0": [0.7, 0.2, 0.9],
                                                                  "squared": False}, tier="edge",
                gradcheck=False, note="A = 0 exactly: the iterate Av0 is 0, σ̂ = 0 with gradient 0 (a kink)"),
        CaseDef("v0-wrong-shape", {"w": onp.eye(3)}, {"norm": "spectral", "v0": [1.0, 0.0]}, tier="error",
                raises=(ValueError, r"v0 must have shape \(M,\) = \(3,\)")),
        CaseDef("v0-zero", {"w": onp.eye(3)}, {"norm": "spectral", "v0": [0.0, 0.0, 0.0]}, tier="error",
                raises=(ValueError, "v0 must not be the zero vector")),
        CaseDef("v0-with-fro", {"w": onp.eye(3)}, {"v0": [1.0, 0.0, 0.0]}, tier="error",
                raises=(ValueError, "it must be None for norm='fro'")),
        CaseDef("n_iter-zero", {"w": onp.eye(3)}, {"norm": "spectral", "v0": [1.0, 0.0, 0.0], "n_iter": 0},
                tier="error", raises=(ValueError, "n_iter must be >= 1")),
        CaseDef("bad-norm", {"w": onp.eye(3)}, {"norm": "nuclear"}, tier="error",
                raises=(ValueError, "norm must be one of")),
        CaseDef("bad-filters", {"w": onp.eye(3)}, {"filters": "channels"}, tier="error",
                raises=(ValueError, "filters must be one of")),
        CaseDef("w-1d", {"w": onp.ones(3)}, tier="error", raises=(ValueError, "w must have at least 2 dimensions")),
        CaseDef("w-inf", {"w": onp.array([[onp.inf, 0.0], [0.0, 1.0]])}, tier="error",
                raises=(ValueError, r"w contains \+inf")),
    ]


def _offdiag_cases():
    return [
        CaseDef("columns-D6-M4", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)}),
        CaseDef("rows-M4-D6", lambda rng: {"w": normal(rng, 4, 6, scale=0.5)}, {"filters": "rows"}),
        CaseDef("torch-conv-weight-rows", lambda rng: {"w": normal(rng, 4, 2, 3, 3, scale=0.3)},
                {"filters": "rows"}, tier="full"),
        CaseDef("M-gt-D", lambda rng: {"w": normal(rng, 3, 5, scale=0.6)}, tier="full"),
        CaseDef("mixed-sign", {"w": onp.array([[1.0, 0.5, 0.5], [0.0, 1.0, -1.0]])}, tier="edge",
                note="w_1ᵀw_2 = 0.5, w_1ᵀw_3 = 0.5, w_2ᵀw_3 = −0.75: a signed sum would cancel "
                     "(kevinzakka/pytorch-goodies#7); squares give 2·(0.25 + 0.25 + 0.5625) = 2.125"),
        CaseDef("welch-tight-frame", {"w": MERCEDES}, tier="edge",
                note="3 unit vectors 120° apart in the plane: the Welch bound M(M − D)/D = 1.5 is attained"),
        CaseDef("orthogonal-unnormalised", lambda rng: {"w": _orthonormal(rng, 5, 3) * onp.array([0.5, 2.0, 3.0])},
                tier="edge", note="orthogonal filters of any norms: 0",
                gradcheck_tol=(1e-9, 1e-12, "a minimum of the penalty: the gradient is 0, so both sides "
                               "of the first-order check are rounding noise (~1e-15); an absolute floor "
                               "1e-12 against the O(10) scale of WᵀW (column norms up to 3)")),
        CaseDef("M1", {"w": onp.ones((3, 1))}, tier="error", raises=(ValueError, "at least M = 2 filters")),
        CaseDef("w-1d", {"w": onp.ones(3)}, tier="error", raises=(ValueError, "w must have at least 2 dimensions")),
        CaseDef("nan", {"w": onp.array([[1.0, onp.nan], [0.0, 1.0]])}, tier="error",
                raises=(ValueError, "w contains NaN")),
    ]


def _biggan_cases():
    return [
        CaseDef("ortho-rows-M4-D6", lambda rng: {"w": normal(rng, 4, 6, scale=0.5)}, {"strength": 1e-4}),
        CaseDef("default-rows-M4-D6", lambda rng: {"w": normal(rng, 4, 6, scale=0.5)},
                {"strength": 0.1, "mode": "default"}),
        CaseDef("conv-weight-4d", lambda rng: {"w": normal(rng, 4, 2, 3, 3, scale=0.3)}, {"strength": 0.5},
                tier="full", note="a Conv2d weight (out, in, kh, kw), viewed as (out, in·kh·kw)"),
        CaseDef("columns", lambda rng: {"w": normal(rng, 6, 4, scale=0.5)}, {"strength": 0.5, "filters": "columns"},
                tier="full"),
        CaseDef("single-filter-ortho", lambda rng: {"w": normal(rng, 1, 5)}, {"strength": 0.5}, tier="edge",
                note="M = 1: no pair, BigGAN's ortho adds 0"),
        CaseDef("w-1d", {"w": onp.ones(3)}, tier="error", raises=(ValueError, "w must have at least 2 dimensions")),
        CaseDef("strength-negative", {"w": onp.eye(2)}, {"strength": -1.0}, tier="error",
                raises=(ValueError, "strength must be a finite number >= 0")),
        CaseDef("bad-mode", {"w": onp.eye(2)}, {"mode": "srip"}, tier="error", raises=(ValueError, "mode must be one of")),
    ]


OPS = [
    OpSpec("orthogonality.angle_gram", og.angle_gram, ("w",), ("w",), _angle_cases(),
           f"{POST} (E[sgn(xᵀw_i) sgn(xᵀw_j)] = 1 − 2θ_ij/π)"),
    OpSpec("orthogonality.sign_gram", og.sign_gram, ("x", "w"), (), _sign_cases(),
           f"{POST} (sign estimator SᵀS/B); sgn(0) = −1 is a library decision, {DECISIONS}",
           flags={"sgn(0)": "-1"}),
    OpSpec("orthogonality.som_gram", og.som_gram, ("x", "w"), ("x", "w"), _som_gram_cases(),
           f"{POST} (Θ = T̂ᵀT̂, T = tanh(γXW) normalised over the batch); arXiv 2001.01275 (γ = 10)",
           flags={"eps": "1e-12 inside the root (decision)", "bias": "none by default (decision)"}),
    OpSpec("orthogonality.som_penalty", og.som_penalty, ("x", "w"), ("x", "w"), _som_penalty_cases(),
           f"{POST} (R = λ1(ΣΘ_ij)² + λ2ΣΘ_ij², i ≠ j); arXiv 2001.01275 (λ1 = 100, λ2 = 1, γ = 10)",
           flags={"pairs": "ordered default (decision); unordered", "grad_x": "True default (decision)"}),
    OpSpec("orthogonality.im2col", og.im2col, ("x",), ("x",), _im2col_cases(),
           f"library decision ({DECISIONS}): each convolution patch is a SOM sample; "
           "columns in (tap_h, tap_w, channel) order"),
    OpSpec("orthogonality.torch_to_keras_kernel", og.torch_to_keras_kernel, ("w",), ("w",), _layout_cases(True),
           f"{CONV} (torch.nn.Conv2d (out, in, kh, kw) vs keras.layers.Conv2D (kh, kw, in, out))"),
    OpSpec("orthogonality.keras_to_torch_kernel", og.keras_to_torch_kernel, ("w",), ("w",), _layout_cases(False),
           f"{CONV} (keras.layers.Conv2D (kh, kw, in, out) vs torch.nn.Conv2d (out, in, kh, kw))"),
    OpSpec("orthogonality.kernel_matrix", og.kernel_matrix, ("w",), ("w",), _kernel_matrix_cases(),
           f"{SRIP} (reshape (kh, kw, in, out) → (kh·kw·in, out))"),
    OpSpec("orthogonality.orthonormal_penalty", og.orthonormal_penalty, ("w",), ("w",), _orthonormal_cases(),
           f"{POST} (‖WᵀW − I‖², spectral or Frobenius); SRIP power iteration: {SRIP}",
           flags={"squared": "True default (the post); False = SRIP Keras", "v0": "explicit start vector (D2)"}),
    OpSpec("orthogonality.offdiag_penalty", og.offdiag_penalty, ("w",), ("w",), _offdiag_cases(),
           f"{POST} (‖WᵀW ⊙ (1 − I)‖²); {BIGGAN}"),
    OpSpec("orthogonality.biggan_ortho_grad", og.biggan_ortho_grad, ("w",), ("w",), _biggan_cases(),
           f"{BIGGAN}: Δ = 2s(WWᵀ ⊙ (1 − I))W = ∇(s/2)‖WWᵀ ⊙ (1 − I)‖_F²", outputs=("grad",),
           flags={"factor": "2 (BigGAN), i.e. the loss (s/2)·‖·‖_F²", "filters": "rows default"}),
]
