"""Figures of docs/dgcnn.md, generated from the library (run from the repository root).

    python docs/figures/make_dgcnn_figures.py

Writes into docs/figures/:

* dgcnn_pipeline.png       the extractor's data flow, boxes laid out from a table below (shapes
                           in the legend letters, the code's sizes in brackets);
* dgcnn_receptive_field.png which outputs change when one input character is perturbed, for the
                           12-block and the 6-block stacks (computed with ``dgcnn_stack``);
* dgcnn_decoding.png       hand-built start/end probabilities of a sentence and the spans the
                           decoders read from them (``decode_subjects``, ``decode_objects``).
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt                                          # noqa: E402
import numpy as np                                                       # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch           # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from kexue_ref import dgcnn as dg                                        # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# (key, x, y, text, colour): the nodes of the pipeline, in data coordinates
NODES = [
    ("tok", 1.0, 9.0, "tokens (B, T)\nchar ids, 0 = pad", "#dde8f5"),
    ("wv", 4.4, 9.0, "word vectors (B, T, Dw)\nfrozen word2vec, per char", "#dde8f5"),
    ("pos", 8.4, 9.0, "position emb. E (maxlen, D)\nzero-initialised, shared", "#dde8f5"),
    ("emb", 4.4, 7.8, "X = E_char[tok] + V W_word + E[t]\n(Dropout 0.25) ⊙ mask", "#f4f4f4"),
    ("enc", 4.4, 6.5, "DGCNN stack, 12 blocks r = 1,2,5,1,2,5,1,2,5,1,1,1 (light: 6)\n"
                      "Y = X⊙(1−σ) + Conv₁(X)⊙σ, then ⊙ mask  →  H (B, T, D)", "#fde9c9"),
    ("pn", 0.3, 5.1, "pn1, pn2 (B, T)\nsigmoid(relu(HW)W)", "#e7f4e4"),
    ("att1", 2.9, 5.1, "Attention₁(H)\n8 × 16, key mask", "#efe3f6"),
    ("pc", 6.7, 5.1, "pc (B, P)\ngate of max_t H", "#e7f4e4"),
    ("att2", 9.4, 5.1, "Attention₂(H)\n8 × 16, key mask", "#efe3f6"),
    ("sh", 1.6, 3.6, "[H | A₁] → Conv3, relu\nps1, ps2 = sigmoid(·)·pn", "#fbe0e0"),
    ("span", 1.6, 2.0, "decode subjects: start > 0.5,\nnearest end > 0.4 → (k1, k2)", "#f4f4f4"),
    ("sf", 5.6, 2.0, "H at 6 points of (k1, k2), end → start\nBiGRU (code) / BiLSTM (post)\n"
                     "+ [E|t−k1| | E|t−k2|] (shared E) → S", "#fde9c9"),
    ("oh", 8.7, 0.6, "[H | A₂ | S] → Conv3, relu\npo1, po2 = po·sigmoid(·)·pc·pn\n(B, T, P)", "#fbe0e0"),
    ("obj", 8.7, -0.9, "decode objects per predicate\n→ (s, p, o) triples, set P/R/F1", "#f4f4f4"),
]
EDGES = [("tok", "emb"), ("wv", "emb"), ("pos", "emb"), ("emb", "enc"), ("enc", "pn"), ("enc", "att1"),
         ("enc", "att2"), ("enc", "pc"), ("att1", "sh"), ("pn", "sh"), ("sh", "span"), ("span", "sf"),
         ("enc", "sf"), ("att2", "oh"), ("sf", "oh"), ("pc", "oh"), ("oh", "obj")]


def pipeline(path):
    fig, ax = plt.subplots(figsize=(10.5, 8.2))
    pos = {}
    for key, x, y, text, colour in NODES:
        w = 0.072 * max(len(line) for line in text.split("\n")) + 0.3
        h = 0.34 * (text.count("\n") + 1) + 0.2
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=colour,
                                    ec="#555555", lw=0.8))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.2)
        pos[key] = (x, y, w, h)
    for a, b in EDGES:
        xa, ya, wa, ha = pos[a]
        xb, yb, wb, hb = pos[b]
        start = (xa, ya - ha / 2) if ya - yb > (ha + hb) / 2 else (xa + np.sign(xb - xa) * wa / 2, ya)
        end = (xb, yb + hb / 2) if ya - yb > (ha + hb) / 2 else (xb - np.sign(xb - xa) * wb / 2, yb)
        rad = 0.0
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color="#444444", lw=0.8,
                                     connectionstyle=f"arc3,rad={rad}"))
    ax.text(1.9, -0.6, "training: one sampled subject\nspan (k1, k2) per sentence;\n"
                      "loss = BCE(s1)+BCE(s2)+Σ_P BCE(o1)+Σ_P BCE(o2)", fontsize=8, ha="center", va="center",
            bbox=dict(boxstyle="round", fc="white", ec="#999999"))
    ax.set_xlim(-0.9, 10.9)
    ax.set_ylim(-1.5, 9.6)
    ax.axis("off")
    ax.set_title("DGCNN + probabilistic-graph extraction (kexue.fm/archives/6671), as in kexue_ref.dgcnn",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def receptive_field(path):
    rng = np.random.default_rng(6671)
    T, t0, D = 81, 40, 2
    fig, axes = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True)
    for ax, dil, name in zip(axes, (dg.STACK_12, dg.STACK_6), ("12 blocks", "6 blocks (light)")):
        L = len(dil)
        w, b = rng.normal(size=(L, 3, D, 2 * D)) * 0.4, rng.normal(size=(L, 2 * D)) * 0.1
        x = rng.normal(size=(1, T, D))
        x2 = x.copy()
        x2[0, t0] += 1.0
        diff = np.abs(dg.dgcnn_stack(x2, None, w, b, dilations=dil) - dg.dgcnn_stack(x, None, w, b, dilations=dil))
        change = diff.max(axis=-1)[0]
        ax.bar(np.arange(T), np.log10(np.maximum(change, 1e-17)) + 17, width=0.9,
               color=np.where(change > 0, "#d9822b", "#cccccc"))
        half = (dg.receptive_field(dil) - 1) // 2
        ax.axvspan(t0 - half - 0.5, t0 + half + 0.5, color="#3b6ea8", alpha=0.12)
        ax.set_ylabel("log₁₀|Δy| + 17", fontsize=8)
        ax.set_title(f"{name}: outputs changed by perturbing x_{t0}: t ∈ [{t0 - half}, {t0 + half}], "
                     f"receptive field {dg.receptive_field(dil)}", fontsize=9)
    axes[-1].set_xlabel("output position t")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def decoding(path):
    text = "XY fans sang AB and wrote CD."
    T = len(text)
    ps1, ps2 = np.full(T, 0.03), np.full(T, 0.03)
    ps1[0], ps2[6], ps2[1] = 0.93, 0.81, 0.2
    po1, po2 = np.full((T, 3), 0.03), np.full((T, 3), 0.03)
    po1[13, 0], po2[14, 0] = 0.9, 0.7
    po1[26, 1], po2[27, 1] = 0.8, 0.6
    po1[0, 2], po2[1, 2] = 0.7, 0.9
    subj = dg.decode_subjects(ps1, ps2)
    objs = dg.decode_objects(po1, po2)
    names = ["sang", "wrote", "fan club of"]
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True)
    axes[0].bar(np.arange(T) - 0.2, ps1, 0.4, label="ps1 (start)", color="#3b6ea8")
    axes[0].bar(np.arange(T) + 0.2, ps2, 0.4, label="ps2 (end)", color="#d9822b")
    axes[0].axhline(0.5, color="#3b6ea8", ls="--", lw=0.7)
    axes[0].axhline(0.4, color="#d9822b", ls=":", lw=0.7)
    for i, j in subj:
        axes[0].annotate("", (j + 0.3, 1.02), (i - 0.3, 1.02), arrowprops=dict(arrowstyle="<->", color="k"))
        axes[0].text((i + j) / 2, 1.07, f"s = '{text[i:j + 1]}'", ha="center", fontsize=8)
    axes[0].set_ylim(0, 1.2)
    axes[0].legend(fontsize=7, loc="center right")
    axes[0].set_title("subject heads: start > 0.5, then the nearest end > 0.4", fontsize=9)
    colours = ["#3b6ea8", "#d9822b", "#4a9a4a"]
    for c in range(3):
        axes[1].bar(np.arange(T) + (c - 1) * 0.25, po1[:, c], 0.25, color=colours[c], label=f"po1[:, {names[c]}]")
        axes[1].bar(np.arange(T) + (c - 1) * 0.25, -po2[:, c], 0.25, color=colours[c], alpha=0.5)
    for i, j, c in objs:
        axes[1].text((i + j) / 2, 1.0, f"({names[c]}, '{text[i:j + 1]}')", ha="center", fontsize=7.5,
                     color=colours[c])
    axes[1].set_ylim(-1.05, 1.2)
    axes[1].set_ylabel("po1 up, po2 down", fontsize=8)
    axes[1].legend(fontsize=7, loc="lower center", ncol=3)
    axes[1].set_title("object heads given s: per predicate, first end of the same class (o may lie inside s)",
                      fontsize=9)
    axes[1].set_xticks(np.arange(T))
    axes[1].set_xticklabels(list(text), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    pipeline(os.path.join(HERE, "dgcnn_pipeline.png"))
    receptive_field(os.path.join(HERE, "dgcnn_receptive_field.png"))
    decoding(os.path.join(HERE, "dgcnn_decoding.png"))
    print("wrote dgcnn_pipeline.png, dgcnn_receptive_field.png, dgcnn_decoding.png")
