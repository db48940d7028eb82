"""Worked example: function smoothing (https://kexue.fm/archives/6620) in PyTorch.

A short torch implementation of every op of ``kexue_ref.smoothing``, checked against the
float64 oracle through the torch adapter: values and gradients (torch autograd with the
oracle's cotangent), in float64, float32, and in float16/bfloat16 under the low-precision
rules. The built-ins that people reach for first are checked too, with their documented
divergences as strict xfails: ``torch.logsumexp`` gives a NaN gradient on an all ``-inf``
row (pytorch#31829), ``torch.softmax`` gives NaN there, and ``F.softplus`` linearises above
``threshold=20``.
"""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref import registry  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import check_case, conformance_test  # noqa: E402

from ._support import conformance  # noqa: E402

TIERS = ("quick", "full", "edge")


# --- a torch port of kexue_ref.smoothing -----------------------------------------------------

def _softmax(z, dim):
    """softmax with the D4 policy: an all -inf slice gives 0 (and gradient 0), never NaN."""
    # m = max z, held constant; 0 where the slice is all -inf
    m = z.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    # e^{z - m} / Σ e^{z - m}, dividing by 1 where the sum is 0
    e = torch.exp(z - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)


def smooth_max(x, scale=1.0, axis=-1):
    # max(x) ≈ (1/K) LSE(K x); the shift makes an all -inf slice give -inf with gradient 0
    z = scale * x
    m = z.amax(dim=axis, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(z - m).sum(dim=axis, keepdim=True)
    lse = m + torch.log(torch.where(s == 0, torch.ones_like(s), s))
    lse = torch.where(s == 0, torch.full_like(s, -float("inf")), lse)
    return lse.squeeze(axis) / scale


def smooth_min(x, scale=1.0, axis=-1):
    # min(x) = −max(−x)
    return -smooth_max(-x, scale, axis)


def soft_onehot(x, scale=1.0, axis=-1):
    # onehot(argmax x) ≈ softmax(K x)
    return _softmax(scale * x, axis)


def soft_argmax(x, scale=1.0, axis=-1, base=0):
    # argmax(x) ≈ Σ_i (i + base) softmax(K x)_i
    p = _softmax(scale * x, axis).movedim(axis, -1)
    pos = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device) + base
    return (p * pos).sum(-1)


def smooth_accuracy(p, y):
    # (1/B) Σ_b p_{b, y_b}; y is an int64 tensor
    return p.gather(1, y[:, None]).squeeze(1).mean()


def _counts(p, t, average):
    dims = (0,) if average == "macro" else tuple(range(p.ndim))
    return (t * p).sum(dims), p.sum(dims), t.sum(dims)


def smooth_f1(p, t, eps=1e-7, average="micro"):
    # F1 ≈ 2 Σ t p / (Σ t + Σ p + ε)
    tp, pp, ap = _counts(p, t, average)
    f1 = 2 * tp / (ap + pp + eps)
    return f1.mean() if average == "macro" else f1


def smooth_precision(p, t, eps=1e-7, average="micro"):
    # P ≈ Σ t p / (Σ p + ε)
    tp, pp, _ = _counts(p, t, average)
    out = tp / (pp + eps)
    return out.mean() if average == "macro" else out


def smooth_recall(p, t, eps=1e-7, average="micro"):
    # R ≈ Σ t p / (Σ t + ε)
    tp, _, ap = _counts(p, t, average)
    out = tp / (ap + eps)
    return out.mean() if average == "macro" else out


def soft_kmax(x, k, axis=-1):
    # x ← x − min x;  p ← p + softmax((1 − p) ⊙ x), k times
    x = x - x.amin(dim=axis, keepdim=True)
    p = torch.zeros_like(x)
    for _ in range(k):
        p = p + torch.softmax((1 - p) * x, dim=axis)
    return p


def smooth_abs(x, scale=1.0):
    # |x| ≈ (1/K) log(e^{Kx} + e^{−Kx})
    return torch.logaddexp(scale * x, -scale * x) / scale


