r"""numba twins of the sparse-attention patterns (decision D7): same names, same results, fast.

Post: Su Jianlin, "Born to save: from standard attention to sparse attention", 2019-07-27,
https://kexue.fm/archives/6853. Paper: Child et al., arXiv 1904.10509.

Each public function has the name and signature of its readable twin in
:mod:`kexue_ref.sparse_attention` and is checked against it on every registry case
(``tests/test_kernels.py``). Shapes (D5): q, k (B, H, T, D), v (B, H, T, Dv), output
(B, H, T, Dv); scores are scaled by α = 1/√D; ``mask`` (B, T) is True for valid tokens (padded
keys removed, padded query rows set to 0); a row with no allowed key outputs 0 with zero
gradient (D4).

How it works (details in ``docs/sparse_attention_kernels.md``):

* every twin is an autograd primitive (:func:`autograd.extend.primitive`) whose forward kernel
  returns the output and the row log-sum-exp; its VJP (``defvjp_argnums``, first order only)
  rebuilds P = exp(α S − lse) from them, so nothing of size T × T is ever stored;
* the kernels (``kexue_ref/kernels/_sparse_attention_kernels.py``) visit only the allowed keys,
  computed from arithmetic ranges (independent of :mod:`kexue_ref._masks`), in query blocks
  whose scores are small BLAS products; memory is O(B·H·T·(D + keys per row));
* float32 inputs are computed in float32, float64 in float64 (float16 is computed in float32
  and returned as float16); the compiled code is cached on disk (``_config.CACHE``);
* BLAS runs single-threaded inside the parallel kernels (one ``threadpoolctl`` controller,
  built once), since the kernels already use every core.

The twins implement the post's semantics only: ``compat`` other than None raises.
Nothing here mutates its inputs.
"""
import contextlib

import numba
import numpy as onp
import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot uses SciPy's BLAS: load it first)
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval

from kexue_ref._validate import check_float_array, check_int
from kexue_ref.sparse_attention.indexed import _check_key_index  # input checks shared with the oracle (not mask logic)
from kexue_ref.kernels import _sparse_attention_kernels as _kern
from kexue_ref.kernels import _sparse_attention_lists as _lists

__all__ = ["atrous_attention", "local_attention", "sparse_attention", "indexed_attention"]

POST = "https://kexue.fm/archives/6853"

#: Query rows per block of the local pass and of the atrous groups: 32 rows keep the wasted
#: corner of a local block small (the scores of a block are 32 × (32 + 2W)), 64 rows make the
#: dense group products larger; both measured on the benchmark machine.
QB_LOCAL = 32
QB_GROUP = 64


# ---------------------------------------------------------------------------
# BLAS thread limit
# ---------------------------------------------------------------------------

_CONTROLLER = None


