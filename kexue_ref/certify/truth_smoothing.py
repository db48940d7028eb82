r"""Multiprecision truth for function smoothing (ops ``smoothing.*``, post 6620).

Post: Su Jianlin, "Random talk on function smoothing: differentiable approximations of
non-differentiable functions", https://kexue.fm/archives/6620; supporting posts
https://kexue.fm/archives/3290 (smooth maximum and absolute value) and
https://kexue.fm/archives/10373 (the soft-k-max re-quoted). Conventions: ``docs/smoothing.md``.

Every function writes the post's formula in ``mpmath`` at the certifier's working precision,
with the post's constant K (``scale``) multiplying the scores exactly (the stored ``scale`` is
converted to ``mpf`` without rounding):

* max(x) ≈ (1/K) log Σ e^{K x_i};  min(x) ≈ −(1/K) log Σ e^{−K x_i};
* onehot(argmax x) ≈ softmax(K x);  argmax(x) ≈ Σ_i (i + base) softmax(K x)_i;
* accuracy ≈ (1/B) Σ_b p_{b, y_b};  F1 ≈ 2 Σ t p / (Σ t + Σ p + ε), precision and recall alike;
* the soft-k-max recursion p ← p + softmax((1 − p) ⊙ (x − min x)), k times;
* |x| ≈ (1/K) log(e^{Kx} + e^{−Kx});  relu(x) ≈ (1/K) log(1 + e^{Kx}).

``−inf`` scores have no mass (D4 of ``docs/conventions.md``): an all ``−inf`` slice gives a
smooth max of ``−inf``, a soft one-hot of 0 and a soft argmax of 0, all with gradient 0.
The slice helpers are those of :mod:`kexue_ref.certify.truth_numerics` (mpmath, not the oracle).
"""
import numpy as onp

from kexue_ref.certify import _mp
from kexue_ref.certify import truth_numerics as tn

__all__ = ["smooth_max", "smooth_min", "soft_onehot", "soft_argmax", "smooth_accuracy",
           "smooth_f1", "smooth_precision", "smooth_recall", "soft_kmax", "smooth_abs",
           "soft_relu", "TRUTH", "GRADS", "BOUNDS"]


def _mpmath():
    import mpmath
    return mpmath


def _K(scale):
    """The post's constant K as an exact mpf."""
    return _mpmath().mpf(float(scale))


def _times(a, c):
    """c·a elementwise for an object array a and an mpf c (−inf·K stays −inf for K > 0)."""
    return _mp.ew(lambda v: c * v, a)


# ---------------------------------------------------------------------------
# Smooth max / min / one-hot / argmax
# ---------------------------------------------------------------------------

def smooth_max(x, scale=1.0, axis=-1):
    r"""Smooth maximum.

    .. math:: \max(x) \approx \frac{1}{K}\log\sum_i e^{K x_i}

    Shapes: ``x`` (..., n, ...) → ``x`` without ``axis``. An all ``−inf`` slice gives ``−inf``.
    Source: https://kexue.fm/archives/6620 ("max → logsumexp"); https://kexue.fm/archives/3290.
    """
    K = _K(scale)
    return _times(tn.logsumexp(_times(x, K), axis), 1 / K)


def smooth_min(x, scale=1.0, axis=-1):
    r"""Smooth minimum.

    .. math:: \min(x) \approx -\frac{1}{K}\log\sum_i e^{-K x_i}

    Shapes: as :func:`smooth_max`; ``+inf`` entries carry no mass.
    Source: https://kexue.fm/archives/6620 (min(x) = −max(−x)).
    """
    K = _K(scale)
    return _times(tn.logsumexp(_times(x, -K), axis), -1 / K)


def soft_onehot(x, scale=1.0, axis=-1):
    r"""Smooth one-hot of the argmax.

    .. math:: \mathrm{onehot}(\mathrm{argmax}\,x)_i \approx
              \frac{e^{K x_i}}{\sum_j e^{K x_j}}

    Shapes: the shape of ``x``; an all ``−inf`` slice gives 0 (D4).
    Source: https://kexue.fm/archives/6620 ("softmax ≈ onehot(argmax)").
    """
    return tn.softmax(_times(x, _K(scale)), axis)


def _positions(n, base, axis, ndim):
    """The positions i + base (i = 0..n−1) shaped to broadcast along ``axis``."""
    pos = onp.array([_mpmath().mpf(i + base) for i in range(n)], dtype=object)
    shape = [1] * ndim
    shape[axis] = n
    return pos.reshape(shape)