def soft_relu(x, scale=1.0):
    # relu(x) ≈ (1/K) log(1 + e^{Kx}) = (1/K) LSE(Kx, 0)
    kx = scale * x
    return torch.logaddexp(kx, torch.zeros_like(kx)) / scale


PORT = {"smooth_max": smooth_max, "smooth_min": smooth_min, "soft_onehot": soft_onehot,
        "soft_argmax": soft_argmax, "smooth_accuracy": smooth_accuracy, "smooth_f1": smooth_f1,
        "smooth_precision": smooth_precision, "smooth_recall": smooth_recall,
        "soft_kmax": soft_kmax, "smooth_abs": smooth_abs, "soft_relu": soft_relu}


# --- one line per op: float64 values and gradients, every non-error tier ------------------

test_smooth_max = conformance_test(smooth_max, "smoothing.smooth_max", TIERS, adapter="torch", grads=True)
test_smooth_min = conformance_test(smooth_min, "smoothing.smooth_min", TIERS, adapter="torch", grads=True)
test_soft_onehot = conformance_test(soft_onehot, "smoothing.soft_onehot", TIERS, adapter="torch", grads=True)
test_soft_argmax = conformance_test(soft_argmax, "smoothing.soft_argmax", TIERS, adapter="torch", grads=True)
test_smooth_accuracy = conformance_test(smooth_accuracy, "smoothing.smooth_accuracy", TIERS,
                                        adapter="torch", grads=True)
test_smooth_f1 = conformance_test(smooth_f1, "smoothing.smooth_f1", TIERS, adapter="torch", grads=True)
test_smooth_precision = conformance_test(smooth_precision, "smoothing.smooth_precision", TIERS,
                                         adapter="torch", grads=True)
test_smooth_recall = conformance_test(smooth_recall, "smoothing.smooth_recall", TIERS,
                                      adapter="torch", grads=True)
test_soft_kmax = conformance_test(soft_kmax, "smoothing.soft_kmax", TIERS, adapter="torch", grads=True)
test_smooth_abs = conformance_test(smooth_abs, "smoothing.smooth_abs", TIERS, adapter="torch", grads=True)
test_soft_relu = conformance_test(soft_relu, "smoothing.soft_relu", TIERS, adapter="torch", grads=True)


# --- the built-ins, with their documented divergences as strict xfails ----------------------

def builtin_smooth_max(x, scale=1.0, axis=-1):
    return torch.logsumexp(scale * x, dim=axis) / scale


def builtin_soft_onehot(x, scale=1.0, axis=-1):
    return torch.softmax(scale * x, dim=axis)


def builtin_soft_relu(x, scale=1.0):
    return F.softplus(x, beta=scale)


test_builtin_smooth_max = conformance(
    builtin_smooth_max, "smoothing.smooth_max", TIERS, adapter="torch", grads=True,
    xfail={"neginf-entries": "torch.logsumexp: NaN gradient for an all -inf row (pytorch#31829)"})
test_builtin_soft_onehot = conformance(
    builtin_soft_onehot, "smoothing.soft_onehot", TIERS, adapter="torch", grads=True,
    xfail={"neginf-entries": "torch.softmax: NaN for an all -inf row (D4 says 0)"})
test_builtin_soft_relu = conformance(
    builtin_soft_relu, "smoothing.soft_relu", TIERS, adapter="torch", grads=True,
    xfail={"n7-K20": "F.softplus returns x itself above threshold=20: error ≈ e^{-Kx}/K"})


def test_builtin_logsumexp_nan_gradient_is_reported_where_it_happens():
    # the all -inf row is row 1 of the case's x; its gradient entries are all NaN in torch
    report = check(builtin_smooth_max, "smoothing.smooth_max", "edge", adapter="torch", grads=True)
    (failure,) = report.failures
    assert failure.case_id == "smoothing.smooth_max[neginf-entries]"
    values, grad = failure.comparisons
    assert values.passed and not grad.passed
    assert grad.worst_index[0] == 1 and grad.n_bad == 3 and "nan" in grad.message.lower()


