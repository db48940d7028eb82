"""Worked example: reparameterization and Gumbel-Softmax (https://kexue.fm/archives/6705) in PyTorch.

A torch port of the noise transforms, Gumbel-Max and Gumbel-Softmax (soft and
straight-through), checked against the oracle with the registry's injected noise; and
``torch.nn.functional.gumbel_softmax`` itself. Its noise is drawn inside
(``-empty_like(logits).exponential_().log()``), so it is made reproducible by handing it the
case's Exponential noise: ``Tensor.exponential_`` is replaced, for the duration of the call,
by a copy of ``e = exp(-g)``, and the result is compared with the oracle's
``gumbel_softmax(logits, gumbel_from_exponential(e), tau)``: values, and gradients with
respect to the logits.
"""
import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref import registry  # noqa: E402
from kexue_ref import reparam as rp  # noqa: E402
from kexue_ref.registry import CaseDef, OpSpec  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

from ._support import conformance  # noqa: E402

TIERS = ("quick", "full", "edge")


# --- a torch port of kexue_ref.reparam ---------------------------------------------------------

def normal_reparam(mu, sigma, eps):
    # z = μ + σ ε
    return mu + sigma * eps


def gumbel_from_uniform(u, *, mode="exact", eps=None):
    # g = −log(−log u), after each framework's guard on u
    finfo = torch.finfo(u.dtype)
    if mode == "keras":
        e = 1e-7 if eps is None else eps
        return -torch.log(-torch.log(u + e) + e)
    if mode == "clip":
        e = finfo.eps if eps is None else eps
        u = u.clamp(e, 1 - e)
    elif mode == "tiny":
        u = u.clamp_min(finfo.tiny if eps is None else eps)
    return -torch.log(-torch.log(u))


def gumbel_from_exponential(e):
    # g = −log E
    return -torch.log(e)


def _log(p):
    # log p with log 0 = −inf and a zero (not NaN) gradient there: log is taken of 1 at p = 0
    positive = p > 0
    return torch.where(positive, torch.log(torch.where(positive, p, torch.ones_like(p))),
                       torch.full_like(p, -float("inf")))


def _scores(logits, g, given):
    # o = log p when probabilities are given; softmax((o + g)/τ) is shift-invariant in o
    return (_log(logits) if given == "probs" else logits) + g


def gumbel_max(logits, g, *, axis=-1, onehot=False, given="logits"):
    # ŷ = argmax_i (o_i + g_i)
    y = torch.argmax(_scores(logits, g, given), dim=axis)
    if onehot:
        return F.one_hot(y, g.shape[axis]).movedim(-1, axis).to(torch.result_type(logits, g))
    return y


def gumbel_softmax(logits, g, tau, *, hard=False, axis=-1, given="logits"):
    # ỹ = softmax((o + g)/τ); straight-through: y_hard + ỹ − sg(ỹ)
    z = _scores(logits, g, given)
    y = torch.softmax(z / tau, dim=axis)
    if not hard:
        return y
    y_hard = F.one_hot(torch.argmax(z, dim=axis), g.shape[axis]).movedim(-1, axis).to(y.dtype)
    return y_hard + (y - y.detach())


test_normal_reparam = conformance_test(normal_reparam, "reparam.normal_reparam", TIERS, adapter="torch",
                                       grads=True)
test_gumbel_from_uniform = conformance_test(gumbel_from_uniform, "reparam.gumbel_from_uniform", TIERS,
                                            adapter="torch", grads=True)
test_gumbel_from_exponential = conformance_test(gumbel_from_exponential, "reparam.gumbel_from_exponential",
                                                TIERS, adapter="torch", grads=True)
test_gumbel_max = conformance_test(gumbel_max, "reparam.gumbel_max", TIERS, adapter="torch")
test_gumbel_softmax = conformance_test(gumbel_softmax, "reparam.gumbel_softmax", TIERS, adapter="torch",
                                      grads=True)


def plain_log_gumbel_softmax(logits, g, tau, *, hard=False, axis=-1, given="logits"):
    # the obvious torch.log(p): log'(0) = inf meets a zero cotangent, 0·inf = NaN
    z = (torch.log(logits) if given == "probs" else logits) + g
    return torch.softmax(z / tau, dim=axis)


test_plain_log_gumbel_softmax = conformance(
    plain_log_gumbel_softmax, "reparam.gumbel_softmax", "edge", adapter="torch", grads=True,
    xfail={"probs-with-zero": "torch.log at p = 0: NaN gradient for the zero-probability category"})


# --- torch.nn.functional.gumbel_softmax with the case's own noise ----------------------------------

@contextlib.contextmanager
def exponential_noise(e):
    """Make ``Tensor.exponential_`` write ``e`` (broadcast to the tensor) instead of sampling."""
    original = torch.Tensor.exponential_

    def fill(self, *args, **kwargs):
        with torch.no_grad():
            return self.copy_(e.to(self.dtype).expand_as(self))
    torch.Tensor.exponential_ = fill
    try:
        yield
    finally:
        torch.Tensor.exponential_ = original


