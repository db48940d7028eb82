# Over 500 lines: numba's cache tracks only this source file, so the kernels and their jitted helpers share it.
r"""numba kernels behind :mod:`kexue_ref.kernels.sparse_attention` (private).

Every kernel works on heads flattened into one axis: q (BH, T, D), k (BH, T, D), v (BH, T, Dv),
C-contiguous, float32 or float64 (compiled once per dtype); ``ok`` (B, T) is the sequence mask
(True = valid token) and ``H`` maps a flat head index bh to its batch row b = bh // H.

The allowed keys of a query are computed here from integer arithmetic alone, never from
:mod:`kexue_ref._masks` (the oracle's mask code), so that a bug cannot hide in both
(cf. NVIDIA/cutlass#2336):

* local(W): keys [max(0, i − W), min(T, i + W + 1)), or up to i + 1 when causal;
* group r of the atrous pattern: positions j = r + p·R, p = 0, 1, …; inside a group,
  atrous attention is ordinary (or causal) attention over p;
* sparse(R) = local(R) ∪ atrous(R): the local pass, then the group pass *without* the keys
  already counted, |p − p'| ≤ 1 (distances 0 and R), merged row by row in log-sum-exp form.

Blocking: queries are taken in blocks of ``QB`` rows; the keys a block may reach form one
contiguous range (local) or one gathered group (atrous), so the scores of a block are one
small GEMM (``np.dot`` into a reused buffer, i.e. BLAS), computed transposed, Sᵀ = K_rng Q_blkᵀ,
with both operands row-major (BLAS's fastest case here: ~1.6× the speed of Q_blk K_rngᵀ for
these shapes, measured); so is the output O_blk = P V_rng. The masking, the max-shifted
exponential and the sums are loops over the block with the queries as the contiguous axis,
so LLVM vectorises them and every reduction over keys is a per-query accumulation in a fixed
order (the flag set of ``_config`` does not allow re-association); the exponential is the
polynomial :func:`_exp_cols` (numba has no vector ``exp`` without Intel's SVML).

Parallelism (decision D7): ``prange`` runs over chunks of independent tasks (a task is a query
block, or a whole group); a row's max, exp and sum are serial inside one task. Backward passes
that accumulate into dK and dV run the local blocks in colours whose key ranges are disjoint,
and give each atrous group to one task, so no two threads ever write the same row. The
results do not depend on the number of threads.

Fully masked rows (no valid key, or an invalid query) are detected by counting the allowed
keys seen; they give output 0, log-sum-exp 0 and zero cotangents. No comparison with −inf is
used as a guard.

Everything the pattern kernels call lives in this one file on purpose: numba's disk cache
checks only the source file of the function it caches, so a kernel that inlined a helper from
another file would keep the old helper after that file changed. The key-list kernels of
``indexed_attention`` are self-contained in ``_sparse_attention_lists.py``.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from kexue_ref.kernels import _config

# numba wants a set (not a frozenset) for named fast-math flags; the flags themselves come
# only from _config (no nnan / ninf, no reassoc).
_FASTMATH = set(_config.FASTMATH)
_JIT = {"fastmath": _FASTMATH, "cache": _config.CACHE}
_PJIT = {**_JIT, "parallel": _config.PARALLEL}

# --- constants of the vectorisable exponential (Cody–Waite reduction + Taylor polynomial) ---
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01      # fdlibm's split of ln 2: k·LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN64 = -708.0                       # below this, exp(x) < 3.3e-308: returned as 0
_F32_LOG2E = np.float32(1.44269504)
_F32_LN2_HI = np.float32(0.693359375)     # cephes' split: k·LN2_HI is exact for |k| < 2^8
_F32_LN2_LO = np.float32(-2.12194440e-4)
_F32_EXP_MIN = np.float32(-87.0)          # exp(-87) = 1.6e-38, still a normal float32
_F32_HALF = np.float32(0.5)
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)
_F32_C3, _F32_C4, _F32_C5, _F32_C6, _F32_C7 = (np.float32(1.0 / math.factorial(n)) for n in range(3, 8))


# ---------------------------------------------------------------------------
# Accumulating matrix products: BLAS ?gemm with alpha and beta
# ---------------------------------------------------------------------------
# ``np.dot(a, b, out)`` overwrites ``out``; the VJP wants dK_rng += α dSᵀ Q_blk and the like.
# :func:`_gemm` calls the same BLAS entry point as numba's ``np.dot`` (``numba_xxgemm``, SciPy's
# ?gemm), with alpha, beta and leading dimensions, so products accumulate in place and may
# write into strided row views (the rows of one atrous group inside dq).

@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major ?gemm: c ← alpha·op(a)·op(b) + beta·c (``numba_xxgemm``); returns 0 on success."""
    sig = types.int32(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, sig, args):
        ta, tb, m_, n_, k_, al, av, lda_, bv, ldb_, be, cv, ldc_ = args
        dtype = sig.args[6].dtype
        ll_char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        voidp = cgutils.voidptr_t
        fnty = ir.FunctionType(ir.IntType(32), [ll_char, ll_char, ll_char, intp, intp, intp,
                                                voidp, voidp, intp, voidp, intp, voidp, voidp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        kind = ir.Constant(ll_char, ord("s" if dtype == types.float32 else "d"))

        def flag(t):
            return builder.select(builder.icmp_signed("!=", t, t.type(0)),
                                  ir.Constant(ll_char, ord("t")), ir.Constant(ll_char, ord("n")))

        def slot(x):
            return builder.bitcast(cgutils.alloca_once_value(
                builder, context.cast(builder, x, types.float64, dtype)), voidp)

        def data(arr_t, arr_v):
            return builder.bitcast(context.make_array(arr_t)(context, builder, arr_v).data, voidp)

        return builder.call(fn, [kind, flag(ta), flag(tb), m_, n_, k_, slot(al),
                                 data(sig.args[6], av), lda_, data(sig.args[8], bv), ldb_,
                                 slot(be), data(sig.args[11], cv), ldc_])
    return sig, codegen


def _gemm(a, b, c, ta, tb, alpha, beta):
    r"""c ← α·op(a)·op(b) + β·c for 2-D arrays with unit stride along their rows.

    .. math:: C \leftarrow \alpha\, \mathrm{op}(A)\, \mathrm{op}(B) + \beta\, C, \qquad
              \mathrm{op}(X) = X \text{ or } X^\top

    Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ, so BLAS gets the operands
    swapped; leading dimensions come from the row strides. This Python body serves
    ``NUMBA_DISABLE_JIT=1``; compiled code uses the overload below.
    """
    x = a.T if ta else a
    y = b.T if tb else b
    c[...] = alpha * np.dot(x, y) + beta * c


@overload(_gemm, jit_options={"fastmath": _FASTMATH})
def _gemm_overload(a, b, c, ta, tb, alpha, beta):
    def impl(a, b, c, ta, tb, alpha, beta):
        M, N = c.shape
        K = a.shape[0] if ta else a.shape[1]
        if (a.strides[1] != a.itemsize or b.strides[1] != b.itemsize or c.strides[1] != c.itemsize
                or (b.shape[1] if tb else b.shape[0]) != K or (a.shape[1] if ta else a.shape[0]) != M
                or (b.shape[0] if tb else b.shape[1]) != N):
            raise ValueError("_gemm: operands must be row-major with conformable shapes")
        if M == 0 or N == 0:
            return
        # BLAS needs leading dimensions ≥ 1 even for an empty or single row
        lda = max(a.strides[0] // a.itemsize, a.shape[1], 1)
        ldb = max(b.strides[0] // b.itemsize, b.shape[1], 1)
        ldc = max(c.strides[0] // c.itemsize, N, 1)
        if K == 0:
            for i in range(M):
                for j in range(N):
                    c[i, j] = beta * c[i, j]
            return
        status = _xxgemm(tb, ta, N, M, K, alpha, b, ldb, a, lda, beta, c, ldc)
        if status != 0:
            raise RuntimeError("BLAS ?gemm is not available (SciPy's cython_blas)")
    return impl


# ---------------------------------------------------------------------------
# Block helpers (serial). A score block is stored transposed, Sᵀ[c, r] = k_c · q_r
# (c: key column of the block, r: query row), so that every elementwise pass runs with the
# queries r as the contiguous, vectorised axis and the reductions over keys c are plain
# per-lane accumulations in a fixed order. Entry (c, r) is allowed when okq[r] (valid query),
# okk[koff + c] (valid key) and c ∈ [lo1[r], hi1[r]) ∪ [lo2[r], hi2[r]).
# ---------------------------------------------------------------------------

@njit(**_JIT)
def _zero(a):
    """a[c] ← 0 for every c of a 1-D array (a loop: cheaper to compile than a slice fill)."""
    for c in range(a.shape[0]):
        a[c] = 0


@njit(**_JIT)
def _transpose_into(x, xt):
    """xt[e, r] ← x[r, e] (a small block: query rows become columns)."""
    n, E = x.shape
    for r in range(n):
        row = x[r]
        for e in range(E):
            xt[e, r] = row[e]


@njit(**_JIT)
def _col_max(st, lo1, hi1, lo2, hi2, okq, okk, koff, m, cnt):
    r"""Per query r: m_r = max over allowed c of Sᵀ[c, r], and cnt_r = the number of allowed c."""
    nk, nq = st.shape
    for r in range(nq):
        m[r] = -np.inf
        cnt[r] = 0
    for c in range(nk):
        okc = okk[koff + c]
        row = st[c]
        for r in range(nq):
            al = okc & okq[r] & (((c >= lo1[r]) & (c < hi1[r])) | ((c >= lo2[r]) & (c < hi2[r])))
            # a disallowed entry leaves m_r as it is (never compared with −inf as a guard)
            m[r] = max(m[r], row[r] if al else m[r])
            cnt[r] += np.int64(al)


def _exp_cols_f64(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell):
    """float64 body of :func:`_exp_cols` (Taylor degree 13, relative error < 3e-16)."""
    nk, nq = st.shape
    ib = ibuf[:nq]
    pw = ib.view(np.float64)
    for r in range(nq):
        ell[r] = 0
    for c in range(nk):
        okc = okk[koff + c]
        row = st[c]
        for r in range(nq):
            al = okc & okq[r] & (((c >= lo1[r]) & (c < hi1[r])) | ((c >= lo2[r]) & (c < hi2[r])))
            # x = a·(s − c0_r) − b_r, ≤ 0 on allowed entries; clamped to [−708, 0] so that the
            # exponent bits below stay valid on the disallowed ones (set to 0 anyway)
            x = a * (row[r] - c0[r]) - b[r]
            xc = min(max(x, _EXP_MIN64), 0.0)
            # k = round(x·log2 e); r' = x − k·ln 2 in two parts (Cody–Waite)
            kf = np.floor(xc * _LOG2E + 0.5)
            t = (xc - kf * _LN2_HI) - kf * _LN2_LO
            # e^{r'} = Σ_{n ≤ 13} r'^n / n!  (Horner)
            p = 1.6059043836821613e-10
            p = p * t + 2.08767569878681e-09
            p = p * t + 2.505210838544172e-08
            p = p * t + 2.755731922398589e-07
            p = p * t + 2.755731922398589e-06
            p = p * t + 2.48015873015873e-05
            p = p * t + 0.0001984126984126984
            p = p * t + 0.001388888888888889
            p = p * t + 0.008333333333333333
            p = p * t + 0.041666666666666664
            p = p * t + 0.16666666666666666
            p = p * t + 0.5
            p = p * t + 1.0
            p = p * t + 1.0
            row[r] = p if (al & (x >= _EXP_MIN64)) else 0.0
            # 2^k as IEEE bits: (k + 1023) << 52
            ib[r] = (np.int64(kf) + 1023) << 52
        for r in range(nq):
            row[r] = row[r] * pw[r]
            ell[r] += row[r]


def _exp_cols_f32(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell):
    """float32 body of :func:`_exp_cols` (Taylor degree 7, < 2 ulp).

    The argument x = a·(s − c0) − b is formed in float64 and rounded once: with |a·s| ~ 1e3 a
    float32 product would be off by ulp(1e3) ≈ 6e-5, and every weight with it; the
    polynomial, like the GEMMs and the sums, runs in float32."""
    nk, nq = st.shape
    ib32 = ibuf.view(np.int32)[:nq]
    pw32 = ib32.view(np.float32)
    for r in range(nq):
        ell[r] = 0
    for c in range(nk):
        okc = okk[koff + c]
        row = st[c]
        for r in range(nq):
            al = okc & okq[r] & (((c >= lo1[r]) & (c < hi1[r])) | ((c >= lo2[r]) & (c < hi2[r])))
            x = np.float32(a * (np.float64(row[r]) - c0[r]) - b[r])
            xc = min(max(x, _F32_EXP_MIN), _F32_ZERO)
            kf = np.floor(xc * _F32_LOG2E + _F32_HALF)
            t = (xc - kf * _F32_LN2_HI) - kf * _F32_LN2_LO
            # e^{r'} = Σ_{n ≤ 7} r'^n / n!  (Horner, float32)
            p = _F32_C7
            p = p * t + _F32_C6
            p = p * t + _F32_C5
            p = p * t + _F32_C4
            p = p * t + _F32_C3
            p = p * t + _F32_HALF
            p = p * t + _F32_ONE
            p = p * t + _F32_ONE
            row[r] = p if (al & (x >= _F32_EXP_MIN)) else _F32_ZERO
            # 2^k as IEEE bits: (k + 127) << 23
            ib32[r] = (np.int32(kf) + np.int32(127)) << np.int32(23)
        for r in range(nq):
            row[r] = row[r] * pw32[r]
            ell[r] += row[r]


def _exp_cols(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell):
    r"""Sᵀ[c, r] ← exp(a·(Sᵀ[c, r] − c0_r) − b_r) on allowed entries, 0 elsewhere, in place,
    and ℓ_r = Σ_c Sᵀ[c, r] (the new values, accumulated over c in order, one lane per query).

    .. math:: e^{x} = 2^{k}\, e^{t}, \quad k = \mathrm{round}(x \log_2 e), \quad
              t = x - k \ln 2 \in [-\tfrac{\ln 2}{2}, \tfrac{\ln 2}{2}]

    e^t is its Taylor polynomial and 2^k is built from its exponent bits in ``ibuf`` (int64,
    length ≥ the number of queries); arguments below the underflow limit give exactly 0. The
    forward shifts by the column maximum (c0 = m, b = 0: the largest weight is exactly
    e^0 = 1), the backward by the log-sum-exp (c0 = 0, b = lse). numba has no vector ``exp``
    without Intel's SVML; this loop vectorises. In compiled code the overload below picks the
    float32 or float64 body at compile time; this Python body serves ``NUMBA_DISABLE_JIT=1``.
    """
    if st.dtype == np.float32:
        _exp_cols_f32(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell)
    else:
        _exp_cols_f64(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell)


@overload(_exp_cols, jit_options={"fastmath": _FASTMATH})
def _exp_cols_overload(st, a, c0, b, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ell):
    return _exp_cols_f32 if st.dtype == types.float32 else _exp_cols_f64


@njit(**_JIT)
def _dscores(pt, dpt, delta_rows):
    r"""dPᵀ ← Pᵀ ⊙ (dPᵀ − δ) in place, :math:`\delta_r = \sum_e dO_{re} O_{re}` (minus the lse
    cotangent). Entries with P = 0 become 0 (dP is finite)."""
    nk, nq = pt.shape
    for c in range(nk):
        prow = pt[c]
        drow = dpt[c]
        for r in range(nq):
            drow[r] = prow[r] * (drow[r] - delta_rows[r])


# ---------------------------------------------------------------------------
# Row ranges of the two layouts
# ---------------------------------------------------------------------------
# LOCAL: query block [i0, i1) of the sequence, keys [j0, j1) (contiguous in k and v).
# GROUPS: group r = positions r, r + R, r + 2R, …, gathered into contiguous buffers; query
# block [p0, p1) of the group, keys p' ∈ [0, n) (or [0, p1) when causal).

LOCAL = 0
GROUPS = 1


@njit(**_JIT)
def _local_block(T, W, causal, QB, blk):
    """Query rows [i0, i1) of block ``blk`` and the key range [j0, j1) they can reach."""
    i0 = blk * QB
    i1 = min(T, i0 + QB)
    j0 = max(0, i0 - W)
    j1 = i1 if causal else min(T, i1 + W)
    return i0, i1, j0, j1


@njit(**_JIT)
def _local_ranges(i0, nq, j0, j1, W, causal, lo1, hi1, lo2, hi2):
    """Allowed columns of each row: keys max(j0, i − W) … min(j1, i + W + 1) (i + 1 causal)."""
    for r in range(nq):
        i = i0 + r
        lo1[r] = max(j0, i - W) - j0
        hi1[r] = (i + 1 if causal else min(j1, i + W + 1)) - j0
        lo2[r] = hi1[r]
        hi2[r] = hi1[r]


@njit(**_JIT)
def _group_ranges(p0, nq, n, gap, causal, lo1, hi1, lo2, hi2):
    """Allowed columns p' of query rows p0 … p0 + nq − 1 of a group of n positions.

    All p' (p' ≤ p when causal), minus |p − p'| < gap (gap = 2 removes the keys at distances
    0 and R, which the local pass of the sparse pattern already counted).
    """
    for r in range(nq):
        p = p0 + r
        hi = p + 1 if causal else n
        if gap == 0:
            lo1[r] = 0
            hi1[r] = hi
            lo2[r] = hi
            hi2[r] = hi
        else:
            lo1[r] = 0
            hi1[r] = min(hi, max(0, p - gap + 1))
            lo2[r] = max(hi1[r], min(hi, p + gap))
            hi2[r] = hi


@njit(**_JIT)
def _gather_rows(x, bh, r, R, n, g):
    """g[p] ← x[bh, r + p·R] for p < n (the rows of group r made contiguous)."""
    E = x.shape[2]
    for p in range(n):
        src = x[bh, r + p * R]
        dst = g[p]
        for e in range(E):
            dst[e] = src[e]


@njit(**_JIT)
def _n_tasks(layout, BH, T, P, QB, causal):
    """Tasks per head: query blocks (LOCAL) or groups (GROUPS), and the key buffer length."""
    if layout == LOCAL:
        return (T + QB - 1) // QB, min(T, QB + P if causal else QB + 2 * P)
    return min(P, T), (T + P - 1) // P


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------

@njit(**_JIT)
def _fwd_block(qb, kr, vr, okq, okk, koff, lo1, hi1, lo2, hi2, scale, merge,
               sbuf, obuf, qtbuf, ibuf, zeros, rm, rl, cnt, out, lse, seen, bh, row0, rstride):
    r"""One query block: scores, weights, output rows ``row0 + rr·rstride`` of head ``bh``.

    .. math:: S^\top = K_{rng} Q_{blk}^\top, \qquad p_{rc} = e^{\alpha (s_{rc} - m_r)}, \qquad
              o_r = \frac{\sum_c p_{rc} v_c}{\ell_r}, \qquad \mathrm{lse}_r = \alpha m_r + \log \ell_r

    With ``merge`` (the far part of the sparse pattern), rows that the local pass already
    filled are combined in log-sum-exp form:
    :math:`\mathrm{lse} = \log(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B})`,
    :math:`o = e^{\mathrm{lse}_A - \mathrm{lse}} o_A + e^{\mathrm{lse}_B - \mathrm{lse}} o_B`.
    """
    nq, D = qb.shape
    nk = kr.shape[0]
    Dv = vr.shape[1]
    # Sᵀ = K_rng Q_blkᵀ: both operands row-major, BLAS's fastest layout (Q_blk is copied
    # transposed, nq·D numbers); α is applied inside the exponential
    qt = qtbuf[:D * nq].reshape((D, nq))
    _transpose_into(qb, qt)
    st = sbuf[:nk * nq].reshape((nk, nq))
    np.dot(kr, qt, st)                                            # (nk, nq)
    # m_r = max allowed s_rc;  p_rc = e^{α (s_rc − m_r)};  ℓ_r = Σ_c p_rc
    _col_max(st, lo1, hi1, lo2, hi2, okq, okk, koff, rm, cnt)
    _exp_cols(st, scale, rm, zeros, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, rl)
    # O_blk = P V_rng (unnormalised)
    o = obuf[:nq * Dv].reshape((nq, Dv))
    np.dot(st.T, vr, o)                                           # (nq, Dv)
    for rr in range(nq):
        i = row0 + rr * rstride
        orow = out[bh, i]
        has_keys = cnt[rr] > 0                                    # some allowed key was seen
        lse_b = scale * rm[rr] + math.log(rl[rr]) if has_keys else 0.0
        if merge and seen[bh, i]:
            if has_keys:
                # the local part A (normalised o_A, lse_A) merged with this part B
                lse_a = lse[bh, i]
                mx = max(lse_a, lse_b)
                tot = mx + math.log(math.exp(lse_a - mx) + math.exp(lse_b - mx))
                wa = math.exp(lse_a - tot)
                wb = math.exp(scale * rm[rr] - tot)               # = e^{lse_B − lse} / ℓ_B
                for e in range(Dv):
                    orow[e] = wa * orow[e] + wb * o[rr, e]
                lse[bh, i] = tot
        elif has_keys:
            # o_i = O_i / ℓ_i ;  lse_i = α m_i + log ℓ_i
            inv = 1.0 / rl[rr]
            for e in range(Dv):
                orow[e] = o[rr, e] * inv
            lse[bh, i] = lse_b
            seen[bh, i] = True
        elif not merge:
            _zero(orow)                                           # no allowed key: 0 (D4)
            lse[bh, i] = 0
            seen[bh, i] = False


@njit(**_PJIT)
def attend_fwd(q, k, v, ok, H, layout, P, gap, causal, merge, scale, QB, nchunk, out, lse, seen):
    r"""Forward of a pattern in one layout: fills out (BH, T, Dv), lse (BH, T), seen (BH, T).

    LOCAL: local(W = P) attention, one task per query block. GROUPS: atrous(R = P) attention,
    one task per (head, group); with ``gap = 2, merge = True`` the group keys beyond distance
    R are merged into what the LOCAL pass wrote (the sparse pattern). ``prange`` runs over
    chunks of independent tasks; each output row is written by exactly one task.
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    nper, nkmax = _n_tasks(layout, BH, T, P, QB, causal)
    ntask = BH * nper
    zero = np.int64(0)
    for chunk in prange(nchunk):
        c64 = np.int64(chunk)
        sbuf = np.empty(QB * nkmax, q.dtype)
        obuf = np.empty(QB * Dv, q.dtype)
        ibuf = np.empty(QB, np.int64)
        lo1 = np.empty(QB, np.int64)
        hi1 = np.empty(QB, np.int64)
        lo2 = np.empty(QB, np.int64)
        hi2 = np.empty(QB, np.int64)
        qtbuf = np.empty(QB * D, q.dtype)
        zeros = np.zeros(QB, np.float64)
        rm = np.empty(QB, np.float64)
        rl = np.empty(QB, np.float64)
        cnt = np.empty(QB, np.int64)
        nbuf = nkmax if layout == GROUPS else 0
        gq = np.empty((nbuf, D), q.dtype)
        gk = np.empty((nbuf, D), q.dtype)
        gv = np.empty((nbuf, Dv), q.dtype)
        gok = np.empty(nbuf, np.bool_)
        for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
            bh = t // nper
            b = bh // H
            if layout == LOCAL:
                i0, i1, j0, j1 = _local_block(T, P, causal, QB, t - bh * nper)
                _local_ranges(i0, i1 - i0, j0, j1, P, causal, lo1, hi1, lo2, hi2)
                _fwd_block(q[bh, i0:i1], k[bh, j0:j1], v[bh, j0:j1], ok[b, i0:i1], ok[b], j0,
                           lo1, hi1, lo2, hi2, scale, merge, sbuf, obuf, qtbuf, ibuf, zeros, rm, rl, cnt,
                           out, lse, seen, bh, i0, np.int64(1))
            else:
                r = t - bh * nper
                n = (T - 1 - r) // P + 1                          # length of group r
                _gather_rows(q, bh, r, P, n, gq)
                _gather_rows(k, bh, r, P, n, gk)
                _gather_rows(v, bh, r, P, n, gv)
                for p in range(n):
                    gok[p] = ok[b, r + p * P]
                for p0 in range(0, n, QB):
                    p1 = min(n, p0 + QB)
                    nk = p1 if causal else n
                    _group_ranges(p0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)
                    _fwd_block(gq[p0:p1], gk[:nk], gv[:nk], gok[p0:p1], gok, zero,
                               lo1, hi1, lo2, hi2, scale, merge, sbuf, obuf, qtbuf, ibuf, zeros, rm,
                               rl, cnt, out, lse, seen, bh, r + p0 * P, P)


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------

@njit(**_JIT)
def _bwd_block(qb, kr, vr, dob, okq, okk, koff, lo1, hi1, lo2, hi2, scale, lse_rows, delta_rows,
               pbuf, dpbuf, qtbuf, dotbuf, ibuf, zeros, ellbuf, dqb, dkr, dvr):
    r"""One query block of the VJP; *adds* into the row views dqb, dkr and dvr:

    .. math:: P = e^{\alpha S - \mathrm{lse}}, \quad dP = dO\,V^\top, \quad
              dS = P \odot (dP - \delta), \quad dQ = \alpha\, dS\,K, \quad
              dK \mathrel{+}= \alpha\, dS^\top Q, \quad dV \mathrel{+}= P^\top dO

    computed transposed (Sᵀ = K Qᵀ, dPᵀ = V dOᵀ, dK = dSᵀ Q, dV = Pᵀ dO, dQ = (dSᵀ)ᵀ K), so that
    every product has row-major operands.
    """
    nq, D = qb.shape
    nk = kr.shape[0]
    Dv = vr.shape[1]
    qt = qtbuf[:D * nq].reshape((D, nq))
    dot = dotbuf[:Dv * nq].reshape((Dv, nq))
    _transpose_into(qb, qt)
    _transpose_into(dob, dot)
    pt = pbuf[:nk * nq].reshape((nk, nq))
    dpt = dpbuf[:nk * nq].reshape((nk, nq))
    # Sᵀ = K_rng Q_blkᵀ, then P_rc = e^{α s_rc − lse_r} on the allowed entries
    np.dot(kr, qt, pt)
    _exp_cols(pt, scale, zeros, lse_rows, lo1, hi1, lo2, hi2, okq, okk, koff, ibuf, ellbuf)
    # dPᵀ = V_rng dO_blkᵀ ;  dS = P ⊙ (dP − δ)
    np.dot(vr, dot, dpt)
    _dscores(pt, dpt, delta_rows)
    # dQ_blk += α dS K_rng ;  dK_rng += α dSᵀ Q_blk ;  dV_rng += Pᵀ dO_blk  (BLAS, β = 1)
    _gemm(dpt, kr, dqb, 1, 0, scale, 1.0)
    _gemm(dpt, qb, dkr, 0, 0, scale, 1.0)
    _gemm(pt, dob, dvr, 0, 0, 1.0, 1.0)


@njit(**_PJIT)
def attend_bwd(q, k, v, ok, H, layout, P, gap, causal, scale, QB, nchunk, lse, delta, do,
               dq, dk, dv):
    r"""Backward of :func:`attend_fwd` for one layout; *adds* into dq, dk and dv.

    LOCAL: blocks run in ``ncolor`` colours; blocks of one colour reach disjoint key ranges
    (b and b + c do when c·QB ≥ the reach QB + 2W), so their dK, dV updates never touch the
    same row. GROUPS: one task per (head, group), which owns every row of its group.
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    nper, nkmax = _n_tasks(layout, BH, T, P, QB, causal)
    ncolor = min(nper, (nkmax + QB - 1) // QB) if layout == LOCAL else 1
    zero = np.int64(0)
    for color in range(ncolor):
        nb_c = (nper - color + ncolor - 1) // ncolor              # tasks of this colour per head
        ntask = BH * nb_c
        for chunk in prange(nchunk):
            c64 = np.int64(chunk)
            pbuf = np.empty(QB * nkmax, q.dtype)
            dpbuf = np.empty(QB * nkmax, q.dtype)
            qtbuf = np.empty(QB * D, q.dtype)
            dotbuf = np.empty(QB * Dv, q.dtype)
            zeros = np.zeros(QB, np.float64)
            ellbuf = np.empty(QB, np.float64)           # row sums of P, unused by the VJP
            ibuf = np.empty(QB, np.int64)
            lo1 = np.empty(QB, np.int64)
            hi1 = np.empty(QB, np.int64)
            lo2 = np.empty(QB, np.int64)
            hi2 = np.empty(QB, np.int64)
            nbuf = nkmax if layout == GROUPS else 0
            gq = np.empty((nbuf, D), q.dtype)
            gk = np.empty((nbuf, D), q.dtype)
            gv = np.empty((nbuf, Dv), q.dtype)
            gdo = np.empty((nbuf, Dv), q.dtype)
            gdk = np.empty((nbuf, D), q.dtype)
            gdv = np.empty((nbuf, Dv), q.dtype)
            glse = np.empty(nbuf, lse.dtype)
            gdelta = np.empty(nbuf, delta.dtype)
            gok = np.empty(nbuf, np.bool_)
            for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
                bh = t // nb_c
                b = bh // H
                tt = color + (t - bh * nb_c) * ncolor
                if layout == LOCAL:
                    i0, i1, j0, j1 = _local_block(T, P, causal, QB, tt)
                    _local_ranges(i0, i1 - i0, j0, j1, P, causal, lo1, hi1, lo2, hi2)
                    _bwd_block(q[bh, i0:i1], k[bh, j0:j1], v[bh, j0:j1], do[bh, i0:i1],
                               ok[b, i0:i1], ok[b], j0, lo1, hi1, lo2, hi2, scale,
                               lse[bh, i0:i1], delta[bh, i0:i1], pbuf, dpbuf, qtbuf, dotbuf, ibuf,
                               zeros, ellbuf, dq[bh, i0:i1], dk[bh, j0:j1], dv[bh, j0:j1])
                else:
                    r = tt
                    n = (T - 1 - r) // P + 1
                    _gather_rows(q, bh, r, P, n, gq)
                    _gather_rows(k, bh, r, P, n, gk)
                    _gather_rows(v, bh, r, P, n, gv)
                    _gather_rows(do, bh, r, P, n, gdo)
                    for pp in range(n):
                        i = r + pp * P
                        gok[pp] = ok[b, i]
                        glse[pp] = lse[bh, i]
                        gdelta[pp] = delta[bh, i]
                        _zero(gdk[pp])
                        _zero(gdv[pp])
                    for p0 in range(0, n, QB):
                        p1 = min(n, p0 + QB)
                        nk = p1 if causal else n
                        _group_ranges(p0, p1 - p0, n, gap, causal, lo1, hi1, lo2, hi2)
                        # dq rows r + p·R of this block: a strided view (leading dim R·D)
                        _bwd_block(gq[p0:p1], gk[:nk], gv[:nk], gdo[p0:p1], gok[p0:p1], gok, zero,
                                   lo1, hi1, lo2, hi2, scale, glse[p0:p1], gdelta[p0:p1],
                                   pbuf, dpbuf, qtbuf, dotbuf, ibuf, zeros, ellbuf,
                                   dq[bh, r + p0 * P:r + (p1 - 1) * P + 1:P], gdk[:nk], gdv[:nk])
                    for pp in range(n):
                        dkrow = dk[bh, r + pp * P]
                        dvrow = dv[bh, r + pp * P]
                        for e in range(D):
                            dkrow[e] += gdk[pp, e]
                        for e in range(Dv):
                            dvrow[e] += gdv[pp, e]
