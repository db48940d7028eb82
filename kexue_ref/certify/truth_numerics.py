r"""Multiprecision truth for the shared stable primitives (ops ``numerics.*``).

Each function evaluates the textbook formula of its op element by element in ``mpmath`` at the
working precision set by the certifier: log Σ e^{x}, e^{x}/Σ e^{x}, 1/(1 + e^{−x}),
log(1 + e^{x}). There is no max shift: an ``mpf`` has an unbounded exponent range, so e^{10⁴}
is an ordinary number. The only care taken is where a *mathematical* cancellation would eat
the working digits (log of 1 + something tiny), which is written with ``log1p``, mpmath's
correctly rounded log(1 + t).

Conventions followed (``docs/conventions.md``, decision D4): an all ``−inf`` slice has no mass,
so LSE = −inf, softmax = 0 and log-softmax = −inf there, and every gradient through it is 0; a
``−inf`` entry of a finite slice has probability 0 and gradient 0; a masked softmax row with no
allowed entry is 0 (gradient 0), unless ``fill=c`` *replaces* the disallowed scores by c before
an ordinary softmax (the row then becomes uniform).

Inputs arrive as NumPy object arrays of ``mpmath.mpf`` holding the stored float64 values (the
boolean ``mask`` as a plain bool array); outputs are object arrays of ``mpf``.

Sources: P. Blanchard, D. J. Higham, N. J. Higham, "Accurate computation of the log-sum-exp and
softmax functions", IMA J. Numer. Anal. 41 (2021), doi:10.1093/imanum/draa038; the smooth maximum
of https://kexue.fm/archives/6620 and https://kexue.fm/archives/3290.
"""
import numpy as onp

from kexue_ref.certify import _mp

__all__ = ["logsumexp", "softmax", "log_softmax", "sigmoid", "log_sigmoid", "softplus",
           "masked_softmax", "TRUTH", "GRADS", "BOUNDS"]


def _mpmath():
    import mpmath
    return mpmath


# ---------------------------------------------------------------------------
# Row helpers: move the reduced axis last and work on Python lists of mpf
# ---------------------------------------------------------------------------

def _rows(a, axis):
    """``a`` with ``axis`` moved last, reshaped to (rows, n); also the moved shape."""
    a = onp.moveaxis(onp.asarray(a, dtype=object), axis, -1)
    return a.reshape(-1, a.shape[-1]), a.shape


def _unrows(r, moved_shape, axis):
    """Inverse of :func:`_rows` for an array of the input's shape."""
    return onp.moveaxis(r.reshape(moved_shape), -1, axis)


def _lse_row(row):
    """log Σ_j e^{x_j} of one slice (a list of mpf); −inf when every entry is −inf."""
    m = _mpmath()
    if all(v == m.ninf for v in row):
        # no mass: log 0 = −inf (D4)
        return m.mpf("-inf")
    # pick one largest entry k; the identity log Σ_j e^{x_j} = x_k + log(1 + Σ_{j≠k} e^{x_j − x_k})
    # holds for any k, and with the largest one the log1p keeps every digit of a tiny tail
    k = max(range(len(row)), key=lambda j: row[j])
    tail = m.fsum(m.exp(row[j] - row[k]) for j in range(len(row)) if j != k)
    return row[k] + m.log1p(tail)


def _softmax_row(row):
    """e^{x_i} / Σ_j e^{x_j} of one slice; all 0 when every entry is −inf (D4)."""
    m = _mpmath()
    # e_i = e^{x_i} (0 for x_i = −inf)
    e = [m.exp(v) for v in row]
    s = m.fsum(e)
    if s == 0:
        return [m.mpf(0)] * len(row)
    return [v / s for v in e]


def _log_softmax_row(row):
    """log softmax of one slice: log P_i = −log Σ_j e^{x_j − x_i}; −inf at x_i = −inf."""
    m = _mpmath()
    out = []
    for i, xi in enumerate(row):
        if xi == m.ninf:
            # P_i = 0 (and the whole slice is −inf when every entry is)
            out.append(m.mpf("-inf"))
            continue
        # log P_i = −log(1 + Σ_{j≠i} e^{x_j − x_i}); log1p keeps a tiny tail exact
        tail = m.fsum(m.exp(row[j] - xi) for j in range(len(row)) if j != i)
        out.append(-m.log1p(tail))
    return out


