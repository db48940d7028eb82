"""Worked example: ON-LSTM (https://kexue.fm/archives/6621) in PyTorch.

A torch port of cumax, the master gates (the post's "su" master input gate and the paper's
``1 - cumax``, the way the official ``ON_LSTM.py`` computes it), the cell in the canonical
("su" = Keras) weight layout, and the level statistics, checked against the oracle in
float64 and float32, values and gradients. A port that hard-codes the official master input
gate is recognised by the diagnosis as ``master_input='paper'``.
"""
import pytest

torch = pytest.importorskip("torch")

from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

TIERS = ("quick", "full", "edge")


def cumax(a, axis=-1):
    # cumax(a) = cs→(softmax(a))
    return torch.cumsum(torch.softmax(a, dim=axis), dim=axis)


def master_gates(a_f, a_i, *, master_input="su", chunk=1):
    # f̃ = cumax(a_f); ĩ = cs←(softmax(a_i)) (su) or 1 − cumax(a_i) (paper, as ON_LSTM.py)
    f_master = cumax(a_f)
    if master_input == "su":
        i_master = torch.flip(torch.cumsum(torch.flip(torch.softmax(a_i, -1), [-1]), -1), [-1])
    else:
        i_master = 1 - cumax(a_i)
    # each level repeated C times: (..., L) → (..., L·C)
    return f_master.repeat_interleave(chunk, -1), i_master.repeat_interleave(chunk, -1)


def cell(x, h, c, W, U, b, *, levels=None, chunk=None, master_input="su", dropconnect="inverted",
         dropconnect_p=0.0):
    N = h.shape[-1]
    C = N // levels if levels is not None else chunk
    L = N // C
    if dropconnect == "official" and dropconnect_p:
        # evaluation mode of LinearDropConnect: the hh weight scaled by (1 − p)
        U = U * (1 - dropconnect_p)
    # z = x W + h U + b, columns [a_f̃ | a_ĩ | z_f | z_i | z_o | z_c]
    z = x @ W + h @ U + b
    a_f, a_i = z[:, :L], z[:, L:2 * L]
    zf, zi, zo, zc = z[:, 2 * L:].split(N, dim=-1)
    f, i, o, c_hat = torch.sigmoid(zf), torch.sigmoid(zi), torch.sigmoid(zo), torch.tanh(zc)
    f_lvl, i_lvl = master_gates(a_f, a_i, master_input=master_input)
    fm, im = f_lvl.repeat_interleave(C, -1), i_lvl.repeat_interleave(C, -1)
    # ω = f̃ ⊙ ĩ;  c = ω ⊙ (f ⊙ c + i ⊙ ĉ) + (f̃ − ω) ⊙ c + (ĩ − ω) ⊙ ĉ;  h = o ⊙ tanh(c)
    omega = fm * im
    c_new = omega * (f * c + i * c_hat) + (fm - omega) * c + (im - omega) * c_hat
    return o * torch.tanh(c_new), c_new, f_lvl, i_lvl


def soft_level(f_master, base=0):
    # d_f = Σ_k (k + base) p_f(k), with p_f(k) = f̃_k − f̃_{k−1} (f̃_{−1} = 0)
    p = torch.diff(f_master, dim=-1, prepend=torch.zeros_like(f_master[..., :1]))
    k = torch.arange(f_master.shape[-1], dtype=f_master.dtype, device=f_master.device) + base
    return (k * p).sum(-1)


def closed_form_soft_level(f_master, base=0):
    # d_f = L (1 − mean f̃) + base: the same value when f̃_{L−1} = 1, another gradient
    return f_master.shape[-1] * (1 - f_master.mean(-1)) + base


def distance(f_master):
    # d = 1 − mean f̃
    return 1 - f_master.mean(-1)


def distance_in(i_master):
    # d_in = mean ĩ
    return i_master.mean(-1)


test_cumax = conformance_test(cumax, "on_lstm.cumax", TIERS, adapter="torch", grads=True)
test_master_gates = conformance_test(master_gates, "on_lstm.master_gates", TIERS, adapter="torch", grads=True)
test_cell = conformance_test(cell, "on_lstm.cell", TIERS, adapter="torch", grads=True)
test_soft_level = conformance_test(soft_level, "on_lstm.soft_level", TIERS, adapter="torch", grads=True)
test_distance = conformance_test(distance, "on_lstm.distance", TIERS, adapter="torch", grads=True)
test_distance_in = conformance_test(distance_in, "on_lstm.distance_in", TIERS, adapter="torch", grads=True)


def test_closed_form_soft_level_differs_only_in_the_last_gradient_entry():
    # ∂/∂f̃_{L−1} is (L − 1 + base) for the definition and −1 for L(1 − mean f̃) + base
    report = check(closed_form_soft_level, "on_lstm.soft_level", TIERS, adapter="torch", grads=True)
    assert report.failures
    for r in report.failures:
        values, grad = r.comparisons
        assert values.passed and not grad.passed
        L = grad.worst_index[-1] + 1
        assert grad.size % L == 0 and grad.n_bad == grad.size // L   # one entry per row
        assert grad.worst_index[-1] == L - 1


@pytest.mark.parametrize("fn, op", [(cumax, "cumax"), (master_gates, "master_gates"), (cell, "cell")])
def test_float32(fn, op):
    report = check(fn, f"on_lstm.{op}", ("quick", "full"), adapter="torch", grads=True, dtype="float32")
    assert report.passed, report


def test_official_master_input_is_diagnosed():
    def official_cell(x, h, c, W, U, b, *, master_input="su", **kw):
        return cell(x, h, c, W, U, b, master_input="paper", **kw)   # always 1 − cumax
    report = check(official_cell, "on_lstm.cell", TIERS, adapter="torch", grads=True)
    # it fails exactly the cases that ask for the post's gate (and the default, which is "su")
    assert report.failures and all("paper" not in r.case_id for r in report.failures)
    d = diagnose(official_cell, "on_lstm.cell", TIERS, adapter="torch", grads=True, report=report)
    assert [m.convention.label for m in d.matches] == ["master_input='paper'"]
