"""Benchmark of the sparse-attention twins (issue 3): speed, efficiency, memory, scaling, compile.

Run from the repository root::

    python benchmarks/sparse_attention.py            # table (a few minutes)
    python benchmarks/sparse_attention.py --json     # the same, then one JSON object
    python benchmarks/sparse_attention.py --quick    # T ≤ 4096 only, no subprocess checks

Measured in one run, on the current machine, for d = 64, H = 1, T ∈ {1024, 4096, 8192, 16384,
65536} (8192 added for the dense comparison), local (neighbors 64), atrous (rate 64) and sparse
(rate 64):

* forward and forward+backward time of (a) the dense masked oracle where it fits (forward up to
  T = 8192, forward+backward up to 4096), (b) the blocked NumPy forms of
  ``kexue_ref.sparse_attention`` (forward+backward up to 16384), (c) the numba twins in float64
  and float32, (d) torch SDPA with the boolean mask (float32, forward up to 16384) and torch
  ``flex_attention`` with the equivalent block mask (float32, forward only: torch has no CPU
  backward for it) when torch is importable;
* H = 8 at T = 16384 for the twins;
* the machine's dgemm (and sgemm) GFLOP/s, 2048³ with all threads, in the same run; each
  implementation's useful GFLOP/s, counting 4·d flops per allowed (query, key) pair only, and
  the twins' fraction of dgemm;
* forward+backward / forward; peak extra memory of the twins' forward+backward (tracemalloc:
  NumPy's allocations; and, at T = 65536, the growth of the resident set in a fresh process);
* the log-log slope of the twins' time against T from 4096 to 65536;
* the first call's compile time (fresh cache directory, fresh process) and a second process's
  time to its first result with that cache.

Times are medians of back-to-back repeats after one warm-up call (``docs/references.md``, "Memory reuse": freed memory
is slow to touch again on these machines, so repeats are not spaced out). Other work on the
machine makes every number noisier; ratios taken inside one run are the robust ones.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from autograd import make_vjp  # noqa: E402

from kexue_ref import sparse_attention as ref  # noqa: E402
from kexue_ref.kernels import sparse_attention as fast  # noqa: E402

D = 64
PARAM = 64                      # neighbors W for local, rate R for atrous and sparse
PATTERNS = ("local", "atrous", "sparse")
T_FULL = (1024, 4096, 8192, 16384, 65536)
T_QUICK = (1024, 4096)
LIMITS = {                      # largest T for each (implementation, mode)
    ("dense", "fwd"): 8192, ("dense", "fwdbwd"): 4096,
    ("blocked", "fwd"): 65536, ("blocked", "fwdbwd"): 16384,
    ("sdpa", "fwd"): 16384, ("sdpa", "fwdbwd"): 4096,
    ("flex", "fwd"): 65536,
}


# ---------------------------------------------------------------------------
# Counting and timing
# ---------------------------------------------------------------------------

def allowed_pairs(pattern, T, P):
    """Number of allowed (query, key) pairs, from the row counts of ``docs/sparse_attention.md``."""
    i = np.arange(T, dtype=np.int64)
    # local: min(i, W) + min(T − 1 − i, W) + 1
    local = np.minimum(i, P) + np.minimum(T - 1 - i, P) + 1
    # atrous: ⌊(T − 1 − (i mod R)) / R⌋ + 1
    atrous = (T - 1 - i % P) // P + 1
    if pattern == "local":
        return int(local.sum())
    if pattern == "atrous":
        return int(atrous.sum())
    # sparse = local(R) ∪ atrous(R); they share j = i and j = i ± R where those exist
    shared = 1 + (i - P >= 0) + (i + P <= T - 1)
    return int((local + atrous - shared).sum())


def median_time(fn, min_reps=3, max_reps=15, budget=1.5):
    """Median wall time of back-to-back calls after one warm-up call."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_gflops(dtype):
    """GEMM GFLOP/s of NumPy's BLAS on 2048³ with all its threads (median of 5)."""
    n = 2048
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    b = a.T.copy()
    c = np.empty_like(a)
    t = median_time(lambda: np.dot(a, b, out=c), min_reps=5, max_reps=5, budget=0)
    return 2 * n ** 3 / t / 1e9


