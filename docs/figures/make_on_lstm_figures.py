"""Draw the ON-LSTM master gates of one step and a distance sequence with its induced tree.

Run from the repository root: ``python docs/figures/make_on_lstm_figures.py`` (needs
matplotlib). Writes ``docs/figures/on_lstm_gates.png`` and ``docs/figures/on_lstm_tree.png``.
The trees use the post's distances; the tokens are English glosses of the post's Chinese
words (no CJK font is assumed).
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kexue_ref import on_lstm as ol  # noqa: E402

HERE = Path(__file__).resolve().parent


def gates_figure(path):
    L = 16
    k = np.arange(L)
    # logits peaked near level 5 (master forget) and level 10 (master input)
    a_f = -0.5 * (k - 5.0) ** 2 / 2.0
    a_i = -0.5 * (k - 10.0) ** 2 / 3.0
    f, i_su = ol.master_gates(a_f, a_i)
    _, i_paper = ol.master_gates(a_f, a_i, master_input="paper")
    p_f, p_i = np.diff(f, prepend=0.0), i_su - i_paper

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.0))
    ax = axes[0]
    ax.bar(k - 0.2, p_f, width=0.4, alpha=0.35, color="C0", label="p_f = softmax(a_f)")
    ax.bar(k + 0.2, p_i, width=0.4, alpha=0.35, color="C1", label="p_i = softmax(a_i)")
    ax.step(k, f, where="mid", color="C0", lw=2, label="f̃ = cs→(p_f)  (cumax)")
    ax.step(k, i_su, where="mid", color="C1", lw=2, label="ĩ = cs←(p_i)  (post, 'su')")
    ax.step(k, i_paper, where="mid", color="C1", lw=1.5, ls="--", label="ĩ = 1 − cumax  ('paper')")
    ax.fill_between(k, f * i_su, step="mid", color="C2", alpha=0.3, label="ω = f̃ ⊙ ĩ (overlap)")
    ax.set_xlabel("level k (0-based; low = fine, high = coarse)")
    ax.set_title("soft master gates of one step (L = 16)")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    for ax, (d_f, d_i) in zip(axes[1:], [(5, 10), (10, 5)]):
        fh, ih = ol.hard_master_gates(d_f, d_i, L)
        omega = fh * ih
        # the gates are exactly 0 or 1; f̃ is drawn 0.03 up and ĩ 0.03 down only so that both lines
        # stay visible where they coincide (1 on the overlap ω, 0 in the empty middle)
        ax.step(k, fh + 0.03, where="mid", color="C0", lw=2, label="f̃ = cs→(onehot(d_f))")
        ax.step(k, ih - 0.03, where="mid", color="C1", lw=2, label="ĩ = cs←(onehot(d_i))")
        ax.fill_between(k, omega, step="mid", color="C2", alpha=0.3, label="ω")
        regions = ([(0, d_f - 0.5, "ĉ only"), (d_f - 0.5, d_i + 0.5, "LSTM"), (d_i + 0.5, L - 1, "history")]
                   if d_f <= d_i else
                   [(0, d_i + 0.5, "ĉ only"), (d_i + 0.5, d_f - 0.5, "empty (0)"), (d_f - 0.5, L - 1, "history")])
        for lo, hi, text in regions:
            ax.text((lo + hi) / 2, 0.5, text, ha="center", fontsize=9)
            ax.axvline(hi, color="gray", lw=0.5, ls=":")
        ax.set_ylim(-0.1, 1.15)
        ax.set_xlabel("level k")
        ax.set_title(f"hard gates, d_f = {d_f}, d_i = {d_i}" + (" (d_f ≤ d_i)" if d_f <= d_i else " (d_f > d_i)"))
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _layout(tree, leaf_x):
    """(x, height, drawing segments) of a nested-list tree whose leaves sit at leaf_x."""
    if not isinstance(tree, list):
        x = leaf_x.pop(0)
        return x, 0, []
    kids = [_layout(t, leaf_x) for t in tree]
    height = 1 + max(kh for _, kh, _ in kids)
    x = float(np.mean([kx for kx, _, _ in kids]))
    segments = [seg for _, _, segs in kids for seg in segs]
    segments += [((x, height), (kx, kh)) for kx, kh, _ in kids]
    return x, height, segments


def _draw(ax, tokens, d, title):
    tree = ol.build_tree(tokens, d)
    T = len(tokens)
    _, height, segments = _layout(tree, list(range(T)))
    scale = 1.0 / max(height, 1)
    ax.bar(range(T), -np.asarray(d), color="C0", alpha=0.5, width=0.6)   # distances below the axis
    for (x0, y0), (x1, y1) in segments:
        ax.plot([x0, x1], [0.15 + y0 * scale, 0.15 + y1 * scale], color="k", lw=1.5)
    for t, (tok, dt) in enumerate(zip(tokens, d)):
        ax.text(t, 0.07, tok, ha="center", va="center", fontsize=9)
        ax.text(t, -dt - 0.06, f"{dt:g}", ha="center", va="top", fontsize=8, color="C0")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlim(-0.7, T - 0.3)
    ax.set_ylim(-1.1, 1.25)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title(f"{title}\n{ol.tree_to_brackets(tree)}", fontsize=9)


def tree_figure(path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _draw(axes[0], ["apple", "'s", "color", "is", "what"], [0.5, 0.1, 0.6, 0.2, 0.9],
          "the post's first example: d = [0.5, 0.1, 0.6, 0.2, 0.9] (bars, downwards)")
    _draw(axes[1], ["love", "really", "needs", "courage"], [0.9, 0.6, 0.3, 0.1],
          "the post's second example: strictly decreasing d")
    fig.suptitle("greedy parsing: split at the largest distance (ties → first); the split token "
                 "opens the right part", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    gates_figure(HERE / "on_lstm_gates.png")
    tree_figure(HERE / "on_lstm_tree.png")


if __name__ == "__main__":
    main()
