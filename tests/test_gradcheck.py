"""The gradient checker, judged: it must reject wrong VJPs, refuse checks that could not
fail, and accept correct VJPs, also of ill-scaled functions.

Each wrong VJP is a custom ``autograd.extend.primitive`` whose forward value is right and whose
``defvjp`` is wrong in one way (the kinds of bug met in practice: a sign, a factor 2, a missing
term, a transpose, an off-by-one, a 1e-6 relative slip). The *first-order* battery is wrong in
the VJP itself and must be rejected at order 1 (and so at order 2). The *second-order* battery
has a VJP whose values are right but whose own derivative is wrong, the way a hand-written VJP
built from another primitive goes wrong: it must pass order 1 and be rejected at order 2.
Every wrong VJP has a correct twin, built the same way, that must pass at order 2, so that a
rejection is owed to the bug and not to the construction.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from kexue_ref.numerics import logsumexp, softmax
from kexue_ref.testing import GradCheckError, check_grads
from kexue_ref.testing.gradcheck import DegenerateCheckError

SEEDS = (0, 1, 2)

# a fixed non-symmetric matrix, so that A and Aᵀ differ
A = np.array([[1.0, 2.0, 0.5], [-0.3, 0.7, 1.5], [0.9, -1.1, 0.2]])


def _elementwise(value, deriv):
    """A primitive x -> value(x) whose VJP is g * deriv(x) (deriv written in autograd.numpy)."""
    f = primitive(value)
    defvjp(f, lambda ans, x: lambda g: g * deriv(x))
    return f


def _softmax_value(x):
    # p = exp(x - max) / Σ exp(x - max), along the last axis
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _softmax(missing_term):
    """softmax with VJP p ⊙ (g − <p, g>) (right) or p ⊙ g (the −p<p,g> term missing)."""
    f = primitive(_softmax_value)

    def vjp(ans, x):
        if missing_term:
            return lambda g: ans * g
        return lambda g: ans * (g - anp.sum(ans * g, axis=-1, keepdims=True))
    defvjp(f, vjp)
    return f


def _matmul(transposed):
    """(M, B) -> M @ B with VJPs g Bᵀ and Mᵀ g (right) or M g (transposed, wrong) for B."""
    f = primitive(lambda m, b: m @ b)
    defvjp(f,
           lambda ans, m, b: lambda g: g @ anp.transpose(b),
           lambda ans, m, b: lambda g: (m @ g) if transposed else (anp.transpose(m) @ g))
    return lambda m, b: f(m, b)


def _cumsum(shift):
    """cumsum along axis 0 with VJP Σ_{j≥i} g_j (right) or Σ_{j>i} g_j (off by one)."""
    f = primitive(lambda x: np.cumsum(x, axis=0))

    def vjp(ans, x):
        def back(g):
            # reverse cumulative sum: r_i = Σ_{j ≥ i} g_j
            r = anp.cumsum(g[::-1], axis=0)[::-1]
            # off by one: r_i - g_i = Σ_{j > i} g_j
            return r - g if shift else r
        return back
    defvjp(f, vjp)
    return f


def _one_entry(k, factor):
    """tanh with VJP g (1 − tanh²), entry k of it multiplied by ``factor``."""
    def deriv(x):
        d = 1.0 - anp.tanh(x) ** 2
        # a one-hot scaling: 1 everywhere, factor at entry k
        w = np.ones(np.shape(x))
        w[k] = factor
        return d * w
    return _elementwise(np.tanh, deriv)


def _product(wrong_y):
    """(x, y) -> x y with VJPs g y (x) and g x (y), or g y for y too (wrong)."""
    f = primitive(lambda x, y: x * y)
    defvjp(f, lambda ans, x, y: lambda g: g * y,
           lambda ans, x, y: lambda g: g * (y if wrong_y else x))
    return f


def _two_outputs(wrong):
    """x -> (sin x, cos x), the VJP of cos with the wrong sign when ``wrong``."""
    s = _elementwise(np.sin, anp.cos)
    c = _elementwise(np.cos, (lambda x: anp.sin(x)) if wrong else (lambda x: -anp.sin(x)))
    return lambda x: (s(x), c(x))


def _first_order(kind, wrong):
    """(fun, args) of the first-order battery: a VJP wrong in ``kind`` (or its correct twin)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=6)
    if kind == "sign":
        return _elementwise(np.sin, (lambda z: -anp.cos(z)) if wrong else anp.cos), [x]
    if kind == "factor-2":
        return _elementwise(lambda z: z ** 3, lambda z: (6.0 if wrong else 3.0) * z ** 2), [x]
    if kind == "missing-term":
        return _softmax(wrong), [rng.normal(size=(2, 5))]
    if kind == "transposed":
        f = _matmul(wrong)
        return (lambda b: f(A, b)), [rng.normal(size=(3, 2))]
    if kind == "transposed-two-args":
        return _matmul(wrong), [A.copy(), rng.normal(size=(3, 2))]
    if kind == "shifted-by-one":
        return _cumsum(wrong), [rng.normal(size=(5, 2))]
    if kind == "relative-1e-6":
        return _elementwise(np.exp, lambda z: anp.exp(z) * (1.0 + (1e-6 if wrong else 0.0))), [x]
    if kind == "one-entry-1e-3":
        return _one_entry(3, 1.001 if wrong else 1.0), [x]
    if kind == "second-argument":
        return _product(wrong), [x, rng.normal(size=6)]
    if kind == "second-output":
        return _two_outputs(wrong), [x]
    if kind == "zero":
        return _elementwise(lambda z: z ** 2, lambda z: (0.0 if wrong else 2.0) * z), [x]
    if kind == "relative-1e-6-at-1e6":
        # the tightened tolerance holds at large inputs too
        return (_elementwise(lambda z: z ** 2, lambda z: 2.0 * z * (1.0 + (1e-6 if wrong else 0.0))),
                [1e6 * (1.0 + rng.random(6))])
    if kind == "relative-1e-6-at-1e-6":
        return (_elementwise(np.log, lambda z: (1.0 + (1e-6 if wrong else 0.0)) / z),
                [1e-6 * (1.0 + rng.random(6))])
    raise KeyError(kind)