def loglog_slope(ts, ys):
    """Least-squares slope of log y against log T."""
    return float(np.polyfit(np.log(ts), np.log(ys), 1)[0])


# ---------------------------------------------------------------------------
# The implementations, each as (forward, forward+backward) closures
# ---------------------------------------------------------------------------

def inputs(T, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v, u = (rng.standard_normal((1, H, T, D)).astype(dtype) for _ in range(4))
    return q, k, v, u


def autograd_pair(fn, q, k, v, u):
    """Forward, and forward + VJP (all three input gradients) through autograd."""
    def fwd():
        return fn(q, k, v, PARAM)

    def fwdbwd():
        vjp, _ = make_vjp(lambda x: fn(x[0], x[1], x[2], PARAM))((q, k, v))
        return vjp(u)
    return fwd, fwdbwd


def twin(pattern):
    return getattr(fast, f"{pattern}_attention")


def twin_direct_pair(pattern, q, k, v, u):
    """The twin's own forward and forward + VJP (its kernels and wrapper, no autograd tracing):
    autograd's bookkeeping for a tuple of inputs (zero tuples added per indexed input) costs
    about as much as the kernels themselves at T = 4096 and is not the twin's."""
    B, H, T, _ = q.shape
    ok = np.ones((B, T), dtype=bool)

    def fwd():
        return fast._forward(pattern, q, k, v, PARAM, False, ok)

    def fwdbwd():
        out, lse = fast._forward(pattern, q, k, v, PARAM, False, ok)
        return fast._backward(pattern, q, k, v, PARAM, False, ok, out, lse, u, None)
    return fwd, fwdbwd


def twin_kernel_fwd(pattern, q, k, v):
    """The twin's forward kernels writing into preallocated outputs: the compute alone, without
    the page faults of a fresh output array (≈ 10–17 ms per 32 MiB array on this machine)."""
    B, H, T, _ = q.shape
    ok = np.ones((B, T), dtype=bool)
    bufs = (np.empty((B * H, T, v.shape[3]), q.dtype), np.empty((B * H, T)),
            np.empty((B * H, T), dtype=bool))
    return lambda: fast._forward(pattern, q, k, v, PARAM, False, ok, buffers=bufs)


def dense(pattern):
    return getattr(ref, f"{pattern}_attention")


def blocked(pattern):
    return getattr(ref, f"{pattern}_attention_blocked")


def torch_available():
    try:
        import torch  # noqa: F401
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except Exception:
        return False
    return True


def torch_mask_mod(pattern):
    def local(b, h, qi, kj):
        return (qi - kj).abs() <= PARAM

    def atrous(b, h, qi, kj):
        return (qi - kj) % PARAM == 0

    def sparse(b, h, qi, kj):
        return ((qi - kj).abs() <= PARAM) | ((qi - kj) % PARAM == 0)
    return {"local": local, "atrous": atrous, "sparse": sparse}[pattern]


def torch_bool_mask(pattern, T):
    import torch
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    return torch_mask_mod(pattern)(None, None, i, j)


_FLEX = None


def torch_sdpa_pair(pattern, q, k, v, u):
    import torch
    import torch.nn.functional as F
    T = q.shape[2]
    tq, tk, tv, tu = (torch.from_numpy(x) for x in (q, k, v, u))
    mask = torch_bool_mask(pattern, T)

    def fwd():
        with torch.no_grad():
            return F.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask)

    def fwdbwd():
        a, b, c = (x.detach().requires_grad_() for x in (tq, tk, tv))
        out = F.scaled_dot_product_attention(a, b, c, attn_mask=mask)
        out.backward(tu)
        return a.grad, b.grad, c.grad
    return fwd, fwdbwd