def _one_blas_thread():
    """A context keeping BLAS on one thread (nested BLAS threads inside ``prange`` are 2–4×
    slower). One ``ThreadpoolController`` is built on first use and reused (≈ 13 µs a call);
    without threadpoolctl the limit is skipped (correct results, slower kernels)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:      # pragma: no cover - threadpoolctl ships with scikit-learn
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()
    if _CONTROLLER is False:     # pragma: no cover
        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1, user_api="blas")


# ---------------------------------------------------------------------------
# Argument checks (in Python, before any numba code runs)
# ---------------------------------------------------------------------------

def _require_post_semantics(compat):
    if compat is not None:
        raise ValueError(f"compat must be None: the twins implement the post's semantics only "
                         f"(use kexue_ref.sparse_attention for compat={compat!r})")


def _check_qkv(q, k, v):
    """(B, H, T, D, Dv) of self-attention inputs q, k (B, H, T, D) and v (B, H, T, Dv)."""
    for x, name, legend in ((q, "q", "(B, H, T, D)"), (k, "k", "(B, H, T, D)"),
                            (v, "v", "(B, H, T, Dv)")):
        arr = onp.asarray(getval(x))
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real floating array {legend}, got dtype {arr.dtype}")
        if arr.ndim != 4:
            raise ValueError(f"{name} must have shape {legend}, got shape {arr.shape}")
        if arr.dtype.kind == "f" and not onp.isfinite(arr).all():   # one pass; details below
            check_float_array(arr, name)
    qs, ks, vs = (onp.shape(getval(x)) for x in (q, k, v))
    B, H, T, D = qs
    if ks != qs:
        raise ValueError(f"k must have the shape (B, H, T, D) = {qs} of q, got {ks}")
    if vs[:3] != (B, H, T):
        raise ValueError(f"v must have shape (B, H, T, Dv) = ({B}, {H}, {T}, Dv) to match q, got {vs}")
    if min(B, H, T, D, vs[3]) < 1:
        raise ValueError(f"every size of q, k, v must be >= 1, got q {qs}, k {ks}, v {vs}")
    return B, H, T, D, vs[3]


def _check_flag(value, name):
    if not isinstance(value, (bool, onp.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _valid_tokens(mask, B, T):
    """The (B, T) bool sequence mask, or all True when mask is None."""
    if mask is None:
        return onp.ones((B, T), dtype=onp.bool_)
    m = onp.asarray(getval(mask))
    if m.dtype != onp.bool_:
        raise TypeError(f"mask must be a boolean array of shape (B, T) (True = valid token), "
                        f"got dtype {m.dtype}")
    if m.shape != (B, T):
        raise ValueError(f"mask must have shape (B, T) = ({B}, {T}), got shape {m.shape}")
    return onp.ascontiguousarray(m)


def _compute_dtype(*arrays):
    """float32 for float32 (or float16) inputs, float64 otherwise (integers included)."""
    dt = onp.result_type(*[onp.asarray(getval(a)).dtype for a in arrays])
    if dt.kind == "f" and dt.itemsize <= 4:
        return onp.dtype(onp.float32)
    return onp.dtype(onp.float64)


def _result_dtype(*arrays):
    dt = onp.result_type(*[onp.asarray(getval(a)).dtype for a in arrays])
    return dt if dt.kind == "f" else onp.dtype(onp.float64)


def _flat(x, dt):
    """(B, H, T, E) → C-contiguous (B·H, T, E) in the compute dtype (a view when possible)."""
    x = onp.asarray(x)
    B, H, T, E = x.shape
    return onp.ascontiguousarray(x.reshape(B * H, T, E), dtype=dt)


def _nchunk():
    return numba.get_num_threads()


# ---------------------------------------------------------------------------
# Primitives: forward kernels returning (out, lse), VJPs rebuilding P from lse
# ---------------------------------------------------------------------------

def _forward(kind, q, k, v, param, causal, ok, buffers=None):
    """Run the forward kernels; returns (out, lse) of shapes (B, H, T, Dv), (B, H, T).

    ``buffers``: optional preallocated (out (B·H, T, Dv), lse (B·H, T) float64, seen (B·H, T)
    bool), for the benchmark's allocation-free timing of the kernels."""
    B, H, T, D = onp.shape(q)
    Dv = onp.shape(v)[3]
    dt = _compute_dtype(q, k, v)
    qf, kf, vf = _flat(q, dt), _flat(k, dt), _flat(v, dt)
    scale = 1.0 / onp.sqrt(D)
    if buffers is None:
        out = onp.empty((B * H, T, Dv), dt)
        lse = onp.empty((B * H, T), onp.float64)      # float64 for every dtype (see _exp_cols)
        seen = onp.empty((B * H, T), onp.bool_)
    else:
        out, lse, seen = buffers
    P = min(param, T)          # |i − j| ≤ T − 1 < P and (i − j) mod P = 0 ⇔ i = j for P ≥ T
    with _one_blas_thread():
        if kind in ("local", "sparse"):
            # local(W), or the local(R) part of sparse(R)
            _kern.attend_fwd(qf, kf, vf, ok, H, _kern.LOCAL, P, 0, causal, False, scale, QB_LOCAL,
                             _nchunk(), out, lse, seen)
        if kind in ("atrous", "sparse"):
            # atrous(R); for sparse(R), the group keys beyond distance R merged into the local part
            gap = 2 if kind == "sparse" else 0
            _kern.attend_fwd(qf, kf, vf, ok, H, _kern.GROUPS, P, gap, causal, kind == "sparse", scale,
                             QB_GROUP, _nchunk(), out, lse, seen)
    rd = _result_dtype(q, k, v)
    return out.reshape(B, H, T, Dv).astype(rd, copy=False), lse.reshape(B, H, T)