def soft_argmax(x, scale=1.0, axis=-1, base=0):
    r"""Smooth argmax: the expected position under softmax(Kx).

    .. math:: \mathrm{argmax}(x) \approx \sum_{i} (i + \mathrm{base})\,
              \frac{e^{K x_i}}{\sum_j e^{K x_j}}

    Shapes: ``x`` (..., n, ...) → ``x`` without ``axis``; 0 for an all ``−inf`` slice.
    ``base=1`` counts positions from 1 as the post does (3.7336 for x = [2, 1, 4, 5, 3]).
    Source: https://kexue.fm/archives/6620 ("argmax").
    """
    x = onp.asarray(x, dtype=object)
    p = soft_onehot(x, scale, axis)
    pos = _positions(x.shape[axis], base, axis % x.ndim, x.ndim)
    # Σ_i (i + base) P_i
    return onp.sum(pos * p, axis=axis)


# ---------------------------------------------------------------------------
# Smooth metrics
# ---------------------------------------------------------------------------

def smooth_accuracy(p, y):
    r"""Smooth accuracy.

    .. math:: \mathrm{acc} \approx \frac{1}{B}\sum_b \langle \mathrm{onehot}(y_b), p_b\rangle
              = \frac{1}{B}\sum_b p_{b, y_b}

    Shapes: ``p`` (B, K) probabilities, ``y`` (B,) integer labels → a scalar.
    Source: https://kexue.fm/archives/6620 ("accuracy").
    """
    m = _mpmath()
    B = p.shape[0]
    # (1/B) Σ_b p[b, y_b]
    return m.fsum(p[b, int(y[b])] for b in range(B)) / B


def _counts(p, t, average):
    """Soft counts (Σ t·p, Σ p, Σ t): over every entry (micro) or per column (macro)."""
    m = _mpmath()
    p = onp.asarray(p, dtype=object)
    t = onp.asarray(t, dtype=object)
    if average == "macro":
        cols = range(p.shape[1])
        return ([m.fsum(t[:, c] * p[:, c]) for c in cols], [m.fsum(p[:, c]) for c in cols],
                [m.fsum(t[:, c]) for c in cols])
    pf, tf = p.reshape(-1), t.reshape(-1)
    return [m.fsum(tf * pf)], [m.fsum(pf)], [m.fsum(tf)]


def _average(vals, average):
    """The micro score itself, or the mean of the per-column scores."""
    return vals[0] if average == "micro" else _mpmath().fsum(vals) / len(vals)


def smooth_f1(p, t, eps=1e-7, average="micro"):
    r"""Smooth F1 of the positive class.

    .. math:: F_1 \approx \frac{2\sum_b t_b p_b}{\sum_b t_b + \sum_b p_b + \varepsilon}

    Shapes: ``p``, ``t`` of one shape (any for "micro"; (B, K) for "macro", F1 per column
    over the batch, then the mean over the K columns) → a scalar.
    Source: https://kexue.fm/archives/6620 ("F1").
    """
    e = _mpmath().mpf(float(eps))
    tp, pp, ap = _counts(p, t, average)
    # 2 Σ t p / (Σ t + Σ p + ε)
    return _average([2 * a / (c + b + e) for a, b, c in zip(tp, pp, ap)], average)


def smooth_precision(p, t, eps=1e-7, average="micro"):
    r"""Smooth precision (the post's "similarly").

    .. math:: P \approx \frac{\sum_b t_b p_b}{\sum_b p_b + \varepsilon}

    Shapes: as :func:`smooth_f1`. Source: https://kexue.fm/archives/6620; ``docs/smoothing.md``.
    """
    e = _mpmath().mpf(float(eps))
    tp, pp, _ = _counts(p, t, average)
    # Σ t p / (Σ p + ε)
    return _average([a / (b + e) for a, b in zip(tp, pp)], average)


def smooth_recall(p, t, eps=1e-7, average="micro"):
    r"""Smooth recall (the post's "similarly").

    .. math:: R \approx \frac{\sum_b t_b p_b}{\sum_b t_b + \varepsilon}

    Shapes: as :func:`smooth_f1`. Source: https://kexue.fm/archives/6620; ``docs/smoothing.md``.
    """
    e = _mpmath().mpf(float(eps))
    tp, _, ap = _counts(p, t, average)
    # Σ t p / (Σ t + ε)
    return _average([a / (c + e) for a, c in zip(tp, ap)], average)


# ---------------------------------------------------------------------------
# Soft-k-max and the elementwise smoothings
# ---------------------------------------------------------------------------

