"""Draw the smooth approximations of post 6620 against their hard versions.

Run from the repository root: ``python docs/figures/make_smoothing_figures.py``
(needs the ``plots`` extra, matplotlib). Writes ``docs/figures/smoothing.png``.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kexue_ref import smoothing as sm  # noqa: E402

OUT = Path(__file__).resolve().parent / "smoothing.png"


def main():
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    t = np.linspace(-3, 3, 401)

    # 1. max(t, 0.5) and its smooth versions (1/K) LSE(K t, K 0.5)
    ax = axes[0, 0]
    pair = np.stack([t, np.full_like(t, 0.5)], axis=-1)
    ax.plot(t, pair.max(-1), "k", lw=2, label="max(t, 0.5)")
    for K in (1, 3, 10):
        ax.plot(t, sm.smooth_max(pair, scale=K), label=f"smooth_max, K={K}")
    ax.set_title("max → (1/K)·logsumexp(K x)")
    ax.legend(fontsize=8)

    # 2. |t| and relu(t) with their smooth versions
    ax = axes[0, 1]
    ax.plot(t, np.abs(t), "k", lw=2, label="|t|")
    ax.plot(t, np.maximum(t, 0), "k--", lw=2, label="relu(t)")
    for K in (1, 4):
        ax.plot(t, sm.smooth_abs(t, scale=K), label=f"smooth_abs, K={K}")
        ax.plot(t, sm.soft_relu(t, scale=K), ":", label=f"soft_relu (derived), K={K}")
    ax.set_title("|x| and relu(x) (post 3290; soft ReLU derived)")
    ax.legend(fontsize=8)

    # 3. soft argmax of the post's x as K grows (base=1 as in the post)
    ax = axes[1, 0]
    x = np.array([2.0, 1.0, 4.0, 5.0, 3.0])
    Ks = np.logspace(-2, 1.5, 200)
    ax.semilogx(Ks, [float(sm.soft_argmax(x, scale=K, base=1)) for K in Ks], label="soft_argmax, base=1")
    ax.axhline(4, color="k", lw=2, label="argmax (1-based) = 4")
    ax.axhline(3, color="gray", ls="--", label="mean position (K → 0) = 3")
    ax.plot([1], [3.73364], "o", color="C3", label="the post's 3.7336 at K = 1")
    ax.set_xlabel("K")
    ax.set_title("argmax([2, 1, 4, 5, 3]) ≈ Σ i·softmax(Kx)_i")
    ax.legend(fontsize=8)

    # 4. soft-k-max (k = 2) of the post's x across τ, and the counterexample > 1
    ax = axes[1, 1]
    taus = np.logspace(-2, 1, 200)
    p = np.array([sm.soft_kmax(x / tau, 2) for tau in taus])
    for i in range(5):
        ax.semilogx(taus, p[:, i], label=f"p_{i} (x_{i} = {x[i]:g})")
    c = sm.soft_kmax(np.array([4.5, 2.8, 2.3]), 2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_title(f"soft-k-max(x/τ, k=2)\n([4.5, 2.8, 2.3] gives p_0 = {c[0]:.4f} > 1)", fontsize=10)
    ax.set_xlabel("τ")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