def _backward(kind, q, k, v, param, causal, ok, out, lse, g_out, g_lse):
    """dq, dk, dv for cotangents (g_out, g_lse) of (out, lse)."""
    B, H, T, D = onp.shape(q)
    Dv = onp.shape(v)[3]
    dt = _compute_dtype(q, k, v)
    qf, kf, vf = _flat(q, dt), _flat(k, dt), _flat(v, dt)
    do = _flat(g_out, dt)
    scale = 1.0 / onp.sqrt(D)
    # δ_i = Σ_e dO_ie O_ie − (cotangent of lse_i): dS = P ⊙ (dP − δ)
    delta = onp.einsum("bte,bte->bt", do, _flat(out, dt))
    if g_lse is not None:
        delta = delta - onp.asarray(g_lse, dt).reshape(B * H, T)
    delta = onp.ascontiguousarray(delta, dtype=dt)
    lsef = onp.ascontiguousarray(onp.asarray(lse).reshape(B * H, T), dtype=onp.float64)
    dq = onp.zeros((B * H, T, D), dt)
    dk = onp.zeros((B * H, T, D), dt)
    dv = onp.zeros((B * H, T, Dv), dt)
    P = min(param, T)
    with _one_blas_thread():
        if kind in ("local", "sparse"):
            _kern.attend_bwd(qf, kf, vf, ok, H, _kern.LOCAL, P, 0, causal, scale, QB_LOCAL, _nchunk(),
                             lsef, delta, do, dq, dk, dv)
        if kind in ("atrous", "sparse"):
            gap = 2 if kind == "sparse" else 0
            _kern.attend_bwd(qf, kf, vf, ok, H, _kern.GROUPS, P, gap, causal, scale, QB_GROUP,
                             _nchunk(), lsef, delta, do, dq, dk, dv)
    return (dq.reshape(B, H, T, D), dk.reshape(B, H, T, D), dv.reshape(B, H, T, Dv))


def _make_vjp(kind):
    def vjp_maker(argnums, ans, args, kwargs):
        q, k, v, param, causal, ok = args
        out, lse = ans

        def vjp(g):
            g_out, g_lse = g
            grads = _backward(kind, q, k, v, param, causal, ok, out, lse, g_out, g_lse)
            return tuple(grads[i].astype(onp.asarray(args[i]).dtype, copy=False) for i in argnums)
        return vjp
    return vjp_maker


@primitive
def _local_core(q, k, v, W, causal, ok):
    """(out, lse) of local attention (primitive: its VJP is :func:`_backward`)."""
    return _forward("local", q, k, v, W, causal, ok)


@primitive
def _atrous_core(q, k, v, R, causal, ok):
    """(out, lse) of atrous attention (primitive)."""
    return _forward("atrous", q, k, v, R, causal, ok)


@primitive
def _sparse_core(q, k, v, R, causal, ok):
    """(out, lse) of sparse attention (primitive)."""
    return _forward("sparse", q, k, v, R, causal, ok)


defvjp_argnums(_local_core, _make_vjp("local"))
defvjp_argnums(_atrous_core, _make_vjp("atrous"))
defvjp_argnums(_sparse_core, _make_vjp("sparse"))


def _key_lists(idx, T):
    """Row lengths and the transposed lists (CSR by key: start, rows, slots)."""
    nkeys = onp.sum(idx >= 0, axis=1).astype(onp.int64)
    rows, slots = onp.nonzero(idx >= 0)                  # row-major: i ascending
    keys = idx[rows, slots]
    order = onp.argsort(keys, kind="stable")             # by key j, then by row i
    start = onp.zeros(T + 1, onp.int64)
    onp.cumsum(onp.bincount(keys, minlength=T), out=start[1:])
    return (nkeys, onp.ascontiguousarray(rows[order], dtype=onp.int64),
            onp.ascontiguousarray(slots[order], dtype=onp.int64), start)


@primitive
def _indexed_core(q, k, v, idx, ok):
    """(out, lse) of attention over per-row key lists (primitive)."""
    B, H, T, D = onp.shape(q)
    Dv = onp.shape(v)[3]
    dt = _compute_dtype(q, k, v)
    qf, kf, vf = _flat(q, dt), _flat(k, dt), _flat(v, dt)
    out = onp.empty((B * H, T, Dv), dt)
    lse = onp.empty((B * H, T), onp.float64)
    nkeys = onp.sum(idx >= 0, axis=1).astype(onp.int64)
    _lists.indexed_fwd(qf, kf, vf, ok, H, idx, nkeys, 1.0 / onp.sqrt(D), out, lse)
    return out.reshape(B, H, T, Dv).astype(_result_dtype(q, k, v), copy=False), lse.reshape(B, H, T)