def torch_flex_fwd(pattern, q, k, v):
    """torch.compile'd flex_attention with a block mask built by a compiled create_block_mask
    (no T² array)."""
    global _FLEX
    import torch
    import torch._dynamo
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    if _FLEX is None:
        # one compiled graph per (pattern, T): lift dynamo's default limit of 8 recompiles,
        # past which torch silently falls back to the unfused (T² memory) implementation
        for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                     "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 256)
        _FLEX = (torch.compile(flex_attention, dynamic=False), torch.compile(create_block_mask))
    B, H, T, _ = q.shape
    bm = _FLEX[1](torch_mask_mod(pattern), None, None, T, T, device="cpu")
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))

    def fwd():
        with torch.no_grad():
            return _FLEX[0](tq, tk, tv, block_mask=bm)
    # the first call compiles; a fallback to the unfused implementation would not be flex's
    # fused kernel, so it is refused rather than timed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fwd()
    if any("without torch.compile" in str(w.message) for w in caught):
        raise RuntimeError(f"flex_attention was not compiled for {pattern}, T={T}")
    return fwd


def agreement(have_torch, T=1024):
    """Max |Δ| of each implementation's forward against the dense float64 oracle, same inputs:
    every timed row computes the same attention (flex and SDPA run in float32)."""
    out = {}
    q, k, v, _ = inputs(T, 1, "float64")
    q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
    for pattern in PATTERNS:
        exact = dense(pattern)(q, k, v, PARAM)
        res = {"twin_float64": twin(pattern)(q, k, v, PARAM),
               "twin_float32": twin(pattern)(q32, k32, v32, PARAM),
               "blocked": blocked(pattern)(q, k, v, PARAM)}
        if have_torch:
            res["sdpa_float32"] = torch_sdpa_pair(pattern, q32, k32, v32, q32)[0]().numpy()
            res["flex_float32"] = torch_flex_fwd(pattern, q32, k32, v32)().numpy()
        out[pattern] = {name: float(np.max(np.abs(np.asarray(x, dtype=np.float64) - exact)))
                        for name, x in res.items()}
    return out


# ---------------------------------------------------------------------------
# Memory and compile time (subprocesses)
# ---------------------------------------------------------------------------

def peak_traced_mb(fn):
    """Peak of NumPy's traced allocations during fn(), in MB (numba's own block buffers are
    not traced; they are O(threads · block · (block + 2W)), well under 1 MB)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


_RSS_SCRIPT = r"""
import json, sys, numpy as np
sys.path.insert(0, {root!r})
from autograd import make_vjp
from kexue_ref.kernels import sparse_attention as fast
pattern, T, mode = {pattern!r}, {T}, {mode!r}
fn = getattr(fast, pattern + "_attention")
def run(q, k, v, u):
    if mode == "autograd":
        vjp, out = make_vjp(lambda x: fn(x[0], x[1], x[2], 64))((q, k, v))
        return out, vjp(u)
    ok = np.ones((q.shape[0], q.shape[2]), dtype=bool)
    out, lse = fast._forward(pattern, q, k, v, 64, False, ok)
    return out, fast._backward(pattern, q, k, v, 64, False, ok, out, lse, u, None)
