"""Draw the SOM estimates Θ (sign and tanh) against the exact ϑ = 1 − 2θ/π of post 7169.

Run from the repository root: ``python docs/figures/make_orthogonality_figures.py``
(needs matplotlib). Writes ``docs/figures/orthogonality.png``.

Random kernels: M = 40 filters in D = 8 dimensions, w_i = c_i·u + z_i with c_i spread over
[−3, 3], so the angles cover (0, π) instead of crowding at π/2. Samples: B = 2048 isotropic
Gaussian rows. Each filter is scaled to unit norm, so y = xᵀw_i ~ N(0, 1) and γ measures
the sharpness of tanh against the scale of the activations.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kexue_ref import orthogonality as og  # noqa: E402

OUT = Path(__file__).resolve().parent / "orthogonality.png"


def kernels(rng, D=8, M=40):
    u = rng.standard_normal(D)
    w = np.linspace(-3, 3, M)[None, :] * u[:, None] + rng.standard_normal((D, M))
    return w / np.linalg.norm(w, axis=0)


def main():
    rng = np.random.default_rng(7169)
    w = kernels(rng)
    x = rng.standard_normal((2048, w.shape[0]))
    pairs = np.triu_indices(w.shape[1], 1)
    exact = og.angle_gram(w)[pairs]
    grid = np.linspace(-1, 1, 201)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    ax = axes[0]
    ax.plot(grid, grid, "k", lw=1.5, label="exact ϑ = 1 − 2θ/π")
    ax.plot(exact, og.sign_gram(x, w)[pairs], ".", ms=3, label="sign estimator SᵀS/B")
    ax.plot(exact, og.som_gram(x, w, gamma=10.0)[pairs], "x", ms=3, alpha=0.7, label="SOM Θ, tanh, γ = 10")
    ax.set_title("B = 2048 samples: sign and tanh(10·) both estimate ϑ")
    ax.set_xlabel("exact 1 − 2θ_ij/π (angle_gram)")
    ax.set_ylabel("estimate from the batch")
    ax.legend(fontsize=8)

    ax = axes[1]
    ax.plot(grid, grid, "k", lw=1.5, label="γ → ∞: 1 − 2θ/π")
    ax.plot(grid, np.sin(np.pi * grid / 2), "k--", lw=1.5, label="γ → 0: cos θ (correlation of y)")
    for gamma, marker in [(3.0, "."), (1.0, "+"), (0.1, "x")]:
        ax.plot(exact, og.som_gram(x, w, gamma=gamma)[pairs], marker, ms=3, label=f"SOM Θ, γ = {gamma:g}")
    ax.set_title("tanh is not scale invariant: small γ·|y| drifts to cos θ")
    ax.set_xlabel("exact 1 − 2θ_ij/π (angle_gram)")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlim(-1.02, 1.02)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