def _map_rows(fn, x, axis):
    """Apply a slice → slice function along ``axis``."""
    r, shape = _rows(x, axis)
    out = onp.empty(r.shape, dtype=object)
    for b in range(r.shape[0]):
        out[b, :] = fn(list(r[b]))
    return _unrows(out, shape, axis)


# ---------------------------------------------------------------------------
# Truth functions (the oracle's signatures)
# ---------------------------------------------------------------------------

def logsumexp(x, axis=-1, keepdims=False):
    r"""Log-sum-exp along one axis.

    .. math:: \mathrm{LSE}(x) = \log \sum_i e^{x_i}

    Shapes: ``x`` any shape (object array of mpf); the result drops ``axis`` (length 1 if
    ``keepdims``). An all ``−inf`` slice gives ``−inf`` (D4).
    Source: Blanchard, Higham & Higham 2021; https://kexue.fm/archives/6620 (max ≈ LSE).
    """
    r, shape = _rows(x, axis)
    vals = onp.empty(r.shape[0], dtype=object)
    for b in range(r.shape[0]):
        vals[b] = _lse_row(list(r[b]))
    out = vals.reshape(shape[:-1])
    if keepdims:
        out = onp.expand_dims(out, axis)
    return out


def softmax(x, axis=-1):
    r"""Softmax along one axis.

    .. math:: \mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}

    Shapes: the shape of ``x``. ``−inf`` entries get 0; an all ``−inf`` slice is all 0 (D4).
    Source: https://kexue.fm/archives/6620 ("softmax ≈ onehot(argmax)").
    """
    return _map_rows(_softmax_row, x, axis)


def log_softmax(x, axis=-1):
    r"""Log of the softmax along one axis.

    .. math:: \log \mathrm{softmax}(x)_i = x_i - \mathrm{LSE}(x)
              = -\log\Big(1 + \sum_{j \ne i} e^{x_j - x_i}\Big)

    Shapes: the shape of ``x``; ``−inf`` where x_i = −inf (so an all ``−inf`` slice is all
    ``−inf``). Source: Blanchard, Higham & Higham 2021.
    """
    return _map_rows(_log_softmax_row, x, axis)


def sigmoid(x):
    r"""Logistic sigmoid, elementwise.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}

    Shapes: the shape of ``x``. Source: the definition (SciPy ``expit``).
    """
    m = _mpmath()
    return _mp.ew(lambda v: 1 / (1 + m.exp(-v)), x)


def log_sigmoid(x):
    r"""Log of the sigmoid, elementwise.

    .. math:: \log \sigma(x) = -\log(1 + e^{-x})

    Shapes: the shape of ``x``. Source: the definition; ``log1p`` evaluates log(1 + t) without
    losing a tiny t to the working precision.
    """
    m = _mpmath()
    return _mp.ew(lambda v: -m.log1p(m.exp(-v)), x)


def softplus(x):
    r"""Softplus, elementwise.

    .. math:: \mathrm{softplus}(x) = \log(1 + e^{x})

    Shapes: the shape of ``x``. Source: https://kexue.fm/archives/3290 (relu ≈ LSE(x, 0)).
    """
    m = _mpmath()
    return _mp.ew(lambda v: m.log1p(m.exp(v)), x)


def masked_softmax(x, mask, axis=-1, fill=None):
    r"""Softmax over the allowed entries (decision D4), or with replacement masking.

    .. math:: P_i = \frac{[A_i]\, e^{x_i}}{\sum_{j: A_j} e^{x_j}}
              \quad(\text{fill = None}), \qquad
              P_i = \mathrm{softmax}(\tilde x)_i,\ \tilde x_i = x_i \text{ if } A_i \text{ else } c
              \quad(\text{fill} = c)

    Shapes: ``x`` any shape, ``mask`` a bool array broadcastable to it (True = may attend).
    A row without allowed entries is 0 for fill = None and uniform for fill = c.
    Source: https://kexue.fm/archives/6853 and ``docs/conventions.md`` (D4).
    """
    m = _mpmath()
    x = onp.asarray(x, dtype=object)
    a = onp.broadcast_to(onp.asarray(mask, dtype=bool), x.shape)
    z = onp.empty(x.shape, dtype=object)
    zf, xf, af = z.reshape(-1), x.reshape(-1), a.reshape(-1)
    # excluded scores: weight 0 (e^{−inf}) for exact masking, the constant c for replacement
    off = m.mpf("-inf") if fill is None else m.mpf(float(fill))
    for i in range(xf.size):
        zf[i] = xf[i] if af[i] else off
    return softmax(z, axis)


