"""Draw Gumbel-Softmax samples across τ and the gradient estimators' variance against S (post 6705).

Run from the repository root: ``python docs/figures/make_reparam_figures.py`` (needs
matplotlib). Writes ``docs/figures/reparam_gumbel_softmax.png`` and
``docs/figures/reparam_estimators.png``. All noise comes from fixed ``numpy.random.Generator``
seeds, so the figures are reproducible.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kexue_ref import reparam as rp  # noqa: E402

HERE = Path(__file__).resolve().parent


def _ternary(y):
    """Barycentric (y₁, y₂, y₃) → the plane: vertices (0, 0), (1, 0), (½, √3/2)."""
    return y[..., 1] + y[..., 2] / 2, y[..., 2] * np.sqrt(3) / 2


def gumbel_softmax_figure():
    p = np.array([0.2, 0.3, 0.5])
    o = np.log(p)
    g = rp.sample_gumbel(np.random.default_rng(6705), (1500, 3))      # the same noise for every τ
    big = rp.sample_gumbel(np.random.default_rng(6706), (200_000, 3))
    taus = (5.0, 1.0, 0.5, 0.1)
    fig, axes = plt.subplots(1, len(taus), figsize=(4 * len(taus), 4))
    corners = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 0]])
    for ax, tau in zip(axes, taus):
        y = rp.gumbel_softmax(o, g, tau)
        hard = rp.gumbel_max(o, g)
        ax.plot(corners[:, 0], corners[:, 1], "k", lw=1)
        for k in range(3):
            x1, x2 = _ternary(y[hard == k])
            ax.scatter(x1, x2, s=3, alpha=0.4, color=f"C{k}", label=f"argmax(o + g) = {k}")
        m = rp.gumbel_softmax(o, big, tau).mean(0)
        ax.plot(*_ternary(m), "k*", ms=14, label="E[ỹ] (S = 2·10⁵)")
        ax.plot(*_ternary(p), "wo", mec="k", ms=8, label="p")
        ax.set_title(f"τ = {tau:g}: E[ỹ] = [{m[0]:.3f}, {m[1]:.3f}, {m[2]:.3f}]", fontsize=10)
        ax.set_aspect("equal")
        ax.axis("off")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Gumbel-Softmax ỹ = softmax((log p + g)/τ), p = [0.2, 0.3, 0.5], 1500 samples "
                 "(colour: the Gumbel-Max category of the same noise)")
    fig.tight_layout()
    fig.savefig(HERE / "reparam_gumbel_softmax.png", dpi=110)
    plt.close(fig)


def _spread(est, R, S, exact):
    """Mean squared error over R repetitions of the S-sample mean estimate (summed over coordinates)."""
    means = est.reshape(R, S, -1).mean(1)
    return float(((means - exact) ** 2).sum(-1).mean())


def estimators_figure():
    R = 10_000
    sizes = 2 ** np.arange(0, 9)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))

    # (a) The post's example: ∂_μ E[z²] at μ = 1, σ = 2 (exact value 2).
    rng = np.random.default_rng(61)
    mu, sigma = 1.0, 2.0
    curves = {"score function": [], "score function, leave-one-out baseline": [], "pathwise (reparam)": []}
    for S in sizes:
        eps = rp.sample_normal(rng, (R, S))
        z = rp.normal_reparam(np.array(mu), np.array(sigma), eps)
        sf = rp.normal_score_function_grad(z.ravel() ** 2, np.array(sigma), eps.ravel())[0]
        curves["score function"].append(_spread(sf, R, S, 2.0))
        if S > 1:
            loo = np.concatenate([rp.normal_score_function_grad(z[r] ** 2, np.array(sigma), eps[r],
                                                                baseline="loo")[0] for r in range(R)])
            curves["score function, leave-one-out baseline"].append(_spread(loo, R, S, 2.0))
        else:
            curves["score function, leave-one-out baseline"].append(np.nan)
        pw = rp.normal_pathwise_grad(2 * z.ravel(), eps.ravel())[0]
        curves["pathwise (reparam)"].append(_spread(pw, R, S, 2.0))
    ax = axes[0]
    for (name, v), c in zip(curves.items(), ("C0", "C2", "C1")):
        ax.loglog(sizes, v, "o-", color=c, label=name)
    ax.loglog(sizes, 74.25 / sizes, "--", color="C0", lw=1, label="74.25 / S")
    ax.loglog(sizes, 16 / sizes, "--", color="C1", lw=1, label="16 / S")
    ax.set_xlabel("samples S per estimate")
    ax.set_ylabel(f"variance of the S-sample mean ({R} repetitions)")
    ax.set_title("∂/∂μ E[z²], z ~ N(1, 2²): the post's example", fontsize=10)
    ax.legend(fontsize=8)

    # (b) One categorical variable: ∇_o E[f(y)], p = [.1, .2, .3, .4], f = [1, −2, 3, 0.5] + 5.
    rng = np.random.default_rng(62)
    o, f = np.log([0.1, 0.2, 0.3, 0.4]), np.array([1.0, -2.0, 3.0, 0.5]) + 5.0
    exact = rp.categorical_exact_grad(o, f)
    curves = {"score function": [], "score function, leave-one-out baseline": [],
              "Gumbel-Softmax pathwise, τ = 1": [], "Gumbel-Softmax pathwise, τ = 0.3": []}
    for S in sizes:
        g = rp.sample_gumbel(rng, (R * S, 4))
        curves["score function"].append(_spread(rp.categorical_score_function_grad(o, f, g), R, S, exact))
        if S > 1:
            gr = g.reshape(R, S, 4)
            loo = np.concatenate([rp.categorical_score_function_grad(o, f, gr[r], baseline="loo")
                                  for r in range(R)])
            curves["score function, leave-one-out baseline"].append(_spread(loo, R, S, exact))
        else:
            curves["score function, leave-one-out baseline"].append(np.nan)
        for tau in (1.0, 0.3):
            est = rp.gumbel_softmax_pathwise_grad(o, g, f, tau)
            curves[f"Gumbel-Softmax pathwise, τ = {tau:g}"].append(_spread(est, R, S, exact))
    ax = axes[1]
    for (name, v), c in zip(curves.items(), ("C0", "C2", "C3", "C4")):
        ax.loglog(sizes, v, "o-", color=c, label=name)
    ax.set_xlabel("samples S per estimate")
    ax.set_ylabel("mean squared error vs the exact gradient")
    ax.set_title("∇_o E[f(y)], y ~ softmax(o): Gumbel-Softmax is biased (plateau = bias²)",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "reparam_estimators.png", dpi=110)
    plt.close(fig)


def main():
    gumbel_softmax_figure()
    estimators_figure()


if __name__ == "__main__":
    main()