def torch_gumbel_softmax(logits, e, tau, *, hard=False, axis=-1):
    """F.gumbel_softmax itself, with its Exponential noise E taken from the case."""
    with exponential_noise(e):
        return F.gumbel_softmax(logits.expand_as(e), tau=tau, hard=hard, dim=axis)


def _oracle_path(logits, e, tau, *, hard=False, axis=-1):
    # the oracle's route for torch's sampler: g = −log E, then softmax((o + g)/τ)
    return rp.gumbel_softmax(logits, rp.gumbel_from_exponential(e), tau, hard=hard, axis=axis)


def _exponential_cases():
    """The registry's gumbel_softmax cases (logits given) with E = e^{−g} in place of g."""
    rows = []
    for case in registry.cases("reparam.gumbel_softmax", TIERS):
        if case.params.get("given", "logits") != "logits":
            continue
        e = np.exp(-case.inputs["g"])
        rows.append(CaseDef(case.name, {"logits": case.inputs["logits"], "e": e}, case.params,
                            tier=case.tier, note=case.defn.note, gradcheck=case.defn.gradcheck))
    rows.append(CaseDef("bad-e", {"logits": np.zeros(3), "e": np.zeros(3)}, {"tau": 1.0}, tier="error",
                        raises=(ValueError, "e")))
    return rows


EXPONENTIAL_PATH = OpSpec(
    "reparam.gumbel_softmax_from_exponential", _oracle_path, ("logits", "e"), ("logits",),
    _exponential_cases(), "torch/nn/functional.py gumbel_softmax; https://kexue.fm/archives/6705")


def test_torch_functional_gumbel_softmax_matches_the_oracle():
    report = check(torch_gumbel_softmax, EXPONENTIAL_PATH, TIERS, adapter="torch", grads=True)
    assert report.passed, report
    assert len(report.results) == len([c for c in EXPONENTIAL_PATH.cases if c.tier != "error"])


def test_torch_functional_gumbel_softmax_in_float32():
    report = check(torch_gumbel_softmax, EXPONENTIAL_PATH, "quick", adapter="torch", grads=True,
                   dtype="float32")
    assert report.passed, report


def test_seeded_torch_generator_gives_the_noise_the_oracle_gets():
    # a seeded torch.Generator drives exponential_; the same seed gives the oracle its E
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    draw = torch.Tensor.exponential_
    e = torch.empty(4, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    original = torch.Tensor.exponential_
    torch.Tensor.exponential_ = lambda self, *a, **k: draw(self, generator=gen)
    try:
        y = F.gumbel_softmax(logits, tau=0.5)
    finally:
        torch.Tensor.exponential_ = original
    expected = rp.gumbel_softmax(logits.numpy(), rp.gumbel_from_exponential(e.numpy()), 0.5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert torch.Tensor.exponential_ is original


def test_hard_one_is_one_within_an_ulp():
    # torch's straight-through "1" is y_hard − ỹ + ỹ: 1 ± ulp, inside the float64 atol
    (case,) = [c for c in EXPONENTIAL_PATH.cases if c.name == "p4-S3-tau1-hard"]
    inputs = case.inputs
    y = torch_gumbel_softmax(torch.tensor(inputs["logits"]), torch.tensor(inputs["e"]), 1.0, hard=True)
    assert torch.all(torch.abs(y.sum(-1) - 1) <= 4 * torch.finfo(torch.float64).eps)


def test_tau_multiplying_is_diagnosed():
    def tau_multiplies(logits, g, tau, *, hard=False, axis=-1, given="logits"):
        return gumbel_softmax(logits, g, 1.0 / tau, hard=hard, axis=axis, given=given)
    d = diagnose(tau_multiplies, "reparam.gumbel_softmax", ("quick", "full"), adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["tau multiplies"]


def test_keras_noise_is_diagnosed_as_mode_keras():
    def keras_noise(u, *, mode="exact", eps=None):   # always Su's -log(-log(u + 1e-7) + 1e-7)
        return gumbel_from_uniform(u, mode="keras")
    report = check(keras_noise, "reparam.gumbel_from_uniform", "quick", adapter="torch")
    # the exact-noise case fails; the clip and tiny ones (a peer's guards, run only when the
    # checker is asked for quirk cases) fail too when they are run
    failed = {r.case_id for r in report.failures}
    assert "reparam.gumbel_from_uniform[exact-n8]" in failed
    assert failed <= {f"reparam.gumbel_from_uniform[{n}]" for n in ("exact-n8", "clip-n8", "tiny-n8")}
    d = diagnose(keras_noise, "reparam.gumbel_from_uniform", "quick", adapter="torch", report=report)
    assert [m.convention.label for m in d.matches] == ["mode='keras'"]