FIRST_ORDER = ["sign", "factor-2", "missing-term", "transposed", "transposed-two-args",
               "shifted-by-one", "relative-1e-6", "one-entry-1e-3", "second-argument",
               "second-output", "zero", "relative-1e-6-at-1e6", "relative-1e-6-at-1e-6"]


def _second_order(kind, wrong):
    """(fun, args) of the second-order battery: F with VJP g G(x), where the primitive G has the
    right value (the gradient) and a VJP wrong in ``kind`` when ``wrong``."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=5)

    def build(value, grad_value, hvp):
        # G: the gradient, right in value; its VJP (a Hessian-vector product) is hvp
        G = primitive(grad_value)
        defvjp(G, lambda ans, z: lambda g: hvp(z, g))
        # F: the function, whose VJP is g·G(x) (G's value is right: order 1 passes)
        F = primitive(value)
        defvjp(F, lambda ans, z: lambda g: g * G(z))
        return F

    if kind == "sign":
        # f = Σ sin x, f' = cos x, f'' = −sin x
        return build(lambda z: np.sum(np.sin(z)), np.cos,
                     lambda z, g: g * (anp.sin(z) if wrong else -anp.sin(z))), [x]
    if kind == "factor-2":
        # f = Σ x³, f' = 3x², f'' = 6x
        return build(lambda z: np.sum(z ** 3), lambda z: 3.0 * z ** 2,
                     lambda z, g: g * (12.0 if wrong else 6.0) * z), [x]
    if kind == "missing-term":
        # f = Σ x eˣ, f' = (1 + x) eˣ, f'' = (2 + x) eˣ; wrong: the product rule's second eˣ lost
        return build(lambda z: np.sum(z * np.exp(z)), lambda z: (1.0 + z) * np.exp(z),
                     lambda z, g: g * ((1.0 if wrong else 2.0) + z) * anp.exp(z)), [x[:3]]
    if kind == "transposed":
        # f = Σ sin(Ax), ∇f = Aᵀ cos(Ax), H g = −Aᵀ (sin(Ax) ⊙ A g); wrong: A and Aᵀ swapped
        def hvp(z, g):
            s = anp.sin(anp.dot(A, z))
            if wrong:
                return -anp.dot(A, s * anp.dot(anp.transpose(A), g))
            return -anp.dot(anp.transpose(A), s * anp.dot(A, g))
        return build(lambda z: np.sum(np.sin(A @ z)), lambda z: A.T @ np.cos(A @ z), hvp), [x[:3]]
    if kind == "shifted-by-one":
        # f = ½ Σ (cumsum x)², ∇f = Cᵀ C x, H g = Cᵀ C g (C: the cumulative-sum matrix);
        # wrong: the reverse sum exclusive (Σ_{j>i}) instead of inclusive
        def rcs(v, shift=False):
            r = anp.cumsum(v[::-1])[::-1]
            return r - v if shift else r
        return build(lambda z: 0.5 * np.sum(np.cumsum(z) ** 2), lambda z: rcs(np.cumsum(z)),
                     lambda z, g: rcs(anp.cumsum(g), shift=wrong)), [x]
    if kind == "relative-1e-6":
        # f = Σ eˣ: f'' = eˣ, wrong by 1e-6 relative
        return build(lambda z: np.sum(np.exp(z)), np.exp,
                     lambda z, g: g * anp.exp(z) * (1.0 + (1e-6 if wrong else 0.0))), [x]
    if kind == "plain-numpy-vjp":
        # a realistic slip: the VJP written in plain NumPy on getval(x) is right in value but
        # constant to autograd, so the second derivative of Σ sin x comes out 0, not −sin x
        f = primitive(lambda z: np.sum(np.sin(z)))
        if wrong:
            defvjp(f, lambda ans, z: lambda g: g * np.cos(getval(z)))
        else:
            defvjp(f, lambda ans, z: lambda g: g * anp.cos(z))
        return f, [x]
    raise KeyError(kind)


SECOND_ORDER = ["sign", "factor-2", "missing-term", "transposed", "shifted-by-one",
                "relative-1e-6", "plain-numpy-vjp"]


@pytest.mark.parametrize("kind", FIRST_ORDER)
def test_correct_twin_of_first_order_battery_passes(kind):
    fun, args = _first_order(kind, wrong=False)
    for seed in SEEDS:
        check_grads(fun, args, np.random.default_rng(seed), order=2, name=kind)


@pytest.mark.parametrize("kind", FIRST_ORDER)
@pytest.mark.parametrize("order", [1, 2])
def test_wrong_vjp_is_rejected(kind, order):
    fun, args = _first_order(kind, wrong=True)
    for seed in SEEDS:
        with pytest.raises(GradCheckError, match="VJP disagrees") as info:
            check_grads(fun, args, np.random.default_rng(seed), order=order, name=kind)
        # rejected already at the first order: the message is not about the VJP of the VJP
        assert "VJP of VJP" not in str(info.value)


@pytest.mark.parametrize("kind", SECOND_ORDER)
def test_correct_twin_of_second_order_battery_passes(kind):
    fun, args = _second_order(kind, wrong=False)
    for seed in SEEDS:
        check_grads(fun, args, np.random.default_rng(seed), order=2, name=kind)


@pytest.mark.parametrize("kind", SECOND_ORDER)
def test_vjp_wrong_only_in_its_derivative_is_rejected_at_order_2_only(kind):
    fun, args = _second_order(kind, wrong=True)
    for seed in SEEDS:
        # the VJP's values are right: order 1 passes
        check_grads(fun, args, np.random.default_rng(seed), order=1, name=kind)
        # its derivative is wrong: order 2 fails, in the second-order check
        with pytest.raises(GradCheckError, match=r"VJP of VJP\): VJP disagrees"):
            check_grads(fun, args, np.random.default_rng(seed), order=2, name=kind)


def test_default_tolerance_catches_1e_minus_6_but_not_rounding():
    # the old default (rtol 1e-5, one central difference at h = 1e-6) passed a VJP 1e-6
    # relative wrong; now the default rejects it, and a slip of 1e-13 relative (rounding
    # level) passes, so the default sits between the two
    x = np.random.default_rng(3).normal(size=6)
    slip = _elementwise(np.exp, lambda z: anp.exp(z) * (1.0 + 1e-6))
    with pytest.raises(GradCheckError):
        check_grads(slip, [x], np.random.default_rng(0), order=1)
    tiny = _elementwise(np.exp, lambda z: anp.exp(z) * (1.0 + 1e-13))
    check_grads(tiny, [x], np.random.default_rng(0), order=1)
    # an explicit looser tolerance accepts the 1e-6 slip (that is what gradcheck_tol is for)
    check_grads(slip, [x], np.random.default_rng(0), order=1, rtol=1e-4)


def test_failure_message_names_both_sides():
    fun, args = _first_order("factor-2", wrong=True)
    with pytest.raises(GradCheckError) as info:
        check_grads(fun, args, np.random.default_rng(0), order=1, name="cube")
    msg = str(info.value)
    # the name, the direction, both sides and the allowance
    for part in ("cube:", "direction 0", "finite differences", "VJP", "allowed", "rtol"):
        assert part in msg, (part, msg)


# -- ill-scaled functions: correct VJPs must pass (the tightening is not a flake) ----------

def _ill_scaled():
    rng = np.random.default_rng(5)
    big = 1e6 * (1.0 + rng.random(6))
    small = 1e-6 * (1.0 + rng.random(6))
    return {
        # a polynomial of inputs ~1e6: values ~1e18, steps ~0.1 (exact in float64)
        "cube-at-1e6": (lambda z: z ** 3, [big]),
        # a root of inputs ~1e6
        "sqrt-at-1e6": (anp.sqrt, [big]),
        # log of inputs ~1e-6: the large steps leave the domain and are skipped
        "log-at-1e-6": (anp.log, [small]),
        # 1/x at ~1e-6: derivatives ~1e12 and 1e18
        "reciprocal-at-1e-6": (lambda z: 1.0 / z, [small]),
        # two arguments of opposite scales
        "product-1e6-1e-6": (lambda a, b: a * b, [big, small]),
        # inputs far smaller than the function's natural scale (1)
        "tanh-at-1e-6": (anp.tanh, [small * rng.choice([-1.0, 1.0], 6)]),
        # logits offset by 1e3: natural scale 1, magnitude 1e3
        "softmax-offset-1e3": (lambda z: anp.exp(z - anp.log(anp.sum(anp.exp(z - 1e3))) - 1e3),
                               [1e3 + rng.normal(size=5)]),
        # a scalar output of ~1e24 from inputs ~1e6
        "sum-of-fourth-powers-at-1e6": (lambda z: anp.sum(z ** 4), [big]),
        # natural scale 1 at magnitude 1e5-1e6: a step of ~1e-5 on 1e6 is rounded by ~1e-5
        # of itself unless the steps are exact in float64
        "logsumexp-offset-1e5": (lambda z: logsumexp(z), [1e5 + rng.normal(size=5)]),
        "softmax-offset-1e6": (lambda z: softmax(z), [1e6 + rng.normal(size=5)]),
        "square-of-offset-1e6": (lambda z: (z - 1e6) ** 2, [1e6 + rng.normal(size=5)]),
    }


@pytest.mark.parametrize("kind", list(_ill_scaled()))
def test_correct_vjp_of_ill_scaled_function_passes(kind):
    fun, args = _ill_scaled()[kind]
    for seed in range(5):
        check_grads(fun, args, np.random.default_rng(seed), order=2, name=kind)


def test_inf_entries_are_held_and_inf_outputs_get_no_cotangent():
    # a row with a -inf entry: the -inf never moves, the output stays finite
    x = np.array([0.3, -np.inf, 1.2])
    check_grads(lambda z: logsumexp(z), [x], np.random.default_rng(0), order=2)
    # an all -inf row next to a finite one: the -inf output gets a zero cotangent
    y = np.array([[0.3, 1.0], [-np.inf, -np.inf]])
    check_grads(lambda z: logsumexp(z, axis=1), [y], np.random.default_rng(0), order=2)
    # and a wrong VJP is still caught there: the finite row carries the check
    wrong = _elementwise(lambda z: z, lambda z: 2.0 * anp.ones_like(z))
    with pytest.raises(GradCheckError):
        check_grads(lambda z: logsumexp(wrong(z), axis=1), [y], np.random.default_rng(0), order=1)


# -- degenerate checks are refused ---------------------------------------------------------

class _ZeroGenerator(np.random.Generator):
    """A Generator whose normals are all zero from the ``after``-th call on."""

    def __init__(self, after=0):
        super().__init__(np.random.PCG64(0))
        self.calls = 0
        self.after = after

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        self.calls += 1
        if self.calls > self.after:
            return np.zeros(size)
        return super().standard_normal(size)


def test_zero_cotangent_is_refused():
    # what a checker whose cotangent came out zero would do: compare 0 with 0 and pass any
    # VJP, even the zero one; it must refuse instead
    fun, args = _first_order("zero", wrong=True)
    with pytest.raises(DegenerateCheckError, match="cotangent is zero"):
        check_grads(fun, args, _ZeroGenerator(after=0), order=1)


def test_zero_direction_is_refused():
    # the cotangent is drawn (call 1), the direction is all zero (call 2)
    fun, args = _first_order("zero", wrong=True)
    with pytest.raises(DegenerateCheckError, match="direction 0 is zero"):
        check_grads(fun, args, _ZeroGenerator(after=1), order=1)


def test_no_input_is_refused():
    with pytest.raises(DegenerateCheckError, match="no differentiable input"):
        check_grads(lambda: np.ones(3), [], np.random.default_rng(0))


@pytest.mark.parametrize("x", [np.array([np.inf, -np.inf]), np.zeros(0)], ids=["all-inf", "empty"])
def test_input_without_finite_entries_is_refused(x):
    with pytest.raises(DegenerateCheckError, match="no input entry is finite"):
        check_grads(lambda z: anp.sum(anp.where(anp.isfinite(z), z, 0.0)) + 1.0, [x],
                    np.random.default_rng(0))


def test_outputs_without_finite_entries_are_refused():
    x = np.array([0.5, 1.5])
    # every output is -inf: nothing to put a cotangent on
    with pytest.raises(DegenerateCheckError, match="no output entry is finite"):
        check_grads(lambda z: z - np.inf, [x], np.random.default_rng(0))
    # an empty output
    with pytest.raises(DegenerateCheckError, match="no output entry is finite"):
        check_grads(lambda z: z[:0], [x], np.random.default_rng(0))
    # no floating output at all
    with pytest.raises(DegenerateCheckError, match="no floating output"):
        check_grads(lambda z: np.argsort(z), [x], np.random.default_rng(0))


def test_second_order_of_function_whose_gradient_is_nowhere_finite_is_refused():
    # f = sqrt at 0: f is finite, f' = inf, so the order-2 map has no finite output
    with np.errstate(divide="ignore"):
        with pytest.raises(GradCheckError):
            check_grads(anp.sqrt, [np.zeros(3)], np.random.default_rng(0), order=2)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"rng": 0}, TypeError, "rng must be a numpy.random.Generator"),
    ({"order": 3}, ValueError, "order must be 1 or 2"),
    ({"rtol": -1.0}, ValueError, "rtol and atol must be non-negative"),
    ({"atol": float("nan")}, ValueError, "rtol and atol must be non-negative"),
    ({"n_dirs": 0}, ValueError, "n_dirs must be a positive integer"),
])
def test_bad_arguments_are_named(kwargs, exc, pattern):
    call = {"rng": np.random.default_rng(0)}
    call.update(kwargs)
    rng = call.pop("rng")
    with pytest.raises(exc, match=pattern):
        check_grads(anp.sin, [np.ones(2)], rng, **call)


def test_mixed_scale_input_at_a_domain_edge_is_a_named_failure():
    # the documented limit: log of entries from 1e-6 to 1e6 in one array moves the small
    # entries by steps ~1e-5 (a fraction of the array's size, capped at 1/8), always below 0:
    # the checker says so rather than passing or blaming the VJP
    with pytest.raises(GradCheckError, match="no step along direction 0 gave a finite difference"):
        check_grads(anp.log, [np.array([1e-6, 2e-6, 1e6, 3e5])], np.random.default_rng(0), order=1)
    # the same entries as two arguments are checked
    check_grads(lambda a, b: (anp.log(a), anp.log(b)), [np.array([1e-6, 2e-6]), np.array([1e6, 3e5])],
                np.random.default_rng(0), order=2)
