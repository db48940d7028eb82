r"""Mutation run: plant realistic bugs in the library, one at a time, and see whether the tests notice.

Usage (from the repository root, in the project's environment)::

    python tests/mutation_run.py                 # every mutation, one after the other
    python tests/mutation_run.py --jobs 2        # two mutants at a time
    python tests/mutation_run.py --only 'numerics.*' --only 'kernels.*'
    python tests/mutation_run.py --list          # the mutations, their files and test selections

Each mutation is a :class:`Mutation` record: an exact ``old`` snippet of one library file (it
must occur exactly once, or the run stops before doing anything: a mutation that matches
nothing would silently test nothing), the ``new`` snippet that replaces it, the realistic bug
it models, and the pytest selection that should catch it (a tuple of pytest invocations, each
a tuple of arguments: paths, ``-k`` expressions).

For each mutation the working tree is copied to a temporary folder (everything but ``.git``,
virtual environments, caches and ``*.egg-info``; ``tables/`` is kept), the snippet is replaced
there, and

1. ``python -c 'import kexue_ref, <mutated module>'`` runs in the copy with ``PYTHONPATH`` set
   to it; it must import the copy's ``kexue_ref`` (checked through ``kexue_ref.__file__``: the
   editable install of the checkout must not be what is tested), and a mutant that does not
   import is **BROKEN**;
2. each invocation runs as ``python -m pytest -q -x -p no:cacheprovider <selection>`` with the
   copy as working directory and ``PYTHONPATH``, until one fails.

Verdicts: **CAUGHT** (some test failed), **NOT CAUGHT** (every selected test passed), or
**BROKEN** (the mutant does not import, pytest could not collect the selection, selected no
test, or ran past the timeout). BROKEN never counts as caught: a mutation must keep the code
importable, so that only the tests' judgement decides. Before the mutants, every distinct
invocation runs once on an unmutated copy (the baseline); a mutation whose selection already
fails there is BROKEN too, since a failure would then say nothing about the mutation.

The last line is "N caught, M not caught, K broken of T mutations"; the exit status is 0 only
when every mutation is caught (1 otherwise, 2 for a usage or set-up error).

The selections are the tests that judge the mathematics: the topic's own tests, the generic
registry tests of the topic (finite-difference gradient checks of the reference), the
framework ports of the topic and the module's doctests. The table drift guard
(``tests/test_tables.py::test_committed_tables_verify``) is left out of the oracle's
selections on purpose: it fails for *any* change of the reference's numbers, right or wrong,
so it would catch every mutation without saying whether a bug present when the tables were
generated could be found. See ``docs/contributing.md``, "Mutation run".

This file is a script, not a test module (pytest collects only ``test_*.py``); it does
nothing on import.
"""
import argparse
import dataclasses
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: the repository root: this file lives in <root>/tests/
ROOT = Path(__file__).resolve().parents[1]

