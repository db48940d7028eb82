"""Worked example: the stable primitives (``kexue_ref.numerics``) against torch's built-ins.

torch's own functions are the candidates here, wrapped only to map ``axis`` to ``dim``. They
agree with the oracle everywhere except where the oracle's D4 policy differs on purpose
(an all ``-inf`` row: torch gives NaN probabilities or NaN gradients) and the masking
constant: ``masked_fill(~mask, -1e9)`` is the replacement convention, which the diagnosis
recognises as ``fill=-1e9``. A D4-faithful masked softmax in a few lines passes everything.
"""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

from ._support import conformance  # noqa: E402

TIERS = ("quick", "full", "edge")
ALL_NEGINF = "torch: NaN for an all -inf slice (pytorch#31829); D4 gives 0 with gradient 0"


def logsumexp(x, axis=-1):
    return torch.logsumexp(x, dim=axis)


def softmax(x, axis=-1):
    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(x, dim=axis)


def masked_softmax_1e9(x, mask, axis=-1, fill=None):
    # the common idiom: masked scores replaced by -1e9 (whatever `fill` says)
    return torch.softmax(x.masked_fill(~mask, -1e9), dim=axis)


def masked_softmax(x, mask, axis=-1, fill=None):
    """D4: P_i = [A_i] e^{x_i - m} / Σ_{j: A_j} e^{x_j - m}; a fully masked row gives 0."""
    if fill is not None:
        # replacement masking with the constant c, then a plain softmax
        return torch.softmax(torch.where(mask, x, torch.full_like(x, fill)), dim=axis)
    mask = mask.expand_as(x)
    # m = max over the allowed entries (0 for a fully masked row), held constant
    m = torch.where(mask, x, torch.full_like(x, -float("inf"))).amax(dim=axis, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    # e_i = [A_i] e^{x_i - m}; the exponent is taken of 0 at masked entries
    e = torch.where(mask, torch.exp(torch.where(mask, x - m, torch.zeros_like(x))), torch.zeros_like(x))
    s = e.sum(dim=axis, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)


test_logsumexp = conformance(logsumexp, "numerics.logsumexp", TIERS, adapter="torch", grads=True,
                                  xfail={"all-neginf-row": ALL_NEGINF})
test_softmax = conformance(softmax, "numerics.softmax", TIERS, adapter="torch", grads=True,
                                xfail={"all-neginf-row": ALL_NEGINF})
test_log_softmax = conformance(log_softmax, "numerics.log_softmax", TIERS, adapter="torch",
                                    grads=True, xfail={"all-neginf-row": ALL_NEGINF})
test_sigmoid = conformance_test(torch.sigmoid, "numerics.sigmoid", TIERS, adapter="torch", grads=True)
test_log_sigmoid = conformance_test(F.logsigmoid, "numerics.log_sigmoid", TIERS, adapter="torch",
                                    grads=True)
test_softplus = conformance_test(F.softplus, "numerics.softplus", TIERS, adapter="torch", grads=True)
test_masked_softmax = conformance_test(masked_softmax, "numerics.masked_softmax", TIERS,
                                       adapter="torch", grads=True)


def test_builtins_in_float32():
    for fn, op in [(logsumexp, "logsumexp"), (softmax, "softmax"), (log_softmax, "log_softmax"),
                   (torch.sigmoid, "sigmoid"), (F.logsigmoid, "log_sigmoid"), (F.softplus, "softplus")]:
        report = check(fn, f"numerics.{op}", ("quick", "full"), adapter="torch", grads=True,
                       dtype="float32")
        assert report.passed, report


def test_softmax_all_neginf_row_is_nan_in_torch():
    report = check(softmax, "numerics.softmax", "edge", adapter="torch")
    (failure,) = report.failures
    assert failure.case_id == "numerics.softmax[all-neginf-row]"
    (values,) = failure.comparisons
    # row 1 is the all -inf row: three NaN probabilities where the oracle has 0
    assert values.n_bad == 3 and values.worst_index[0] == 1 and "nan" in values.message.lower()


def test_minus_1e9_masking_is_diagnosed_as_fill():
    d = diagnose(masked_softmax_1e9, "numerics.masked_softmax", TIERS, adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["fill=-1e9"]
    # it fails exactly where a row is fully masked and fill is not -1e9
    report = check(masked_softmax_1e9, "numerics.masked_softmax", TIERS, adapter="torch")
    assert {r.case_id.split("[")[1][:-1] for r in report.failures} == {"B1-T4", "B2-T7", "all-masked"}


def test_inverted_mask_is_diagnosed():
    def masked_where_true(x, mask, axis=-1, fill=None):   # True = "masked out"
        return masked_softmax(x, ~mask, axis, fill)
    d = diagnose(masked_where_true, "numerics.masked_softmax", "quick", adapter="torch")
    assert [m.convention.label for m in d.matches] == ["mask inverted"]


# --- the adapter itself -------------------------------------------------------------------

def test_torch_adapter_conversions():
    import numpy as np
    from kexue_ref.testing.adapters_torch import TorchAdapter

    a = TorchAdapter()
    assert str(a.device) == "cpu"
    assert a.to_candidate(np.arange(3), "float32").dtype == torch.int64          # integers stay integers
    assert a.to_candidate(np.array([True, False]), "float32").dtype == torch.bool
    x = a.to_candidate(np.array(1 / 3), "bfloat16")
    assert x.dtype == torch.bfloat16 and x.shape == ()                          # 0-d stays 0-d
    assert a.to_numpy(x).dtype == np.float32 and float(a.to_numpy(x)) == 0.333984375
    with pytest.raises(ValueError, match="dtype must be one of"):
        a.to_candidate(np.ones(2), "float8")


def test_hand_written_torch_backward_is_checked():
    # grads(u, x): the VJP of softmax, u·p − p·Σ(u·p), written by hand; and a wrong one
    def vjp(u, x, axis=-1):
        p = torch.softmax(x, dim=axis)
        return p * u - p * (p * u).sum(axis, keepdim=True)

    def wrong_vjp(u, x, axis=-1):
        p = torch.softmax(x, dim=axis)
        return p * (1 - p) * u                     # the diagonal of the Jacobian only

    assert check(softmax, "numerics.softmax", ("quick", "full"), adapter="torch", grads=vjp).passed
    report = check(softmax, "numerics.softmax", "quick", adapter="torch", grads=wrong_vjp)
    assert not report.passed and all(not r.comparisons[-1].passed for r in report.failures)