def _kmax_row(row, k):
    """The post's soft-k-max recursion on one slice (list of mpf)."""
    m = _mpmath()
    # x ← x − min(x)
    lo = min(row)
    x = [v - lo for v in row]
    p = [m.mpf(0)] * len(x)
    for _ in range(k):
        # p ← p + softmax((1 − p) ⊙ x)
        step = tn._softmax_row([(1 - pi) * xi for pi, xi in zip(p, x)])
        p = [a + b for a, b in zip(p, step)]
    return p


def soft_kmax(x, k, axis=-1):
    r"""Soft-k-max, the post's recursion.

    .. math:: x \leftarrow x - \min(x);\quad p^{(0)} = 0;\quad
              p^{(s)} = p^{(s-1)} + \mathrm{softmax}\big((1 - p^{(s-1)}) \odot x\big),\ s = 1..k

    Shapes: the shape of ``x``; each slice sums to k. Components can exceed 1 (the post's
    quirk, kept). Source: https://kexue.fm/archives/6620 ("soft-k-max"), re-quoted in
    https://kexue.fm/archives/10373.
    """
    return tn._map_rows(lambda row: _kmax_row(row, int(k)), x, axis)


def smooth_abs(x, scale=1.0):
    r"""Smooth absolute value.

    .. math:: |x| \approx \frac{1}{K}\log\left(e^{Kx} + e^{-Kx}\right)

    Shapes: the shape of ``x``. Source: https://kexue.fm/archives/3290 (an extension of 6620).
    """
    m = _mpmath()
    K = _K(scale)
    return _mp.ew(lambda v: m.log(m.exp(K * v) + m.exp(-K * v)) / K, x)


def soft_relu(x, scale=1.0):
    r"""Soft ReLU (a scaled softplus).

    .. math:: \mathrm{relu}(x) \approx \frac{1}{K}\log\left(1 + e^{Kx}\right)

    Shapes: the shape of ``x``. Source: derived from the smooth max of
    https://kexue.fm/archives/3290 applied to max(x, 0) (``docs/smoothing.md``); log1p keeps
    the digits of a tiny e^{Kx}.
    """
    m = _mpmath()
    K = _K(scale)
    return _mp.ew(lambda v: m.log1p(m.exp(K * v)) / K, x)


# ---------------------------------------------------------------------------
# Gradients for the ops whose edge cases hold ±inf scores (differencing −inf ± h is
# undefined there; D4 gives those entries gradient 0). With P = softmax(K x) (0 on −inf):
#   smooth max: u·P_i;  smooth min: u·softmax(−K x)_i;
#   soft one-hot: K P_i (u_i − Σ_j u_j P_j);  soft argmax: u K P_i (pos_i − Σ_j pos_j P_j).
# ---------------------------------------------------------------------------

def _cot(cotangents, shape, axis=None):
    """The stored cotangent of ``out`` as mpf, broadcast to ``shape`` (reduced ``axis`` restored)."""
    u = onp.asarray(cotangents["out"], dtype=onp.float64)
    if axis is not None:
        u = onp.expand_dims(u, axis)
    return _mp.mpf_array(onp.broadcast_to(u, shape))


def _grad_smooth_max(x, cotangents, scale=1.0, axis=-1):
    """VJP of the smooth max: u · softmax(K x)."""
    x = onp.asarray(x, dtype=object)
    return {"x": _cot(cotangents, x.shape, axis) * soft_onehot(x, scale, axis)}


def _grad_smooth_min(x, cotangents, scale=1.0, axis=-1):
    """VJP of the smooth min: u · softmax(−K x) (+inf entries: 0)."""
    x = onp.asarray(x, dtype=object)
    return {"x": _cot(cotangents, x.shape, axis) * tn.softmax(_times(x, -_K(scale)), axis)}


def _grad_soft_onehot(x, cotangents, scale=1.0, axis=-1):
    """VJP of softmax(K x): K P_i (u_i − Σ_j u_j P_j)."""
    x = onp.asarray(x, dtype=object)
    p = soft_onehot(x, scale, axis)
    u = _cot(cotangents, x.shape)
    return {"x": _K(scale) * p * (u - onp.sum(u * p, axis=axis, keepdims=True))}