#: folder and file names never copied into a mutant's tree
_SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache",
               ".tox", ".nox", "venv", ".venv", ".eggs"}


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One planted bug.

    id : a short name, "<area>.<what>", matched by ``--only``.
    file : the library file, relative to the repository root.
    old : an exact snippet that occurs exactly once in ``file``.
    new : what replaces it (the mutant must still import).
    bug : one line: the realistic mistake it models.
    tests : the pytest invocations that should catch it, each a tuple of arguments.
    """

    id: str
    file: str
    old: str
    new: str
    bug: str
    tests: tuple


# ---------------------------------------------------------------------------
# The selections: per topic, the tests that judge the mathematics
# ---------------------------------------------------------------------------

def _topic(name, module, *extra):
    """The topic's own tests (and ``tests/test_mutations_<topic>.py`` when there is one), its
    framework ports and the module's doctests; then the registry's generic tests of the topic."""
    # the framework ports of the topic (torch, jax), each an independent candidate
    ports = (ROOT / "tests" / "frameworks").glob(f"test_{name}*.py")
    frameworks = sorted(str(p.relative_to(ROOT)) for p in ports)
    # tests written for mutations that nothing else caught
    added = [f"tests/test_mutations_{name}.py"]
    added = [a for a in added if (ROOT / a).exists()]
    first = (f"tests/test_{name}.py", *added, *extra, *frameworks, module)
    return (first, ("tests/test_registry.py", "-k", name))


NUMERICS = _topic("numerics", "kexue_ref/_numerics.py")
SMOOTHING = _topic("smoothing", "kexue_ref/smoothing")
ON_LSTM = _topic("on_lstm", "kexue_ref/on_lstm")
ORTHO = _topic("orthogonality", "kexue_ref/orthogonality")
REPARAM = _topic("reparam", "kexue_ref/reparam")
SPARSE = _topic("sparse_attention", "kexue_ref/sparse_attention", "tests/test_masks.py")
MASKS = (("tests/test_masks.py", "kexue_ref/_masks.py", "tests/test_sparse_attention.py",
          *SPARSE[0][2:]), SPARSE[1])
DGCNN = _topic("dgcnn", "kexue_ref/dgcnn")
KERNELS = (("tests/test_kernels.py",),)
GRADCHECK = (("tests/test_gradcheck.py", "kexue_ref/testing/gradcheck.py"),)
CHECK = (("tests/test_check_rules.py", "tests/test_check_api.py"),)
TABLES = (("tests/test_tables.py",),)
CERTIFY = (("tests/certify/test_core.py",),)


# ---------------------------------------------------------------------------
# The mutations
# ---------------------------------------------------------------------------

MUTATIONS = (
    # --- kexue_ref/_numerics.py --------------------------------------------------------------
    Mutation(
        "numerics.lse-max-counted-twice", "kexue_ref/_numerics.py",
        "    rest = np.sum(np.where(first, zero, np.exp(z)), axis=axis, keepdims=True)\n",
        "    rest = np.sum(np.exp(z), axis=axis, keepdims=True)\n",
        "log-sum-exp as x_k + log1p(Σ_j e^{x_j − x_k}) without leaving out the maximum (its e^0 = 1 "
        "counted twice)", NUMERICS),
    Mutation(
        "numerics.softmax-vjp-sign", "kexue_ref/_numerics.py",
        "    return ans * (rest * g - other)\n",
        "    return ans * (other - rest * g)\n",
        "softmax VJP with the sign flipped (P ⊙ (<g, P> − g))", NUMERICS),
    Mutation(
        "numerics.global-max-shift", "kexue_ref/_numerics.py",
        "    m = onp.max(getval(x), axis=axis, keepdims=True)\n    return onp.where(",
        "    m = onp.max(getval(x))\n    return onp.where(",
        "softmax shifted by the global maximum instead of each slice's (rows far below it underflow)",
        NUMERICS),
    Mutation(
        "numerics.sigmoid-vjp", "kexue_ref/_numerics.py",
        "defvjp(_sigmoid, lambda ans, x: lambda g: g * _sigmoid(x) * _sigmoid(-x))",
        "defvjp(_sigmoid, lambda ans, x: lambda g: g * _sigmoid(x) * _sigmoid(x))",
        "sigmoid derivative written σ(x)·σ(x) instead of σ(x)·σ(−x)", NUMERICS),
    Mutation(
        "numerics.sech2-constant", "kexue_ref/_numerics.py",
        "    return 4 * e / (1 + e) ** 2\n",
        "    return 2 * e / (1 + e) ** 2\n",
        "sech² x = 4e^{−2|x|}/(1 + e^{−2|x|})² with the 4 written as 2", NUMERICS),
    Mutation(
        "numerics.softplus-vjp-mirror", "kexue_ref/_numerics.py",
        "defvjp(_softplus, lambda ans, x: lambda g: g * _sigmoid(x))",
        "defvjp(_softplus, lambda ans, x: lambda g: g * _sigmoid(-x))",
        "d softplus/dx taken as σ(−x) instead of σ(x)", NUMERICS),

    # --- kexue_ref/smoothing.py --------------------------------------------------------------
    Mutation(
        "smoothing.smooth-min-sign", "kexue_ref/smoothing/maxima.py",
        "    return -nx._logsumexp(-k * x, axis) / k\n",
        "    return nx._logsumexp(-k * x, axis) / k\n",
        "smooth min = −LSE(−Kx)/K with the outer minus dropped", SMOOTHING),
    Mutation(
        "smoothing.soft-argmax-vjp-sign", "kexue_ref/smoothing/argmax.py",
        "    return np.moveaxis(A - C, -1, axis)\n",
        "    return np.moveaxis(C - A, -1, axis)\n",
        "Σ_j P_j (i − j) computed as Σ_j P_j (j − i): the soft-argmax gradient with the wrong sign",
        SMOOTHING),
    Mutation(
        "smoothing.f1-factor-2", "kexue_ref/smoothing/metrics.py",
        "    f1 = 2 * tp / _denominator(ap + pp, eps, \"Σ t + Σ p\")\n",
        "    f1 = tp / _denominator(ap + pp, eps, \"Σ t + Σ p\")\n",
        "smooth F1 without the 2 of 2TP/(2TP + FP + FN)", SMOOTHING),
    Mutation(
        "smoothing.share-vjp-copy-paste", "kexue_ref/smoothing/metrics.py",
        "       lambda ans, a, r: lambda g: -g * a / (a + r) ** 2)\n",
        "       lambda ans, a, r: lambda g: -g * r / (a + r) ** 2)\n",
        "∂/∂r of a/(a + r) copied from ∂/∂a (−r/(a + r)² instead of −a/(a + r)²)", SMOOTHING),
    Mutation(
        "smoothing.soft-kmax-no-min-shift", "kexue_ref/smoothing/maxima.py",
        "    x = x - np.min(x, axis=axis, keepdims=True)\n",
        "    x = x + 0\n",
        "soft-k-max without the x ← x − min(x) step (negative scores then grow when masked)",
        SMOOTHING),

    # --- kexue_ref/on_lstm.py ----------------------------------------------------------------
    Mutation(
        "on_lstm.master-input-direction", "kexue_ref/on_lstm/gates.py",
        "    suffix = _cumulative(nx._softmax(a_i, a_i.ndim - 1)[..., ::-1])[..., ::-1]\n",
        "    suffix = _cumulative(nx._softmax(a_i, a_i.ndim - 1))\n",
        "master input gate as cs→ (like the forget gate) instead of the reversed cumulative sum",
        ON_LSTM),
    Mutation(
        "on_lstm.update-copy-paste", "kexue_ref/on_lstm/update.py",
        "(f_master - omega) * c_prev + (i_master - omega) * c_hat\n",
        "(f_master - omega) * c_prev + (i_master - omega) * c_prev\n",
        "cell update: the (ĩ − ω) term multiplies c_{t−1} instead of ĉ_t (copy-paste)", ON_LSTM),
    Mutation(
        "on_lstm.soft-level-off-by-one", "kexue_ref/on_lstm/distance.py",
        "    k = (onp.arange(L) + base).astype(value_of(f_master).dtype)\n",
        "    k = (onp.arange(1, L + 1) + base).astype(value_of(f_master).dtype)\n",
        "soft level Σ_k (k + base) p_k with k counted from 1 (base applied twice)", ON_LSTM),
    Mutation(
        "on_lstm.tree-split-offset", "kexue_ref/on_lstm/trees.py",
        "    k = lo + int(onp.argmax(d[lo:hi]))\n",
        "    k = int(onp.argmax(d[lo:hi]))\n",
        "greedy tree split at argmax of a slice without adding the slice's start", ON_LSTM),
    Mutation(
        "on_lstm.distance-sum-not-mean", "kexue_ref/on_lstm/gates.py",
        "    return f_master, suffix, np.mean(f_rest, axis=-1)\n",
        "    return f_master, suffix, np.sum(f_rest, axis=-1)\n",
        "syntactic distance 1 − f̃ summed over the levels instead of averaged", ON_LSTM),

    # --- kexue_ref/orthogonality.py ----------------------------------------------------------
    Mutation(
        "orthogonality.angle-missing-2", "kexue_ref/orthogonality/lemma.py",
        "    return 2 * np.arctan2(2 * cos, sin2) / onp.pi\n",
        "    return 2 * np.arctan2(cos, sin2) / onp.pi\n",
        "atan2(cos θ, sin θ) fed 2 sin θ without doubling cos θ", ORTHO),
    Mutation(
        "orthogonality.som-soft-term-not-squared", "kexue_ref/orthogonality/som.py",
        "    return lam1 * total ** 2 + lam2 * squares\n",
        "    return lam1 * total + lam2 * squares\n",
        "SOM penalty λ₁ (Σ Θ_ij)² written λ₁ Σ Θ_ij", ORTHO),
    Mutation(
        "orthogonality.som-norm-axis", "kexue_ref/orthogonality/som.py",
        "    norm = np.sqrt(np.sum(t ** 2, axis=0) + eps ** 2)",
        "    norm = np.sqrt(np.sum(t ** 2, axis=-1, keepdims=True) + eps ** 2)",
        "tanh features normalised per sample (rows) instead of per filter over the batch", ORTHO),
    Mutation(
        "orthogonality.biggan-factor", "kexue_ref/orthogonality/penalties.py",
        "    delta = 2 * strength * np.dot(wm, a)",
        "    delta = 4 * strength * np.dot(wm, a)",
        "BigGAN's ortho increment with the true gradient's 4 instead of BigGAN's 2", ORTHO),
    Mutation(
        "orthogonality.sign-of-zero", "kexue_ref/orthogonality/lemma.py",
        "    s = onp.where(y > 0, 1, -1).astype(y.dtype)",
        "    s = onp.where(y >= 0, 1, -1).astype(y.dtype)",
        "sign estimator with sgn(0) = +1 instead of the documented −1", ORTHO),

    # --- kexue_ref/reparam.py ----------------------------------------------------------------
    Mutation(
        "reparam.straight-through-no-stop-gradient", "kexue_ref/reparam/gumbel.py",
        "    return y_hard + (y_soft - nx.stop_gradient(y_soft))\n",
        "    return y_hard + (y_soft - y_soft)\n",
        "straight-through Gumbel-Softmax without stop_gradient (the gradient becomes 0)", REPARAM),
    Mutation(
        "reparam.loo-baseline-divisor", "kexue_ref/reparam/estimators.py",
        "        b = (np.sum(f) - f) / (S - 1)\n",
        "        b = (np.sum(f) - f) / S\n",
        "leave-one-out baseline averaged over S instead of S − 1 samples", REPARAM),
    Mutation(
        "reparam.concrete-density-constant", "kexue_ref/reparam/concrete.py",
        "(math.lgamma(K), (K - 1) * math.log(t))",
        "(math.lgamma(K), K * math.log(t))",
        "Concrete log-density with K log τ instead of (K − 1) log τ", REPARAM),
    Mutation(
        "reparam.normal-score-missing-term", "kexue_ref/reparam/estimators.py",
        "    d_sigma = fb * (eps * eps - 1) / sigma\n",
        "    d_sigma = fb * (eps * eps) / sigma\n",
        "score of σ written ε²/σ instead of (ε² − 1)/σ", REPARAM),
    Mutation(
        "reparam.keras-gumbel-inner-eps", "kexue_ref/reparam/noise.py",
        "        inner = -np.log(u + e) + e\n",
        "        inner = -np.log(u + e)\n",
        "Keras-style Gumbel noise −log(−log(u + ε) + ε) without the inner + ε", REPARAM),

    # --- kexue_ref/sparse_attention.py -------------------------------------------------------
    Mutation(
        "sparse_attention.scale-1-over-d", "kexue_ref/sparse_attention/dense.py",
        "    S = np.matmul(q, _T(k)) / nx._const(onp.sqrt(D), q)",
        "    S = np.matmul(q, _T(k)) / nx._const(D, q)",
        "scores scaled by 1/D instead of 1/√D", SPARSE),
    Mutation(
        "sparse_attention.blocked-double-count", "kexue_ref/sparse_attention/blocked.py",
        "_atrous_groups(q, k, v, R, causal, m, min_gap=2, with_lse=True)",
        "_atrous_groups(q, k, v, R, causal, m, min_gap=1, with_lse=True)",
        "blocked sparse attention counts the key at distance R in both parts", SPARSE),
    Mutation(
        "sparse_attention.blocked-causal-transposed", "kexue_ref/sparse_attention/blocked.py",
        "        A = A & (n[None, :] <= n[:, None])\n",
        "        A = A & (n[:, None] <= n[None, :])\n",
        "blocked atrous attention with the causal triangle transposed (attends to the future)",
        SPARSE),
    Mutation(
        "sparse_attention.query-mask-ignored", "kexue_ref/sparse_attention/dense.py",
        "    return np.where(qm[:, None, :, None], O, nx._const(0.0, O))\n",
        "    return O\n",
        "rows of masked queries left as computed instead of 0", SPARSE),
    Mutation(
        "sparse_attention.blocked-causal-self", "kexue_ref/sparse_attention/blocked.py",
        "    near = (onp.abs(dist) <= W) & ((dist >= 0) if causal else True)\n",
        "    near = (onp.abs(dist) <= W) & ((dist > 0) if causal else True)\n",
        "blocked local attention: the causal window leaves out the query itself (i − j > 0)", SPARSE),

    # --- kexue_ref/_masks.py -----------------------------------------------------------------
    Mutation(
        "masks.local-window-strict", "kexue_ref/_masks.py",
        "    allowed = onp.abs(i - j) <= W\n",
        "    allowed = onp.abs(i - j) < W\n",
        "local window |i − j| < W: the neighbours at distance W left out (off by one)", MASKS),
    Mutation(
        "masks.atrous-causal-strict", "kexue_ref/_masks.py",
        "    allowed = (i - j) % R == 0\n    return allowed & (j <= i) if causal else allowed\n",
        "    allowed = (i - j) % R == 0\n    return allowed & (j < i) if causal else allowed\n",
        "causal atrous pattern j < i: a query no longer attends to itself", MASKS),

    # --- kexue_ref/dgcnn/ --------------------------------------------------------------------
    Mutation(
        "dgcnn.shift-adjoint", "kexue_ref/dgcnn/conv.py",
        "defvjp(_shift_time, lambda ans, x, s: lambda g: _shift_time(g, -s))",
        "defvjp(_shift_time, lambda ans, x, s: lambda g: _shift_time(g, s))",
        "the adjoint of a time shift by s taken as the same shift (should be −s)", DGCNN),
    Mutation(
        "dgcnn.same-padding-without-dilation", "kexue_ref/dgcnn/conv.py",
        "    left = (k - 1) * r // 2\n",
        "    left = (k - 1) // 2\n",
        "'same' padding of a dilated convolution computed without the dilation", DGCNN),
    Mutation(
        "dgcnn.gate-swapped", "kexue_ref/dgcnn/conv.py",
        "        y = x * s_neg + c * s\n",
        "        y = x * s + c * s_neg\n",
        "post gate Y = X(1 − σ) + Conv(X)σ with σ and 1 − σ exchanged", DGCNN),
    Mutation(
        "dgcnn.masked-mean-over-padding", "kexue_ref/dgcnn/losses.py",
        "    return np.sum(ell * m) / onp.sum(m)\n",
        "    return np.mean(ell * m)\n",
        "masked BCE averaged over every position, padding included", DGCNN),
    Mutation(
        "dgcnn.maxpool-padding-zero", "kexue_ref/dgcnn/heads.py",
        "    hm = np.max(np.where(mask[..., None], h, onp.asarray(-onp.inf, dt)), axis=1)",
        "    hm = np.max(h * mask[..., None], axis=1)",
        "masked max-pool by multiplying with the mask (a padding 0 beats negative features)", DGCNN),
    Mutation(
        "dgcnn.relative-distance-no-abs", "kexue_ref/dgcnn/features.py",
        "onp.abs(t - k2a[:, None])], axis=-1)",
        "(t - k2a[:, None])], axis=-1)",
        "distance to the subject end without |·| (negative indices wrap around the table)", DGCNN),

    # --- kexue_ref/kernels/ (numba twins; they compile on first use) -------------------------
    Mutation(
        "kernels.group-block-offset", "kexue_ref/kernels/_sparse_attention_kernels.py",
        "                    _group_ranges(p0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)\n"
        "                    _fwd_block(",
        "                    _group_ranges(0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)\n"
        "                    _fwd_block(",
        "forward group path: the key ranges of a second query block computed as for the first "
        "(only groups longer than one block, T > 64·R)", KERNELS),
    Mutation(
        "kernels.group-block-offset-bwd", "kexue_ref/kernels/_sparse_attention_kernels.py",
        "                        _group_ranges(p0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)\n"
        "                        # dq rows",
        "                        _group_ranges(0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)\n"
        "                        # dq rows",
        "backward group path: the same block-offset slip, gradients only (T > 64·R)", KERNELS),
    Mutation(
        "kernels.local-window-off-by-one", "kexue_ref/kernels/_sparse_attention_kernels.py",
        "        hi1[r] = (i + 1 if causal else min(j1, i + W + 1)) - j0\n",
        "        hi1[r] = (i + 1 if causal else min(j1, i + W)) - j0\n",
        "twin's local window ends at i + W − 1 (exclusive bound off by one)", KERNELS),
    Mutation(
        "kernels.group-causal-self", "kexue_ref/kernels/_sparse_attention_kernels.py",
        "        hi = p + 1 if causal else n\n",
        "        hi = p if causal else n\n",
        "twin's causal group range stops before the query itself", KERNELS),

    # --- kexue_ref/testing/gradcheck.py ------------------------------------------------------
    Mutation(
        "gradcheck.zero-cotangent", "kexue_ref/testing/gradcheck.py",
        "onp.where(masks[i], rng.standard_normal(masks[i].shape), 0.0)",
        "onp.where(masks[i], 0.0, rng.standard_normal(masks[i].shape))",
        "np.where arguments swapped: the cotangent is zero where the output is finite", GRADCHECK),
    Mutation(
        "gradcheck.order-2-skipped", "kexue_ref/testing/gradcheck.py",
        "    if order > 1:\n",
        "    if order > 2:\n",
        "the VJP-of-VJP check never runs (order 2 behaves like order 1)", GRADCHECK),
    Mutation(
        "gradcheck.loose-default", "kexue_ref/testing/gradcheck.py",
        "def check_grads(fun, args, rng, order=2, rtol=1e-9,",
        "def check_grads(fun, args, rng, order=2, rtol=1e-5,",
        "the old default rtol = 1e-5, which lets a VJP 1e-6 relative wrong pass", GRADCHECK),
    Mutation(
        "gradcheck.richardson-factor", "kexue_ref/testing/gradcheck.py",
        "        fac = _CON ** 2\n",
        "        fac = _CON\n",
        "Richardson table with factor 2 instead of 4 for central differences (t² error kept)",
        GRADCHECK),

    # --- kexue_ref/testing/_check.py (compare and the pass rules) ----------------------------
    Mutation(
        "check.imaginary-dropped", "kexue_ref/testing/_compare.py",
        "        diff = onp.abs(a - e)\n",
        "        diff = onp.abs(a.real - e.real)\n",
        "compare measures only the real parts of complex values", CHECK),
    Mutation(
        "check.nan-passes", "kexue_ref/testing/_compare.py",
        "        diff = onp.where(onp.isnan(diff), onp.inf, diff)\n",
        "",
        "a NaN difference compares False with the tolerance, so NaN passes", CHECK),
    Mutation(
        "check.dtype-kind-only", "kexue_ref/testing/_run.py",
        "        return \"\" if got == want else f\"{want}\"\n",
        "        return \"\" if got.startswith(\"float\") else f\"{want}\"\n",
        "the dtype rule checks the kind only (float64 passes a float32 check)", CHECK),
    Mutation(
        "check.any-exception-refuses", "kexue_ref/testing/_run.py",
        "            problem = control.problem() if control is not None else \"\"\n",
        "            problem = \"\"\n",
        "an error case passes on any exception, even when the candidate raises on valid input too", CHECK),

    # --- kexue_ref/tables.py (verify) --------------------------------------------------------
    Mutation(
        "tables.verify-skips-grads", "kexue_ref/tables.py",
        "    for key in [k for k in fresh if k in stored]:\n",
        "    for key in [k for k in fresh if k in stored and member_kind(k) != \"grad\"]:\n",
        "verify compares the outputs but not the gradient members", TABLES),
    Mutation(
        "tables.verify-tolerance-x100", "kexue_ref/tables.py",
        "    if onp.any(diff > atol):\n",
        "    if onp.any(diff > 100 * atol):\n",
        "verify allows 100× the recorded tolerance", TABLES),

    # --- kexue_ref/certify/__init__.py -------------------------------------------------------
    Mutation(
        "certify.pass-rule-and", "kexue_ref/certify/__init__.py",
        "            ok = u <= ulps_bound or e <= eps_scale_bound\n",
        "            ok = u <= ulps_bound and e <= eps_scale_bound\n",
        "certifier pass rule needs both bounds instead of either", CERTIFY),
    Mutation(
        "certify.infinity-sign", "kexue_ref/certify/__init__.py",
        "            ok = (math.isinf(s) and math.isinf(tf) and (s > 0) == (tf > 0))\n",
        "            ok = (math.isinf(s) and math.isinf(tf))\n",
        "an infinity passes against the opposite infinity", CERTIFY),
)


# ---------------------------------------------------------------------------
# Running one selection in a copy of the tree
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """The verdict on one mutation (or one baseline selection)."""

    status: str          # "CAUGHT", "NOT CAUGHT" or "BROKEN"
    detail: str
    seconds: float


def _ignore(folder, names):
    """shutil.copytree's filter: skip VCS data, virtual environments, caches and build metadata."""
    skipped = []
    for name in names:
        path = Path(folder) / name
        if name in _SKIP_NAMES or name.endswith(".egg-info") or name.endswith(".pyc"):
            skipped.append(name)
        elif path.is_dir() and (path / "pyvenv.cfg").exists():
            # any virtual environment, whatever its name
            skipped.append(name)
    return skipped