run(*[np.ones((1, 1, 256, 64)) for _ in range(4)])              # load the cached kernels
rng = np.random.default_rng(0)
q, k, v, u = (rng.standard_normal((1, 1, T, 64)) for _ in range(4))
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
try:                     # reset the high-water mark to the current resident set (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
base = status("VmRSS:")
result = run(q, k, v, u)
peak = status("VmHWM:")  # peak of this process's own address space (ru_maxrss survives exec)
print(json.dumps({{"extra_mb": (peak - base) / 1e6}}))
"""


def peak_rss_extra_mb(pattern, T, mode="direct"):
    """Growth of the peak resident set of a fresh process over forward+backward at T (inputs
    and the compiled code already in memory), in MB; None where /proc is missing. ``mode``:
    "direct" (the twin's own forward + VJP: out, dq, dk, dv and its working memory) or
    "autograd" (through autograd with a tuple of inputs, which adds its own zero tuples)."""
    if not os.path.exists("/proc/self/status"):
        return None
    code = _RSS_SCRIPT.format(root=ROOT, pattern=pattern, T=T, mode=mode)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])["extra_mb"]


_COMPILE_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
from autograd import make_vjp
from kexue_ref.kernels import sparse_attention as fast
t_import = time.perf_counter()
rng = np.random.default_rng(0)
q, k, v, u = (rng.standard_normal((1, 1, 256, 64)) for _ in range(4))
out = fast.local_attention(q, k, v, 64)
t_fwd = time.perf_counter()
vjp, _ = make_vjp(lambda x: fast.local_attention(x[0], x[1], x[2], 64))((q, k, v)); vjp(u)
t_bwd = time.perf_counter()
for name in ("atrous_attention", "sparse_attention"):
    f = getattr(fast, name)
    vjp, _ = make_vjp(lambda x: f(x[0], x[1], x[2], 64))((q, k, v)); vjp(u)
t_all = time.perf_counter()
print(json.dumps({{"import_s": t_import - t0, "first_fwd_s": t_fwd - t_import,
                   "first_bwd_s": t_bwd - t_fwd, "to_first_result_s": t_fwd - t0,
                   "all_patterns_fwd_bwd_s": t_all - t0}}))
"""


def compile_times():
    """First process with an empty NUMBA_CACHE_DIR (compiles), then a second one (cached)."""
    with tempfile.TemporaryDirectory(prefix="kexue_numba_cache_") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = {}
        for label in ("first_process", "second_process"):
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT.format(root=ROOT)],
                                 capture_output=True, text=True, env=env, timeout=900)
            wall = time.perf_counter() - t
            if res.returncode != 0:
                out[label] = {"error": res.stderr[-2000:]}
                continue
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
            out[label]["process_wall_s"] = wall
        return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def run(quick=False, log=print):
    import numba
    res = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads(),
                       "python": platform.python_version(), "numpy": np.__version__,
                       "numba": numba.__version__},
           "config": {"d": D, "neighbors": PARAM, "rate": PARAM, "patterns": PATTERNS},
           "rows": []}
    have_torch = torch_available()
    if have_torch:
        import torch
        res["machine"]["torch"] = torch.__version__
        res["machine"]["torch_threads"] = torch.get_num_threads()
    log("measuring dgemm/sgemm (2048³, all threads) ...")
    res["dgemm_gflops"] = gemm_gflops(np.float64)
    res["sgemm_gflops"] = gemm_gflops(np.float32)
    log(f"dgemm {res['dgemm_gflops']:.1f} GFLOP/s, sgemm {res['sgemm_gflops']:.1f} GFLOP/s")
    Ts = T_QUICK if quick else T_FULL
    res["config"]["T"] = list(Ts)
    res["agreement_T1024"] = agreement(have_torch)
    log(f"agreement at T = 1024 (max |Δ| against the float64 oracle): {res['agreement_T1024']}")

    def add(pattern, T, H, impl, dtype, t_fwd, t_fb=None, peak_mb=None, direct=None, kernel=None):
        flops = 4 * D * allowed_pairs(pattern, T, PARAM) * H
        row = {"pattern": pattern, "T": T, "H": H, "impl": impl, "dtype": dtype,
               "fwd_s": t_fwd, "fwdbwd_s": t_fb,
               "useful_gflops_fwd": flops / t_fwd / 1e9 if t_fwd else None,
               "ratio_fwdbwd_fwd": t_fb / t_fwd if (t_fwd and t_fb) else None,
               "peak_traced_mb_fwdbwd": peak_mb}
        if direct:
            # the twin without autograd's tracing: its forward and forward + VJP alone
            row.update({"direct_fwd_s": direct[0], "direct_fwdbwd_s": direct[1],
                        "direct_ratio_fwdbwd_fwd": direct[1] / direct[0]})
        if kernel:
            # the forward kernels alone, into preallocated outputs
            row.update({"kernel_fwd_s": kernel, "kernel_useful_gflops_fwd": flops / kernel / 1e9})
        gemm = res["dgemm_gflops"] if dtype == "float64" else res["sgemm_gflops"]
        row["frac_of_gemm_fwd"] = row["useful_gflops_fwd"] / gemm if t_fwd else None
        res["rows"].append(row)
        fb = "" if t_fb is None else f" fwd+bwd {t_fb * 1e3:10.2f} ms ({t_fb / t_fwd:4.2f}x)"
        if direct:
            fb += f" [own: {direct[0] * 1e3:.2f} / {direct[1] * 1e3:.2f} ms, {direct[1] / direct[0]:4.2f}x]"
        if kernel:
            fb += f" [kernel fwd {kernel * 1e3:.2f} ms]"
        mem = "" if peak_mb is None else f" peak {peak_mb:7.1f} MB"
        log(f"{pattern:6s} T={T:6d} H={H} {impl:8s} {dtype:8s} fwd {t_fwd * 1e3:10.2f} ms "
            f"{row['useful_gflops_fwd']:7.2f} GFLOP/s ({row['frac_of_gemm_fwd']:.3f} of gemm){fb}{mem}")

    def within(impl, mode, T):
        return T <= LIMITS[(impl, mode)]

    for T in Ts:
        for pattern in PATTERNS:
            for dtype in ("float64", "float32"):
                q, k, v, u = inputs(T, 1, dtype)
                f, fb = autograd_pair(twin(pattern), q, k, v, u)
                t_f, t_fb = median_time(f), median_time(fb)
                df, dfb = twin_direct_pair(pattern, q, k, v, u)
                add(pattern, T, 1, "twin", dtype, t_f, t_fb, peak_traced_mb(fb),
                    direct=(median_time(df), median_time(dfb)),
                    kernel=median_time(twin_kernel_fwd(pattern, q, k, v)))
            q, k, v, u = inputs(T, 1, "float64")
            if within("blocked", "fwd", T):
                f, fb = autograd_pair(blocked(pattern), q, k, v, u)
                add(pattern, T, 1, "blocked", "float64", median_time(f, budget=3),
                    median_time(fb, budget=3) if within("blocked", "fwdbwd", T) else None)
            if within("dense", "fwd", T):
                f, fb = autograd_pair(dense(pattern), q, k, v, u)
                slow = T > 4096
                add(pattern, T, 1, "dense", "float64",
                    median_time(f, min_reps=2 if slow else 3, budget=0 if slow else 3),
                    median_time(fb, budget=3) if within("dense", "fwdbwd", T) else None)
            if have_torch:
                q32, k32, v32, u32 = inputs(T, 1, "float32")
                if within("sdpa", "fwd", T):
                    f, fb = torch_sdpa_pair(pattern, q32, k32, v32, u32)
                    add(pattern, T, 1, "sdpa", "float32", median_time(f, budget=3),
                        median_time(fb, budget=3) if within("sdpa", "fwdbwd", T) else None)
                if within("flex", "fwd", T) and (pattern == "local" or T <= 16384):
                    add(pattern, T, 1, "flex", "float32", median_time(torch_flex_fwd(pattern, q32, k32, v32)))
    if not quick:
        T = 16384
        for pattern in PATTERNS:
            q, k, v, u = inputs(T, 8, "float64")
            f, fb = autograd_pair(twin(pattern), q, k, v, u)
            df, dfb = twin_direct_pair(pattern, q, k, v, u)
            add(pattern, T, 8, "twin", "float64", median_time(f), median_time(fb),
                direct=(median_time(df), median_time(dfb)))
        if have_torch:
            q32, k32, v32, _ = inputs(T, 8, "float32")
            add("local", T, 8, "flex", "float32", median_time(torch_flex_fwd("local", q32, k32, v32)))

    # log-log slopes of the twins' time from 4096 to 65536
    res["slopes"] = {}
    for pattern in PATTERNS:
        for dtype in ("float64", "float32"):
            rows = [r for r in res["rows"] if r["impl"] == "twin" and r["pattern"] == pattern
                    and r["dtype"] == dtype and r["H"] == 1 and r["T"] >= 4096]
            if len(rows) >= 2:
                Tv = [r["T"] for r in rows]
                pairs = [allowed_pairs(pattern, t, PARAM) for t in Tv]
                res["slopes"][f"{pattern}/{dtype}"] = {
                    "T": Tv,
                    # time against T (the wording; atrous(64) and sparse(64) do
                    # O(T²/R) work, so their slope against T is near 2 by construction)
                    "fwd": loglog_slope(Tv, [r["fwd_s"] for r in rows]),
                    "fwdbwd": loglog_slope(Tv, [r["direct_fwdbwd_s"] for r in rows]),
                    # time against the work, the allowed pairs (= against T for local)
                    "fwd_vs_pairs": loglog_slope(pairs, [r["fwd_s"] for r in rows]),
                    "fwdbwd_vs_pairs": loglog_slope(pairs, [r["direct_fwdbwd_s"] for r in rows]),
                    # the forward kernels alone (preallocated outputs: no page faults)
                    "kernel_fwd": loglog_slope(Tv, [r["kernel_fwd_s"] for r in rows]),
                    "kernel_fwd_vs_pairs": loglog_slope(pairs, [r["kernel_fwd_s"] for r in rows])}
    if not quick:
        log("peak resident-set growth of forward+backward at T = 65536 (fresh processes) ...")
        res["rss_extra_mb_T65536"] = {p: peak_rss_extra_mb(p, 65536) for p in PATTERNS}
        res["rss_extra_mb_T65536_autograd"] = {p: peak_rss_extra_mb(p, 65536, "autograd")
                                               for p in PATTERNS}
        res["array_mb_T65536"] = 65536 * D * 8 / 1e6   # one (T, d) float64 array: q, out, dq, …
        log("compile time (empty cache) and a second process (cached) ...")
        res["compile"] = compile_times()
    res["targets"] = targets(res)
    return res