def _grad_soft_argmax(x, cotangents, scale=1.0, axis=-1, base=0):
    """VJP of Σ pos·softmax(K x): u K P_i (pos_i − Σ_j pos_j P_j)."""
    x = onp.asarray(x, dtype=object)
    p = soft_onehot(x, scale, axis)
    pos = _positions(x.shape[axis], base, axis % x.ndim, x.ndim)
    mean = onp.sum(pos * p, axis=axis, keepdims=True)
    return {"x": _cot(cotangents, x.shape, axis) * _K(scale) * p * (pos - mean)}


def _kmax_vjp_row(row, u, k):
    """Reverse-mode derivative of the soft-k-max recursion on one slice, in mpf.

    Forward: x' = x − min x; z_s = (1 − p_{s−1}) ⊙ x'; q_s = softmax(z_s); p_s = p_{s−1} + q_s.
    Backward from p̄ = u: z̄ = q ⊙ (p̄ − ⟨p̄, q⟩); x̄' += z̄ ⊙ (1 − p_{s−1}); p̄ ← p̄ − z̄ ⊙ x';
    finally x̄ = x̄' − (Σ x̄') at the minimum (split evenly between tied minima, as the
    oracle's min does; the tables avoid ties).
    """
    m = _mpmath()
    lo = min(row)
    x = [v - lo for v in row]
    ps, qs = [[m.mpf(0)] * len(x)], []
    for _ in range(k):
        q = tn._softmax_row([(1 - pi) * xi for pi, xi in zip(ps[-1], x)])
        qs.append(q)
        ps.append([a + b for a, b in zip(ps[-1], q)])
    pbar = list(u)
    xbar = [m.mpf(0)] * len(x)
    for s in range(k - 1, -1, -1):
        q, prev = qs[s], ps[s]
        # softmax VJP: z̄_i = q_i (p̄_i − Σ_j p̄_j q_j)
        dot = m.fsum(a * b for a, b in zip(pbar, q))
        zbar = [qi * (pb - dot) for qi, pb in zip(q, pbar)]
        # z_i = (1 − p_i) x'_i: both factors receive a share
        xbar = [xb + zb * (1 - pi) for xb, zb, pi in zip(xbar, zbar, prev)]
        pbar = [pb - zb * xi for pb, zb, xi in zip(pbar, zbar, x)]
    # x' = x − min x
    ties = [i for i, v in enumerate(row) if v == lo]
    total = m.fsum(xbar)
    return [xb - (total / len(ties) if i in ties else 0) for i, xb in enumerate(xbar)]


def _grad_soft_kmax(x, cotangents, k, axis=-1):
    """VJP of the soft-k-max by reverse mode through the recursion (see :func:`_kmax_vjp_row`).

    Evaluated with extra digits: with sharp scores (x' spanning ~400) the entries of p near 1
    differ from 1 by ~e^{−100}, and 1 − p must keep its digits; the extra precision covers
    e^{−max x'} relative to 1.
    """
    m = _mpmath()
    x = onp.asarray(x, dtype=object)
    u = _mp.mpf_array(onp.asarray(cotangents["out"], dtype=onp.float64))
    fin = [abs(v) for v in x.reshape(-1)]
    spread = (max(fin) - min(fin)) if fin else 0
    extra = int(2 * spread / m.log(10)) + 20
    with m.workdps(m.mp.dps + extra):
        rx, shape = tn._rows(x, axis)
        ru, _ = tn._rows(u, axis)
        out = onp.empty(rx.shape, dtype=object)
        for b in range(rx.shape[0]):
            out[b, :] = _kmax_vjp_row(list(rx[b]), list(ru[b]), int(k))
        g = tn._unrows(out, shape, axis)
    # round back to the caller's precision
    return {"x": _mp.ew(lambda v: +v, g)}


TRUTH = {
    "smoothing.smooth_max": smooth_max,
    "smoothing.smooth_min": smooth_min,
    "smoothing.soft_onehot": soft_onehot,
    "smoothing.soft_argmax": soft_argmax,
    "smoothing.smooth_accuracy": smooth_accuracy,
    "smoothing.smooth_f1": smooth_f1,
    "smoothing.smooth_precision": smooth_precision,
    "smoothing.smooth_recall": smooth_recall,
    "smoothing.soft_kmax": soft_kmax,
    "smoothing.smooth_abs": smooth_abs,
    "smoothing.soft_relu": soft_relu,
}

GRADS = {
    "smoothing.smooth_max": _grad_smooth_max,
    "smoothing.smooth_min": _grad_smooth_min,
    "smoothing.soft_onehot": _grad_soft_onehot,
    "smoothing.soft_argmax": _grad_soft_argmax,
    "smoothing.soft_kmax": _grad_soft_kmax,
}

BOUNDS = {}