# ---------------------------------------------------------------------------
# Gradients. The softmax family has −inf entries and all −inf slices in its edge cases, where
# differencing is undefined (−inf ± h, −inf − (−inf)); there the D4 convention gives 0. The
# VJPs below are the analytic derivatives, evaluated in mpf:
#   ∂LSE/∂x_i = P_i;   softmax VJP: P_i (u_i − Σ_j u_j P_j);   log-softmax VJP: u_i − P_i Σ_j u_j,
# with P = softmax(x) (0 on −inf entries and on all −inf slices). Cotangents of non-finite
# outputs are 0 by the tables' rule, and are treated as such here.
# ---------------------------------------------------------------------------

def _cot(cotangents, like_shape):
    """The cotangent of the single output ``out`` as an mpf array of the given shape."""
    u = onp.asarray(cotangents["out"], dtype=onp.float64)
    return _mp.mpf_array(onp.broadcast_to(u, like_shape))


def _grad_logsumexp(x, cotangents, axis=-1, keepdims=False):
    """VJP of LSE: g_i = u · P_i, P = softmax(x); 0 in an all −inf slice."""
    x = onp.asarray(x, dtype=object)
    u = onp.asarray(cotangents["out"], dtype=onp.float64)
    if not keepdims:
        u = onp.expand_dims(u, axis)
    p = softmax(x, axis)
    return {"x": p * _mp.mpf_array(onp.broadcast_to(u, x.shape))}


def _grad_softmax(x, cotangents, axis=-1):
    """VJP of softmax: g_i = P_i (u_i − Σ_j u_j P_j)."""
    x = onp.asarray(x, dtype=object)
    p = softmax(x, axis)
    u = _cot(cotangents, x.shape)
    s = onp.sum(u * p, axis=axis, keepdims=True)
    return {"x": p * (u - s)}


def _grad_log_softmax(x, cotangents, axis=-1):
    """VJP of log-softmax: g_i = u_i − P_i Σ_j u_j (u = 0 where the output is −inf)."""
    x = onp.asarray(x, dtype=object)
    p = softmax(x, axis)
    u = _cot(cotangents, x.shape)
    # the cotangent of a −inf output carries nothing (it is stored as 0)
    fin = onp.vectorize(lambda v: v != _mpmath().ninf, otypes=[bool])(x)
    u = onp.where(fin, u, _mpmath().mpf(0))
    s = onp.sum(u, axis=axis, keepdims=True)
    return {"x": u - p * s}


TRUTH = {
    "numerics.logsumexp": logsumexp,
    "numerics.softmax": softmax,
    "numerics.log_softmax": log_softmax,
    "numerics.sigmoid": sigmoid,
    "numerics.log_sigmoid": log_sigmoid,
    "numerics.softplus": softplus,
    "numerics.masked_softmax": masked_softmax,
}

GRADS = {
    "numerics.logsumexp": _grad_logsumexp,
    "numerics.softmax": _grad_softmax,
    "numerics.log_softmax": _grad_log_softmax,
}

BOUNDS = {
    "numerics.masked_softmax[B2-T5-fill-1e9]": {
        "ulps": 4, "eps_scale": 2, "members": ["grad.x"],
        "reason": "the softmax VJP P_i((Σ_{j≠i} P_j) u_i − Σ_{j≠i} P_j u_j) is six roundings deep "
                  "(P itself ~1.5 ulp, two exclusive sums, two products, one difference) with "
                  "no cancellation left to remove: 3 ulp (1.49 eps·S) at the row's largest "
                  "entry, -0.814",
    },
}