def test_softplus_threshold_error_has_the_predicted_size():
    # F.softplus(x, beta=K) = x when Kx > 20, while (1/K) log(1 + e^{Kx}) = x + log(1 + e^{-Kx})/K
    report = check(builtin_soft_relu, "smoothing.soft_relu", "full", adapter="torch")
    (cmp,) = report.failures[0].comparisons
    (case,) = registry.cases("smoothing.soft_relu", "full")
    x = case.inputs["x"]
    kx = 20.0 * x[cmp.worst_index]
    assert kx > 20.0
    assert cmp.max_abs == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(-kx)))) / 20.0, rel=1e-3)


# --- lower precision -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["smooth_max", "soft_onehot", "soft_argmax", "smooth_f1", "soft_kmax",
                                "smooth_abs", "soft_relu", "smooth_accuracy"])
def test_port_float32_table_rule(op):
    report = check(PORT[op], f"smoothing.{op}", ("quick", "full"), adapter="torch", grads=True,
                   dtype="float32")
    assert report.passed, report


def test_float32_inputs_are_float32_tensors():
    seen = []

    def spy(x, scale=1.0, axis=-1):
        seen.append(x.dtype)
        return smooth_max(x, scale, axis)
    check(spy, "smoothing.smooth_max", adapter="torch", dtype="float32")
    assert seen and set(seen) == {torch.float32}


def test_soft_onehot_float16_relative_rule():
    # every case, values and gradients, within 2x the error of the reference run in float16
    report = check(soft_onehot, "smoothing.soft_onehot", TIERS, adapter="torch", grads=True,
                   dtype="float16", rule="relative", k=2)
    assert report.passed, report


def test_soft_onehot_bfloat16_quick_table_rule():
    report = check(soft_onehot, "smoothing.soft_onehot", "quick", adapter="torch", grads=True,
                   dtype="bfloat16")
    assert report.passed, report


def test_logsumexp_gradient_loses_float32_precision_at_1e4():
    # torch's VJP of logsumexp is exp(x − LSE): LSE ≈ 1e4 carries an absolute rounding error of
    # ~ulp(1e4)/2 ≈ 5e-4 in float32, so the gradient is off by ~5e-4 relative: inside the float32
    # table (rtol 1e-3) but far outside 2x the error of the shifted reference run in float32.
    table = check(builtin_smooth_max, "smoothing.smooth_max", "edge", adapter="torch", grads=True,
                  dtype="float32")
    relative = check(builtin_smooth_max, "smoothing.smooth_max", "edge", adapter="torch", grads=True,
                     dtype="float32", rule="relative")
    failing = {r.case_id for r in relative.failures} - {r.case_id for r in table.failures}
    assert failing == {"smoothing.smooth_max[extreme-1e4]"}


# --- convention diagnosis on torch candidates ------------------------------------------------

def one_based_soft_argmax(x, scale=1.0, axis=-1, base=0):
    return soft_argmax(x, scale, axis, base=1)   # ignores base: always counts from 1


def temperature_smooth_max(x, scale=1.0, axis=-1):
    return smooth_max(x / scale, 1.0, axis) * scale   # treats scale as a temperature


def test_diagnosis_names_base_1():
    d = diagnose(one_based_soft_argmax, "smoothing.soft_argmax", TIERS, adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["base=1"]


def test_diagnosis_names_temperature():
    d = diagnose(temperature_smooth_max, "smoothing.smooth_max", TIERS, adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["scale divides"]


def test_check_case_message_has_case_worst_index_and_diagnosis():
    case = registry.cases("smoothing.soft_argmax", "quick")[0]
    with pytest.raises(AssertionError) as info:
        check_case(one_based_soft_argmax, case, adapter="torch", grads=True)
    text = str(info.value)
    assert "smoothing.soft_argmax[post-x-K1]" in text
    # the failing output by name, its worst error (positions 1-based vs 0-based: |Δ| = 1)
    assert "value out" in text and "1" in text.split("value out", 1)[1].split("\n", 1)[0]
    assert "matches the oracle called with base=1" in text


@pytest.mark.kexue_ref("smoothing.smooth_max", tiers=("quick", "edge"))
def test_marker_form(kexue_case):
    check_case(smooth_max, kexue_case, adapter="torch", grads=True)