def _row(res, **kw):
    for r in res["rows"]:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def targets(res):
    """The issue's targets, each with the measured value and whether it is met."""
    out = []

    def target(name, value, op, threshold):
        if value is None:
            out.append({"target": name, "value": None, "threshold": threshold, "met": None})
            return
        met = value >= threshold if op == ">=" else value <= threshold
        out.append({"target": name, "value": value, "threshold": f"{op} {threshold}", "met": bool(met)})

    tw = _row(res, impl="twin", pattern="local", T=16384, H=1, dtype="float64")
    target("local(64) float64 T=16384: twin forward useful GFLOP/s / dgemm",
           tw and tw["frac_of_gemm_fwd"], ">=", 0.40)
    target("local(64) float64 T=16384: forward+backward / forward (the twin's own, no autograd)",
           tw and tw["direct_ratio_fwdbwd_fwd"], "<=", 3.0)
    target("local(64) float64 T=16384: forward+backward / forward (through autograd, tuple input)",
           tw and tw["ratio_fwdbwd_fwd"], "<=", 3.0)
    for pattern in PATTERNS:
        r = _row(res, impl="twin", pattern=pattern, T=16384, H=1, dtype="float64")
        if pattern != "local" and r:
            target(f"{pattern}(64) float64 T=16384: forward+backward / forward (twin's own)",
                   r["direct_ratio_fwdbwd_fwd"], "<=", 3.0)
    t32 = _row(res, impl="twin", pattern="local", T=16384, H=1, dtype="float32")
    fx = _row(res, impl="flex", pattern="local", T=16384, H=1)
    target("local(64) float32 T=16384: flex_attention time / twin time (twin at least as fast)",
           (fx["fwd_s"] / t32["fwd_s"]) if (fx and t32) else None, ">=", 1.0)
    for pattern in PATTERNS:
        tw8 = _row(res, impl="twin", pattern=pattern, T=8192, H=1, dtype="float64")
        dn = _row(res, impl="dense", pattern=pattern, T=8192)
        target(f"{pattern}(64) T=8192: dense oracle forward / twin forward (float64)",
               (dn["fwd_s"] / tw8["fwd_s"]) if (dn and tw8) else None, ">=", 100.0)
        sd = _row(res, impl="sdpa", pattern=pattern, T=16384)
        for dt in ("float64", "float32"):
            tw16 = _row(res, impl="twin", pattern=pattern, T=16384, H=1, dtype=dt)
            target(f"{pattern}(64) T=16384: torch SDPA float32 forward / twin {dt} forward",
                   (sd["fwd_s"] / tw16["fwd_s"]) if (sd and tw16) else None, ">=", 30.0)
    for key, s in res.get("slopes", {}).items():
        if s["T"][-1] >= 65536:
            if key.startswith("local"):
                target(f"{key}: log-log slope of forward time vs T, 4096..65536", s["fwd"], "<=", 1.05)
                target(f"{key}: log-log slope of forward+backward time vs T, 4096..65536",
                       s["fwdbwd"], "<=", 1.05)
            else:
                target(f"{key}: log-log slope of forward time vs allowed pairs (∝ T²/R), 4096..65536",
                       s["fwd_vs_pairs"], "<=", 1.05)
                target(f"{key}: log-log slope of forward+backward time vs allowed pairs, 4096..65536",
                       s["fwdbwd_vs_pairs"], "<=", 1.05)
    for pattern, mb in res.get("rss_extra_mb_T65536", {}).items():
        target(f"{pattern}(64) T=65536: peak extra memory of forward+backward, MB (resident set, "
               f"twin's own: out, dq, dk, dv are 4 × {res['array_mb_T65536']:.1f})", mb, "<=", 200.0)
    for pattern, mb in res.get("rss_extra_mb_T65536_autograd", {}).items():
        target(f"{pattern}(64) T=65536: the same through autograd with a tuple input, MB",
               mb, "<=", 200.0)
    comp = res.get("compile", {})
    first = comp.get("first_process", {})
    second = comp.get("second_process", {})
    target("first call (local forward) compile time, s", first.get("first_fwd_s"), "<=", 30.0)
    target("first local forward+backward (both kernels compiled), s",
           (first["first_fwd_s"] + first["first_bwd_s"]) if "first_bwd_s" in first else None, "<=", 30.0)
    target("second process, cached: start to first result (in-process), s",
           second.get("to_first_result_s"), "<=", 3.0)
    target("second process, cached: whole process wall time incl. interpreter start, s",
           second.get("process_wall_s"), "<=", 3.0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--quick", action="store_true", help="T <= 4096, no subprocess checks")
    args = ap.parse_args(argv)
    res = run(quick=args.quick, log=lambda s: print(s, file=sys.stderr if args.json else sys.stdout,
                                                    flush=True))
    for key, s in res["slopes"].items():
        print(f"slope {key} (T = {s['T']}): vs T forward {s['fwd']:.3f}, forward+backward "
              f"{s['fwdbwd']:.3f}, forward kernels alone {s['kernel_fwd']:.3f}; vs allowed pairs "
              f"forward {s['fwd_vs_pairs']:.3f}, forward+backward {s['fwdbwd_vs_pairs']:.3f}",
              file=sys.stderr if args.json else sys.stdout)
    if "compile" in res:
        print(f"compile: {json.dumps(res['compile'])}", file=sys.stderr if args.json else sys.stdout)
    print("targets:", file=sys.stderr if args.json else sys.stdout)
    for t in res["targets"]:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        val = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        print(f"  [{mark}] {t['target']}: {val} ({t['threshold']})",
              file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
