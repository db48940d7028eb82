"""Worked example: DGCNN triple extraction (https://kexue.fm/archives/6671) in PyTorch.

A torch port of the dilated convolution (Keras kernels (k, D_in, D_out) turned into torch's
(D_out, D_in, k), Keras 'same' padding done by hand), the gated residual block in both gate
placements with the code's gate dropout as an explicit mask, the masked binary
cross-entropy and the masked max-pool, checked in float64 and float32, values and
gradients. ``F.conv1d`` itself is checked against the oracle's emulation of it. The usual
port with ``padding=(k // 2)·r`` agrees with Keras 'same' only for odd k (strict xfail on
the even-k case), and a block written with the gate on the identity branch is recognised as
``gate='keras'``.
"""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

from ._support import conformance  # noqa: E402

TIERS = ("quick", "full", "edge")


def dilated_conv1d(x, w, b=None, dilation=1):
    # y_t = b + Σ_j x_{t + (j − ℓ) r} W_j with Keras 'same' padding: ⌊(k−1)r/2⌋ left, the rest right
    k = w.shape[0]
    total = (k - 1) * dilation
    xt = F.pad(x.transpose(1, 2), (total // 2, total - total // 2))      # (B, D_in, T + (k−1)r)
    y = F.conv1d(xt, w.permute(2, 1, 0), b, dilation=dilation)            # (B, D_out, T)
    return y.transpose(1, 2)


def port_conv1d(x, w, b=None, dilation=1):
    # the common port: symmetric padding (k // 2)·r
    y = F.conv1d(x.transpose(1, 2), w.permute(2, 1, 0), b, padding=(w.shape[0] // 2) * dilation,
                 dilation=dilation)
    return y.transpose(1, 2)


def dgcnn_block(x, mask, w, b, gate_keep=None, *, dilation=1, gate="post", rate=0.1):
    D = x.shape[-1]
    z = dilated_conv1d(x, w, b, dilation)
    g, c = z[..., :D], z[..., D:]                     # fused output columns [gate | value]
    if gate_keep is not None:
        # dropout on the gate logits: kept ones divided by 1 − rate, dropped ones 0
        g = torch.where(gate_keep, g / (1 - rate), torch.zeros_like(g))
    s = torch.sigmoid(g)
    # post: Y = X ⊙ (1 − σ) + Conv₁(X) ⊙ σ;  keras: Y = G ⊙ X + (1 − G) ⊙ c
    y = x * (1 - s) + c * s if gate == "post" else s * x + (1 - s) * c
    return y * mask[..., None].to(y.dtype)


def masked_bce(p, t, mask=None, clip=1e-7):
    # ℓ = −t log p̄ − (1 − t) log(1 − p̄), p̄ = clip(p, ε, 1 − ε); L = Σ m Σ_c ℓ / Σ m
    p = p.clamp(clip, 1 - clip)
    loss = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    if loss.ndim == 3:
        loss = loss.sum(-1)
    m = torch.ones_like(loss) if mask is None else mask.to(loss.dtype)
    return (loss * m).sum() / m.sum()


def seq_maxpool(h, mask):
    # h̄_d = max over valid t of h_td; 0 for a sample without a valid position
    hm = h.masked_fill(~mask[..., None], -float("inf")).amax(1)
    return torch.where(mask.any(1, keepdim=True), hm, torch.zeros_like(hm))


def conv1d_torch(x, weight, bias=None, dilation=1):
    # torch's own F.conv1d with the ports' padding (k // 2)·r
    return F.conv1d(x, weight, bias, padding=(weight.shape[-1] // 2) * dilation, dilation=dilation)


test_dilated_conv1d = conformance_test(dilated_conv1d, "dgcnn.dilated_conv1d", TIERS, adapter="torch",
                                       grads=True)
test_port_conv1d = conformance(
    port_conv1d, "dgcnn.dilated_conv1d", TIERS, adapter="torch", grads=True,
    xfail={"even-k2-r3": "padding (k // 2)·r is 'same' only for odd k: T + r outputs"})
test_dgcnn_block = conformance_test(dgcnn_block, "dgcnn.dgcnn_block", TIERS, adapter="torch", grads=True)
test_masked_bce = conformance_test(masked_bce, "dgcnn.masked_bce", TIERS, adapter="torch", grads=True)
test_seq_maxpool = conformance_test(seq_maxpool, "dgcnn.seq_maxpool", TIERS, adapter="torch", grads=True)
test_conv1d_torch = conformance_test(conv1d_torch, "dgcnn.conv1d_torch", TIERS, adapter="torch", grads=True)


@pytest.mark.parametrize("fn, op", [(dilated_conv1d, "dilated_conv1d"), (dgcnn_block, "dgcnn_block"),
                                    (masked_bce, "masked_bce")])
def test_float32(fn, op):
    report = check(fn, f"dgcnn.{op}", ("quick", "full"), adapter="torch", grads=True, dtype="float32")
    assert report.passed, report


def test_even_kernel_port_reports_the_extra_step():
    report = check(port_conv1d, "dgcnn.dilated_conv1d", "edge", adapter="torch")
    (failure,) = report.failures
    assert failure.case_id == "dgcnn.dilated_conv1d[even-k2-r3]"
    # T + 2·(k // 2)·r − (k − 1)·r = T + r = 10 steps instead of 7
    assert "shape (2, 10, 2) != expected (2, 7, 2)" in failure.comparisons[0].message


def test_gate_on_identity_branch_is_diagnosed():
    def code_gate(x, mask, w, b, gate_keep=None, *, dilation=1, gate="post", rate=0.1):
        return dgcnn_block(x, mask, w, b, gate_keep, dilation=dilation, gate="keras", rate=rate)
    d = diagnose(code_gate, "dgcnn.dgcnn_block", ("quick", "full"), adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["gate='keras'"]