def copy_tree(dest):
    """Copy the working tree (as it is now, uncommitted edits included) to ``dest``."""
    shutil.copytree(ROOT, dest, ignore=_ignore, symlinks=True)


def apply(mutation, tree):
    """Replace the mutation's snippet in ``tree``; ValueError unless it occurs exactly once."""
    path = Path(tree) / mutation.file
    text = path.read_text(encoding="utf-8")
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(f"{mutation.id}: the old snippet occurs {count} times in {mutation.file} "
                         f"(must be exactly once):\n{mutation.old}")
    path.write_text(text.replace(mutation.old, mutation.new, 1), encoding="utf-8")


def _module_of(file):
    """``kexue_ref/dgcnn/conv.py`` → ``kexue_ref.dgcnn.conv`` (``__init__`` names the package)."""
    parts = list(Path(file).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _env(tree):
    """The child's environment: the copy alone on PYTHONPATH, no bytecode written."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# processes started by this script that are still running (killed by group on Ctrl-C)
_RUNNING = set()
_LOCK = threading.Lock()


def _run(cmd, tree, timeout):
    """Run ``cmd`` in ``tree``; (returncode or None on timeout, combined output)."""
    proc = subprocess.Popen(cmd, cwd=tree, env=_env(tree), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _LOCK:
        _RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        # end the child and whatever it started (its own process group), nothing else
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out
    finally:
        with _LOCK:
            _RUNNING.discard(proc)


class SetupError(RuntimeError):
    """The run cannot be trusted (the copy's package is not the one imported)."""


def import_check(tree, module, timeout):
    """Import ``module`` from the copy; '' when it imports from there, else why not."""
    code = ("import importlib, kexue_ref; importlib.import_module(%r); print('FILE=' + kexue_ref.__file__)"
            % module)
    rc, out = _run([sys.executable, "-c", code], tree, timeout)
    if rc is None:
        return f"importing {module} ran past {timeout:.0f} s"
    if rc != 0:
        last = [line for line in out.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        return f"{module} does not import: {last[0]}"
    files = [line[5:] for line in out.splitlines() if line.startswith("FILE=")]
    expected = Path(tree).resolve() / "kexue_ref" / "__init__.py"
    if not files or Path(files[-1]).resolve() != expected:
        raise SetupError(f"the child imported kexue_ref from {files[-1] if files else '?'}, not from "
                         f"the copy {expected}: PYTHONPATH does not take precedence here")
    return ""


def _first_failure(out):
    """The first 'FAILED …' or 'ERROR …' line of pytest's short summary, shortened."""
    for line in out.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line if len(line) <= 160 else line[:157] + "..."
    lines = [line for line in out.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_selection(tree, invocations, timeout):
    """Run each pytest invocation in ``tree`` until one fails: an Outcome (CAUGHT = some failed)."""
    start = time.monotonic()
    for inv in invocations:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return Outcome("BROKEN", f"ran past the timeout of {timeout:.0f} s", time.monotonic() - start)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *inv]
        rc, out = _run(cmd, tree, left)
        label = " ".join(inv)
        if rc is None:
            return Outcome("BROKEN", f"ran past the timeout of {timeout:.0f} s in: {label}",
                           time.monotonic() - start)
        if rc == 1:
            return Outcome("CAUGHT", _first_failure(out), time.monotonic() - start)
        if rc == 5:
            return Outcome("BROKEN", f"selects no test: {label}", time.monotonic() - start)
        if rc != 0:
            # 2: collection error / interrupted, 3: internal error, 4: usage error
            return Outcome("BROKEN", f"pytest exit {rc} (collection or usage error) in: {label}: "
                                     f"{_first_failure(out)}", time.monotonic() - start)
    return Outcome("NOT CAUGHT", f"{len(invocations)} selection(s) passed", time.monotonic() - start)


def run_mutation(mutation, workdir, timeout, baseline):
    """Copy the tree, plant the mutation, import-check it and run its selection."""
    start = time.monotonic()
    failing = [inv for inv in mutation.tests if baseline.get(inv) is not None]
    if failing:
        # a failure would say nothing about the mutation
        return Outcome("BROKEN", f"the unmutated tree already fails {' '.join(failing[0])}: "
                                 f"{baseline[failing[0]]}", 0.0)
    tree = Path(tempfile.mkdtemp(prefix=mutation.id.replace("/", "_") + "-", dir=workdir))
    try:
        copy_tree(tree / "repo")
        repo = tree / "repo"
        apply(mutation, repo)
        why = import_check(repo, _module_of(mutation.file), timeout)
        if why:
            return Outcome("BROKEN", why, time.monotonic() - start)
        outcome = run_selection(repo, mutation.tests, timeout - (time.monotonic() - start))
        outcome.seconds = time.monotonic() - start
        return outcome
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def run_baseline(invocations, workdir, timeout, jobs, log):
    """Each distinct invocation once on an unmutated copy: {invocation: None if it passes, else why}."""
    result = {}

    def one(inv):
        tree = Path(tempfile.mkdtemp(prefix="baseline-", dir=workdir))
        try:
            copy_tree(tree / "repo")
            import_check(tree / "repo", "kexue_ref", timeout)
            o = run_selection(tree / "repo", (inv,), timeout)
            return inv, o
        finally:
            shutil.rmtree(tree, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for inv, o in pool.map(one, invocations):
            ok = o.status == "NOT CAUGHT"
            result[inv] = None if ok else f"{o.status}: {o.detail}"
            log(f"baseline {'ok    ' if ok else 'FAILS '} {o.seconds:6.1f}s  {' '.join(inv)}"
                + ("" if ok else f"  -- {o.detail}"))
    return result


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def select(patterns):
    """The mutations whose id matches any of the globs (all when none is given)."""
    if not patterns:
        return list(MUTATIONS)
    chosen = [m for m in MUTATIONS if any(fnmatch.fnmatchcase(m.id, p) for p in patterns)]
    return chosen


def validate(mutations):
    """Problems that make the run meaningless: duplicate ids, snippets not found exactly once."""
    problems = []
    seen = set()
    for m in mutations:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        if m.old == m.new:
            problems.append(f"{m.id}: old and new snippets are the same")
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.id}: no file {m.file}")
            continue
        count = path.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            problems.append(f"{m.id}: the old snippet occurs {count} times in {m.file} (must be once)")
        for inv in m.tests:
            for arg in inv:
                if not arg.startswith("-") and "/" in arg and not (ROOT / arg.split("::")[0]).exists():
                    problems.append(f"{m.id}: selection path {arg} does not exist")
    return problems


def main(argv=None):
    """Parse the arguments, run the selected mutations, print one line each and the summary."""
    parser = argparse.ArgumentParser(
        prog="python tests/mutation_run.py",
        description="Apply realistic mutations to kexue_ref one at a time (in a copy of the tree) "
                    "and report whether the relevant tests catch each.")
    parser.add_argument("--only", action="append", metavar="ID_GLOB",
                        help="run only mutations whose id matches this glob (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed per mutation, all its selections together (default 300)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip running the selections on the unmutated tree first")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if not args.timeout > 0:
        parser.error(f"--timeout must be > 0, got {args.timeout}")
    mutations = select(args.only)
    if not mutations:
        print(f"no mutation id matches {args.only}", file=sys.stderr)
        return 2
    problems = validate(mutations)
    if problems:
        print("mutation table is out of date with the code; nothing was run:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 2
    if args.list:
        for m in mutations:
            print(f"{m.id}\n    file:  {m.file}\n    bug:   {m.bug}")
            for inv in m.tests:
                print(f"    tests: {' '.join(inv)}")
        print(f"{len(mutations)} mutations")
        return 0

    def log(line):
        print(line, flush=True)

    width = max(len(m.id) for m in mutations)
    counts = {"CAUGHT": 0, "NOT CAUGHT": 0, "BROKEN": 0}
    with tempfile.TemporaryDirectory(prefix="kexue-mutants-") as workdir:
        try:
            baseline = {}
            if not args.no_baseline:
                invocations = list(dict.fromkeys(inv for m in mutations for inv in m.tests))
                baseline = run_baseline(invocations, workdir, args.timeout, args.jobs, log)
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                futures = [(m, pool.submit(run_mutation, m, workdir, args.timeout, baseline))
                           for m in mutations]
                for m, fut in futures:
                    o = fut.result()
                    counts[o.status] += 1
                    log(f"{o.status:<10}  {m.id:<{width}}  {o.seconds:6.1f}s  {o.detail}")
        except SetupError as exc:
            print(f"set-up error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            with _LOCK:
                for proc in list(_RUNNING):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            raise
    total = len(mutations)
    print(f"{counts['CAUGHT']} caught, {counts['NOT CAUGHT']} not caught, {counts['BROKEN']} broken "
          f"of {total} mutations")
    return 0 if counts["CAUGHT"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
