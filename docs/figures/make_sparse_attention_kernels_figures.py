"""Figure of docs/sparse_attention_kernels.md: the benchmark's times against T, log-log.

Reads ``benchmarks/results/sparse_attention.json`` (written by
``python benchmarks/sparse_attention.py --json``) and writes
``docs/figures/sparse_attention_kernels_benchmark.png``. Run from the repository root::

    python docs/figures/make_sparse_attention_kernels_figures.py
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "sparse_attention.json")
OUT = os.path.join(ROOT, "docs", "figures", "sparse_attention_kernels_benchmark.png")

SERIES = [  # (label, impl, dtype, key, style)
    ("twin float64, forward", "twin", "float64", "fwd_s", dict(color="C0", marker="o")),
    ("twin float64, forward + backward", "twin", "float64", "direct_fwdbwd_s",
     dict(color="C0", marker="o", linestyle="--")),
    ("twin float32, forward", "twin", "float32", "fwd_s", dict(color="C1", marker="s")),
    ("flex_attention float32, forward", "flex", "float32", "fwd_s", dict(color="C2", marker="^")),
    ("blocked NumPy float64, forward", "blocked", "float64", "fwd_s", dict(color="C4", marker="D")),
    ("torch SDPA + bool mask float32, forward", "sdpa", "float32", "fwd_s", dict(color="C3", marker="v")),
    ("dense oracle float64, forward", "dense", "float64", "fwd_s", dict(color="k", marker="x")),
]


def main():
    with open(RESULTS) as f:
        res = json.load(f)
    patterns = res["config"]["patterns"]
    fig, axes = plt.subplots(1, len(patterns), figsize=(5 * len(patterns), 4.2), sharey=True)
    for ax, pattern in zip(axes, patterns):
        for label, impl, dtype, key, style in SERIES:
            pts = sorted((r["T"], r[key]) for r in res["rows"]
                         if r["impl"] == impl and r["dtype"] == dtype and r["pattern"] == pattern
                         and r["H"] == 1 and r.get(key))
            if pts:
                ax.loglog([p[0] for p in pts], [1e3 * p[1] for p in pts], label=label, **style)
        ax.set_title(f"{pattern}(64), d = 64, H = 1")
        ax.set_xlabel("T")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time (ms)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"benchmarks/sparse_attention.py on {res['machine']['cpu_count']} cores "
                 f"(dgemm {res['dgemm_gflops']:.0f} GFLOP/s in the same run)", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