def _indexed_vjp(argnums, ans, args, kwargs):
    q, k, v, idx, ok = args
    out, lse = ans

    def vjp(g):
        g_out, g_lse = g
        B, H, T, D = onp.shape(q)
        Dv = onp.shape(v)[3]
        dt = _compute_dtype(q, k, v)
        qf, kf, vf, do = _flat(q, dt), _flat(k, dt), _flat(v, dt), _flat(g_out, dt)
        scale = 1.0 / onp.sqrt(D)
        # δ_i = Σ_e dO_ie O_ie − (cotangent of lse_i)
        delta = onp.einsum("bte,bte->bt", do, _flat(out, dt))
        if g_lse is not None:
            delta = delta - onp.asarray(g_lse, dt).reshape(B * H, T)
        delta = onp.ascontiguousarray(delta, dtype=dt)
        lsef = onp.ascontiguousarray(onp.asarray(lse).reshape(B * H, T), dtype=onp.float64)
        nkeys, rows_of, slot_of, start = _key_lists(idx, T)
        K = idx.shape[1]
        dq = onp.empty((B * H, T, D), dt)
        dk = onp.empty((B * H, T, D), dt)
        dv = onp.empty((B * H, T, Dv), dt)
        pst = onp.empty((B * H, T, K), dt)
        dsst = onp.empty((B * H, T, K), dt)
        _lists.indexed_bwd_rows(qf, kf, vf, ok, H, idx, nkeys, scale, lsef, delta, do, dq, pst, dsst)
        _lists.indexed_bwd_cols(qf, do, ok, H, rows_of, slot_of, start, scale, pst, dsst, dk, dv)
        grads = (dq.reshape(B, H, T, D), dk.reshape(B, H, T, D), dv.reshape(B, H, T, Dv))
        return tuple(grads[i].astype(onp.asarray(args[i]).dtype, copy=False) for i in argnums)
    return vjp


defvjp_argnums(_indexed_core, _indexed_vjp)


def _as_input(x):
    """Integer arrays become float64 (as the readable functions do); floats are kept."""
    v = getval(x)
    if onp.asarray(v).dtype.kind in "iu":
        return onp.asarray(v, dtype=onp.float64)
    return x


# ---------------------------------------------------------------------------
# Public twins
# ---------------------------------------------------------------------------

def atrous_attention(q, k, v, rate, *, causal=False, mask=None, compat=None):
    r"""Atrous self-attention (numba twin): keys at distances that are multiples of R.

    .. math:: o_i = \sum_{j:\ (i - j) \bmod R = 0} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1 (R = 1 is full attention, R ≥ T gives o_i = v_i).
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token.
    compat : must be None (the twins implement the post's semantics only).

    Returns
    -------
    array (B, H, T, Dv), the dtype of the inputs.

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Atrous Self Attention"; readable twin
    :func:`kexue_ref.sparse_attention.atrous_attention`. Kernel: the keys j = r + p·R of each
    residue r are gathered into a contiguous group and attended to densely (causal: p' ≤ p),
    one task per (head, group). Autograd primitive, first-order VJP.

    Examples
    --------
    >>> import numpy as onp
    >>> q = onp.zeros((1, 1, 4, 1)); v = onp.arange(4.0).reshape(1, 1, 4, 1)
    >>> atrous_attention(q, q, v, 2).ravel().tolist()     # means of {v0, v2} and {v1, v3}
    [1.0, 2.0, 1.0, 2.0]
    """
    _require_post_semantics(compat)
    B, H, T, D, Dv = _check_qkv(q, k, v)
    R = check_int(rate, "rate", min_value=1)
    causal = _check_flag(causal, "causal")
    ok = _valid_tokens(mask, B, T)
    return _atrous_core(_as_input(q), _as_input(k), _as_input(v), R, causal, ok)[0]


