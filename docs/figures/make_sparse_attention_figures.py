"""Draw the attention patterns of post 6853 from the predicates of ``kexue_ref._masks``.

Run from the repository root: ``python docs/figures/make_sparse_attention_figures.py``
(needs matplotlib). Writes ``docs/figures/sparse_attention_patterns.png`` (the post's atrous,
local and sparse patterns, bidirectional and causal) and ``docs/figures/sparse_attention_peers.png``
(the post's sparse pattern beside the Keras code's key multiplicities, OpenAI's factors and its
block-level "fixed" pattern). Query i is row i (top to bottom), key j is column j.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kexue_ref import _masks as mk  # noqa: E402
from kexue_ref import sparse_attention as sa  # noqa: E402

HERE = Path(__file__).resolve().parent


def _show(ax, A, title, cmap="Blues", vmax=None):
    ax.imshow(A, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(1, A.max()),
              interpolation="nearest")
    T = A.shape[0]
    ax.set_xticks(np.arange(-0.5, T, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, T, 1), minor=True)
    ax.grid(which="minor", color="0.85", lw=0.5)
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("key j", fontsize=8)
    ax.set_ylabel("query i", fontsize=8)


def patterns(T=16, R=3, W=2):
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.6))
    for row, causal in enumerate((False, True)):
        tag = ", causal" if causal else ""
        _show(axes[row, 0], mk.atrous_mask(T, R, causal), f"Atrous, R = {R}{tag}\n(i − j) mod R = 0")
        _show(axes[row, 1], mk.local_mask(T, W, causal), f"Local, W = {W}{tag}\n|i − j| ≤ W")
        _show(axes[row, 2], mk.sparse_mask(T, R, causal),
              f"Sparse, R = {R}{tag}\n|i − j| ≤ R or (i − j) mod R = 0")
    fig.suptitle(f"Post 6853's patterns, T = {T} (generated from kexue_ref._masks)", fontsize=11)
    fig.tight_layout()
    fig.savefig(HERE / "sparse_attention_patterns.png", dpi=110)
    plt.close(fig)


def keras_multiplicity(T, R):
    """How often each key enters the Keras SparseSelfAttention softmax of each query.

    With q = 0 every entry has score 0, so weight × (number of entries) counts the entries of
    key j; v = I reads the weights off. The number of entries is N + 2R − 1 per query.
    """
    N = (T + R - T % R) // R
    zeros = np.zeros((1, 1, T, 1))
    weights = sa.sparse_attention(zeros, zeros, np.eye(T).reshape(1, 1, T, T), R, compat="keras")[0, 0]
    return np.rint(weights * (N + 2 * R - 1))


def peers(T=16, R=3):
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.4))
    _show(axes[0], mk.sparse_mask(T, R), f"the post: Sparse, R = {R}\n(each key once)")
    counts = keras_multiplicity(T, R)
    _show(axes[1], counts, f"Keras SparseSelfAttention, R = {R}\nentries per key (white 0 … dark 2)",
          cmap="Oranges", vmax=2)
    openai = 1 * mk.strided_mask(T, R + 1) + 2 * mk.openai_local_mask(T, R + 1)
    _show(axes[2], openai, f"OpenAI factors, l = {R + 1}\nstrided (light), local (mid), both (dark)",
          cmap="Greens", vmax=3)
    block = 2
    fixed = mk.layout_to_mask(mk.openai_fixed_layout(T // block, 3)[0], block) & mk.causal_mask(T)
    _show(axes[3], fixed, "OpenAI 'fixed' (blocks of 2, stride 3 blocks)\nlast block of a window = summary",
          cmap="Purples")
    fig.tight_layout()
    fig.savefig(HERE / "sparse_attention_peers.png", dpi=110)
    plt.close(fig)


def main():
    patterns()
    peers()
    print("wrote", HERE / "sparse_attention_patterns.png", "and", HERE / "sparse_attention_peers.png")


if __name__ == "__main__":
    main()
