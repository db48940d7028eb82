"""Figure of docs/frameworks.md: the low-precision rule on real framework code.

For every non-error case of a few ops, the error of a torch candidate run in a low precision
(max |candidate − float64 oracle| over the output) is plotted against the error of the
reference itself run naively in that precision (``kexue_ref.testing.lowprec``). The rule
``rule="relative", k=2`` accepts the points under the line y = 2x (plus the table's atol).

Run from the repository root: ``python docs/figures/make_frameworks_figures.py`` (needs torch).
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

try:
    import torch
except ImportError:  # the figure needs torch; merely importing this file (pytest collects it) must not
    torch = None

from kexue_ref import registry  # noqa: E402
from kexue_ref.testing import reference_outputs  # noqa: E402
from kexue_ref.testing.lowprec import naive_outputs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def sdpa(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    A = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool) if allowed is None else allowed
    if key_mask is not None:
        A = A & torch.as_tensor(np.asarray(key_mask, bool))[:, None, None, :]
    if causal:
        A = A & torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=A)
    if query_mask is not None:
        out = torch.where(torch.as_tensor(np.asarray(query_mask, bool))[:, None, :, None], out,
                          torch.zeros_like(out))
    return out


def soft_onehot(x, scale=1.0, axis=-1):
    return torch.softmax(scale * x, dim=axis)


def smooth_max(x, scale=1.0, axis=-1):
    return torch.logsumexp(scale * x, dim=axis) / scale


CANDIDATES = [("sparse_attention.attention", sdpa, "SDPA"),
              ("smoothing.soft_onehot", soft_onehot, "torch.softmax"),
              ("smoothing.smooth_max", smooth_max, "torch.logsumexp")]


def errors(op, fn, dtype):
    from kexue_ref.testing.adapters_torch import TorchAdapter

    adapter = TorchAdapter()
    spec = registry.get_op(op)
    points = []
    for case in registry.cases(op, ("quick", "full", "edge")):
        if case.params.get("fill") is not None:
            continue
        expected = reference_outputs(case)[0]
        got = adapter.to_numpy(spec.call(fn, _cast(case, adapter, dtype)))
        naive = naive_outputs(case, dtype)[0]
        finite = np.isfinite(expected)
        e_cand = np.max(np.abs(got[finite] - expected[finite]), initial=0.0)
        e_naive = np.max(np.abs(naive[finite] - expected[finite]), initial=0.0)
        if np.isfinite(e_cand) and np.isfinite(e_naive):
            points.append((e_naive, e_cand))
    return np.array(points)


def _cast(case, adapter, dtype):
    class View:
        inputs = {n: adapter.to_candidate(v, dtype) for n, v in case.inputs.items()}
        params = case.params
    return View


def main():
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2), sharey=True)
    for ax, dtype in zip(axes, ("float16", "bfloat16")):
        for (op, fn, label), marker in zip(CANDIDATES, "o^s"):
            pts = errors(op, fn, dtype)
            floor = 1e-9
            ax.scatter(np.maximum(pts[:, 0], floor), np.maximum(pts[:, 1], floor), marker=marker,
                       label=label, alpha=0.75)
        grid = np.logspace(-9, 1, 50)
        ax.plot(grid, 2 * grid, "k--", lw=1, label="y = 2x (k = 2)")
        ax.plot(grid, grid, color="0.6", lw=0.8, label="y = x")
        ax.set(xscale="log", yscale="log", xlim=(1e-9, 10), ylim=(1e-9, 10),
               xlabel=f"error of the reference run naively in {dtype}",
               title=f"torch candidates in {dtype}, one point per case")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("error of the candidate (max |Δ| vs float64 oracle)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = os.path.join(HERE, "frameworks_lowprec.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
