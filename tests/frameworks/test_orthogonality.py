"""Worked example: the Self-Orthogonality Module (https://kexue.fm/archives/7169) in PyTorch.

A torch port of the angle Gram ϑ = 1 − 2θ/π, the SOM estimate Θ and penalty R_ϑ, and the
off-diagonal penalty, checked in float64 and float32, values and gradients; and BigGAN's
``ortho`` written as in ``ajbrock/BigGAN-PyTorch`` (it adds to ``param.grad`` under
``no_grad``), checked on its values. The textbook ``arccos`` form of θ is checked as well: it
loses half the digits near θ = 0, so the diagonal (always θ = 0) is off by ~1e-8, and its
derivative is infinite there (NaN gradients). A port that takes filters as rows where
the case says columns is recognised by the diagnosis.
"""
import math

import pytest

torch = pytest.importorskip("torch")

from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

TIERS = ("quick", "full", "edge")


def _unit_columns(w):
    return w / w.norm(dim=0, keepdim=True)


def angle_gram(w):
    # θ_ij = 2 atan2(‖ŵ_i − ŵ_j‖, ‖ŵ_i + ŵ_j‖);  ϑ_ij = 1 − 2θ_ij/π
    u = _unit_columns(w)                                     # (D, M)
    diff = u[:, :, None] - u[:, None, :]                     # (D, M, M)
    summ = u[:, :, None] + u[:, None, :]
    a, b = (diff ** 2).sum(0), (summ ** 2).sum(0)
    # √ with a zero (not inf) derivative at 0: the pair θ ∈ {0, π} gets the zero subgradient
    root = lambda s: torch.where(s > 0, torch.sqrt(torch.where(s > 0, s, torch.ones_like(s))),  # noqa: E731
                                 torch.zeros_like(s))
    theta = 2 * torch.atan2(root(a), root(b))
    return 1 - 2 * theta / math.pi


def arccos_angle_gram(w):
    # the textbook form θ = arccos(ŵ_iᵀ ŵ_j)
    u = _unit_columns(w)
    return 1 - 2 * torch.arccos((u.T @ u).clamp(-1, 1)) / math.pi


def som_gram(x, w, gamma=10.0, *, bias=None, eps=1e-12):
    # Y = XW + b; T = tanh(γY); T̂ = T / √(Σ_b T² + ε²); Θ = T̂ᵀ T̂
    y = x @ w
    if bias is not None:
        y = y + torch.as_tensor(bias, dtype=y.dtype, device=y.device)
    t = torch.tanh(gamma * y)
    t_hat = t / torch.sqrt((t ** 2).sum(0, keepdim=True) + eps ** 2)
    return t_hat.T @ t_hat


def som_penalty(x, w, lam1=100.0, lam2=1.0, gamma=10.0, *, pairs="ordered", grad_x=True, bias=None,
                eps=1e-12):
    # R = λ₁ (Σ_{i≠j} Θ_ij)² + λ₂ Σ_{i≠j} Θ_ij²  (i < j only for "unordered")
    theta = som_gram(x if grad_x else x.detach(), w, gamma, bias=bias, eps=eps)
    M = theta.shape[0]
    off = torch.ones(M, M, dtype=torch.bool, device=theta.device)
    off = off.triu(1) if pairs == "unordered" else off & ~torch.eye(M, dtype=torch.bool, device=theta.device)
    t = theta[off]
    return lam1 * t.sum() ** 2 + lam2 * (t ** 2).sum()


def offdiag_penalty(w, filters="columns"):
    # R = ‖WᵀW ⊙ (1 − I)‖_F², filters as columns (or rows, flattened per row)
    W = w.reshape(w.shape[0], -1).T if filters == "rows" else w.reshape(-1, w.shape[-1])
    G = W.T @ W
    return (G ** 2).sum() - (torch.diagonal(G) ** 2).sum()


def biggan_ortho(w, strength=1e-4, mode="ortho", *, filters="rows"):
    """BigGAN-PyTorch's utils.ortho / default_ortho on one parameter, returning what it adds to .grad."""
    param = torch.nn.Parameter(w.detach().clone() if filters == "rows" else w.detach().T.clone())
    param.grad = torch.zeros_like(param)
    with torch.no_grad():
        W = param.view(param.shape[0], -1)
        eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
        if mode == "ortho":
            grad = 2 * torch.mm(torch.mm(W, W.t()) * (1.0 - eye), W)
        else:
            grad = 2 * torch.mm(torch.mm(W, W.t()) - eye, W)
        param.grad.data += strength * grad.view(param.shape)
    return param.grad if filters == "rows" else param.grad.T


test_angle_gram = conformance_test(angle_gram, "orthogonality.angle_gram", TIERS, adapter="torch", grads=True)
test_som_gram = conformance_test(som_gram, "orthogonality.som_gram", TIERS, adapter="torch", grads=True)
test_som_penalty = conformance_test(som_penalty, "orthogonality.som_penalty", TIERS, adapter="torch",
                                    grads=True)
test_offdiag_penalty = conformance_test(offdiag_penalty, "orthogonality.offdiag_penalty", TIERS,
                                        adapter="torch", grads=True)
test_biggan_ortho = conformance_test(biggan_ortho, "orthogonality.biggan_ortho_grad", TIERS, adapter="torch")


@pytest.mark.parametrize("fn, op", [(angle_gram, "angle_gram"), (som_gram, "som_gram"),
                                    (som_penalty, "som_penalty"), (offdiag_penalty, "offdiag_penalty")])
def test_float32(fn, op):
    report = check(fn, f"orthogonality.{op}", "quick", adapter="torch", grads=True, dtype="float32")
    assert report.passed, report


def test_arccos_form_fails_on_the_diagonal():
    # ŵ_iᵀŵ_i = 1 − O(ε) and arccos(1 − δ) ≈ √(2δ) ≈ 1e-8: the diagonal, always θ = 0, is off by
    # ~1e-8 instead of 1e-16, and d arccos/dt = −1/√(1 − t²) there is infinite (NaN gradients)
    report = check(arccos_angle_gram, "orthogonality.angle_gram", TIERS, adapter="torch", grads=True)
    assert len(report.failures) == len(report.results)
    for r in report.failures:
        values, grad = r.comparisons
        i, j = values.worst_index
        if not r.case_id.endswith("[tiny-angle]"):   # there the tiny off-diagonal angle is worse
            assert i == j and 1e-10 < values.max_abs < 1e-6
        assert not grad.passed
    assert sum("nan" in r.comparisons[1].message.lower() for r in report.failures) >= len(report.failures) - 1


def test_rows_for_columns_is_diagnosed():
    def rows_always(w, filters="columns"):
        return offdiag_penalty(w, filters="rows")
    d = diagnose(rows_always, "orthogonality.offdiag_penalty", ("quick", "full"), adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["filters flipped"]


def test_default_ortho_for_ortho_is_diagnosed():
    def always_default(w, strength=1e-4, mode="ortho", *, filters="rows"):
        return biggan_ortho(w, strength, "default", filters=filters)
    d = diagnose(always_default, "orthogonality.biggan_ortho_grad", "quick", adapter="torch")
    assert [m.convention.label for m in d.matches] == ["mode='default'"]