def local_attention(q, k, v, neighbors, *, causal=False, mask=None, compat=None):
    r"""Local self-attention (numba twin): the W neighbours on each side and the query itself.

    .. math:: o_i = \sum_{j:\ |i - j| \le W} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    neighbors : int W ≥ 1; windows are cut at the sequence edges.
    causal : bool, keep only j ≤ i (the last W + 1 positions).
    mask : None or bool array (B, T), True = valid token.
    compat : must be None (the twins implement the post's semantics only).

    Returns
    -------
    array (B, H, T, Dv), the dtype of the inputs.

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Local Self Attention"; readable twin
    :func:`kexue_ref.sparse_attention.local_attention`. Kernel: blocks of 32 queries reach the
    contiguous keys [i0 − W, i1 + W); backward runs the blocks in colours with disjoint key
    ranges. Autograd primitive, first-order VJP.

    Examples
    --------
    >>> import numpy as onp
    >>> q = onp.zeros((1, 1, 4, 1)); v = onp.arange(4.0).reshape(1, 1, 4, 1)
    >>> local_attention(q, q, v, 1).ravel().tolist()      # means of each window of 2 or 3
    [0.5, 1.0, 2.0, 2.5]
    """
    _require_post_semantics(compat)
    B, H, T, D, Dv = _check_qkv(q, k, v)
    W = check_int(neighbors, "neighbors", min_value=1)
    causal = _check_flag(causal, "causal")
    ok = _valid_tokens(mask, B, T)
    return _local_core(_as_input(q), _as_input(k), _as_input(v), W, causal, ok)[0]


def sparse_attention(q, k, v, rate, *, causal=False, mask=None, compat=None):
    r"""The post's Sparse self-attention (numba twin): local up to R plus atrous beyond, one softmax.

    .. math:: o_i = \sum_{j \in \mathcal{N}(i)} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j, \qquad
              \mathcal{N}(i) = \{ j : |i - j| \le R \} \cup \{ j : (i - j) \bmod R = 0 \}

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    rate : int R ≥ 1 (R = 1 is full attention).
    causal : bool, keep only j ≤ i.
    mask : None or bool array (B, T), True = valid token.
    compat : must be None (the twins implement the post's semantics only).

    Returns
    -------
    array (B, H, T, Dv), the dtype of the inputs.

    Notes
    -----
    Source: https://kexue.fm/archives/6853, "Sparse Self Attention"; readable twin
    :func:`kexue_ref.sparse_attention.sparse_attention`. Kernel: the local(R) pass, then the
    atrous groups without the keys at distance 0 and R (already counted), merged in
    log-sum-exp form, :math:`\mathrm{lse} = \log(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B})`, so
    every key of the union enters one softmax once. Autograd primitive, first-order VJP.
    """
    _require_post_semantics(compat)
    B, H, T, D, Dv = _check_qkv(q, k, v)
    R = check_int(rate, "rate", min_value=1)
    causal = _check_flag(causal, "causal")
    ok = _valid_tokens(mask, B, T)
    return _sparse_core(_as_input(q), _as_input(k), _as_input(v), R, causal, ok)[0]


def indexed_attention(q, k, v, key_index, *, mask=None):
    r"""Self-attention over arbitrary per-query key lists (numba twin).

    .. math:: o_i = \sum_{j \in \mathrm{key\_index}_i} \mathrm{softmax}_j\Big(\frac{q_i\cdot k_j}
              {\sqrt D}\Big)\, v_j

    Parameters
    ----------
    q, k : arrays (B, H, T, D).
    v : array (B, H, T, Dv).
    key_index : int array (T, Kmax): row i lists its keys strictly increasing, padded with −1
        at the end (the same lists for every batch and head).
    mask : None or bool array (B, T), True = valid token.

    Returns
    -------
    array (B, H, T, Dv), the dtype of the inputs.

    Notes
    -----
    Source: a sparse kernel's row iteration over per-query key lists
    (``docs/sparse_attention_kernels.md``, "Which keys"; https://kexue.fm/archives/6853 for the
    patterns); readable twin :func:`kexue_ref.sparse_attention.indexed_attention`. Kernel:
    one task per row for the forward and dQ (P and dS are kept per list slot, memory
    O(B·H·T·Kmax)), one task per key for dK and dV through the transposed lists. Scores and
    row sums are accumulated in float64. Autograd primitive, first-order VJP.
    """
    B, H, T, D, Dv = _check_qkv(q, k, v)
    idx = onp.ascontiguousarray(_check_key_index(key_index, T))
    ok = _valid_tokens(mask, B, T)
    return _indexed_core(_as_input(q), _as_input(k), _as_input(v), idx, ok)[0]
