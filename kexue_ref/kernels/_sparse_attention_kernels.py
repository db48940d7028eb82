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
small GEMM, S = Q_blk K_rngᵀ (``np.dot`` into a reused buffer, i.e. BLAS), and so is the
output O_blk = P V_rng. The masking, the max-shifted exponential and the row sums are scalar
loops written so that LLVM vectorises them: the exponential is the polynomial
:func:`_exp_range` (numba has no vector ``exp`` without Intel's SVML), and sums use eight
interleaved accumulators in a fixed order, because the flag set of ``_config`` does not allow
re-association.

Parallelism (decision D7): ``prange`` runs over chunks of independent tasks (a task is a query
block, or a whole group); a row's max, exp and sum are serial inside one task. Backward passes
that accumulate into dK and dV run the local blocks in colours whose key ranges are disjoint,
and give each atrous group to one task, so no two threads ever write the same row. The
results do not depend on the number of threads.

Fully masked rows (no valid key, or an invalid query) are detected by counting the allowed
keys seen; they give output 0, log-sum-exp 0 and zero cotangents. No comparison with −inf is
used as a guard.
"""
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

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
# Row helpers (serial, inlined into the kernels)
# ---------------------------------------------------------------------------

def _exp_range_f64(row, lo, hi, a, c0, b, okrow, ooff, ibuf):
    """float64 body of :func:`_exp_range` (Taylor degree 13, relative error < 3e-16)."""
    n = hi - lo
    if n <= 0:
        return
    x_ = row[lo:hi]
    ok_ = okrow[ooff + lo:ooff + hi]
    ib = ibuf[:n]
    for c in range(n):
        # x = a·(s − c0) − b ≤ 0
        x = a * (x_[c] - c0) - b
        xc = max(x, _EXP_MIN64)
        # k = round(x·log2 e); r = x − k·ln 2 in two parts (Cody–Waite)
        kf = np.floor(xc * _LOG2E + 0.5)
        r = (xc - kf * _LN2_HI) - kf * _LN2_LO
        # e^r = Σ_{n ≤ 13} r^n / n!  (Horner)
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.755731922398589e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        keep = ok_[c] & (x >= _EXP_MIN64)
        x_[c] = p if keep else 0.0
        # 2^k as IEEE bits: (k + 1023) << 52
        ib[c] = (np.int64(kf) + 1023) << 52
    pw = ib.view(np.float64)
    for c in range(n):
        x_[c] = x_[c] * pw[c]


def _exp_range_f32(row, lo, hi, a, c0, b, okrow, ooff, ibuf):
    """float32 body of :func:`_exp_range` (Taylor degree 7, < 2 ulp).

    The argument x = a·(s − c0) − b is formed in float64 and rounded once: with |a·s| ~ 1e3 a float32
    product would be off by ulp(1e3) ≈ 6e-5, and every weight with it; the polynomial, like
    the GEMMs and the sums, runs in float32."""
    n = hi - lo
    if n <= 0:
        return
    x_ = row[lo:hi]
    ok_ = okrow[ooff + lo:ooff + hi]
    ib32 = ibuf.view(np.int32)[:n]
    for c in range(n):
        x = np.float32(a * (np.float64(x_[c]) - c0) - b)
        xc = max(x, _F32_EXP_MIN)
        kf = np.floor(xc * _F32_LOG2E + _F32_HALF)
        r = (xc - kf * _F32_LN2_HI) - kf * _F32_LN2_LO
        # e^r = Σ_{n ≤ 7} r^n / n!  (Horner, float32)
        p = _F32_C7
        p = p * r + _F32_C6
        p = p * r + _F32_C5
        p = p * r + _F32_C4
        p = p * r + _F32_C3
        p = p * r + _F32_HALF
        p = p * r + _F32_ONE
        p = p * r + _F32_ONE
        keep = ok_[c] & (x >= _F32_EXP_MIN)
        x_[c] = p if keep else _F32_ZERO
        # 2^k as IEEE bits: (k + 127) << 23
        ib32[c] = (np.int32(kf) + np.int32(127)) << np.int32(23)
    pw32 = ib32.view(np.float32)
    for c in range(n):
        x_[c] = x_[c] * pw32[c]


def _exp_range(row, lo, hi, a, c0, b, okrow, ooff, ibuf):
    r"""row[c] ← exp(a·(row[c] − c0) − b) where okrow[ooff + c], else 0, for lo ≤ c < hi.

    .. math:: e^{x} = 2^{k}\, e^{r}, \quad k = \mathrm{round}(x \log_2 e), \quad
              r = x - k \ln 2 \in [-\tfrac{\ln 2}{2}, \tfrac{\ln 2}{2}]

    e^r is its Taylor polynomial and 2^k is built from its exponent bits in ``ibuf`` (int64,
    length ≥ hi − lo). Arguments below the underflow limit give exactly 0. Callers pass
    x ≤ 0, so nothing overflows: the forward shifts by the row maximum (c0 = m, b = 0, so the
    largest weight is exactly e^0 = 1), the backward by the log-sum-exp (c0 = 0, b = lse). The loops run over slices from index
    0, so numba needs no negative-index wrap-around and LLVM vectorises them. In compiled
    code the overload below picks the float32 or float64 body at compile time; this Python
    body serves ``NUMBA_DISABLE_JIT=1``.
    """
    if row.dtype == np.float32:
        _exp_range_f32(row, lo, hi, a, c0, b, okrow, ooff, ibuf)
    else:
        _exp_range_f64(row, lo, hi, a, c0, b, okrow, ooff, ibuf)


@overload(_exp_range, jit_options={"fastmath": _FASTMATH})
def _exp_range_overload(row, lo, hi, a, c0, b, okrow, ooff, ibuf):
    return _exp_range_f32 if row.dtype == types.float32 else _exp_range_f64


@njit(**_JIT)
def _masked_max(row, lo, hi, okrow, ooff, m, cnt):
    """(max(m, max of row[c] over allowed c in [lo, hi)), cnt + number of allowed c)."""
    n = hi - lo
    if n <= 0:
        return m, cnt
    x_ = row[lo:hi]
    ok_ = okrow[ooff + lo:ooff + hi]
    # four interleaved running maxima (a max is exact in any order); disallowed entries
    # are replaced by m itself, so they never win
    m0 = m1 = m2 = m3 = m
    c = 0
    while c + 4 <= n:
        cnt += np.int64(ok_[c]) + np.int64(ok_[c + 1]) + np.int64(ok_[c + 2]) + np.int64(ok_[c + 3])
        m0 = max(m0, x_[c] if ok_[c] else m0)
        m1 = max(m1, x_[c + 1] if ok_[c + 1] else m1)
        m2 = max(m2, x_[c + 2] if ok_[c + 2] else m2)
        m3 = max(m3, x_[c + 3] if ok_[c + 3] else m3)
        c += 4
    while c < n:
        cnt += np.int64(ok_[c])
        m0 = max(m0, x_[c] if ok_[c] else m0)
        c += 1
    return max(max(m0, m1), max(m2, m3)), cnt


@njit(**_JIT)
def _range_sum(row, lo, hi):
    """Σ_{lo ≤ c < hi} row[c] with eight interleaved accumulators (fixed order, vectorisable)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = row[0] * 0
    n = hi - lo
    if n <= 0:
        return s0
    x_ = row[lo:hi]
    c = 0
    while c + 8 <= n:
        s0 += x_[c]
        s1 += x_[c + 1]
        s2 += x_[c + 2]
        s3 += x_[c + 3]
        s4 += x_[c + 4]
        s5 += x_[c + 5]
        s6 += x_[c + 6]
        s7 += x_[c + 7]
        c += 8
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while c < n:
        s += x_[c]
        c += 1
    return s


@njit(**_JIT)
def _zero(a):
    """a[c] ← 0 for every c of a 1-D array (a loop: cheaper to compile than a slice fill)."""
    for c in range(a.shape[0]):
        a[c] = 0


@njit(**_JIT)
def _zero_outside(row, lo1, hi1, lo2, hi2):
    """row[c] ← 0 outside [lo1, hi1) ∪ [lo2, hi2) (hi1 ≤ lo2)."""
    _zero(row[:lo1])
    _zero(row[hi1:lo2])
    _zero(row[hi2:])


@njit(**_JIT)
def _softmax_rows(s, nq, lo1, hi1, lo2, hi2, okq, okk, koff, scale, ibuf, rm, rl, seen):
    r"""Rows of a score block into unnormalised weights, in place.

    For row r the allowed columns are [lo1[r], hi1[r]) ∪ [lo2[r], hi2[r]) where okk[koff + c]
    (valid key), and none when okq[r] is False (invalid query):

    .. math:: m_r = \max_{c\ \mathrm{allowed}} s_{rc}, \qquad
              p_{rc} = e^{\,\alpha (s_{rc} - m_r)}, \qquad \ell_r = \sum_c p_{rc}

    with α = 1/√D; disallowed entries become 0. Writes rm = α·m, rl = ℓ and seen = [some key
    allowed]; an unseen row is all 0 (its output will be 0, D4).
    """
    for r in range(nq):
        row = s[r]
        if not okq[r]:
            _zero(row)
            seen[r] = False
            continue
        m, cnt = _masked_max(row, lo1[r], hi1[r], okk, koff, -np.inf, np.int64(0))
        m, cnt = _masked_max(row, lo2[r], hi2[r], okk, koff, m, cnt)
        if cnt == 0:                      # no allowed key seen: a fully masked row
            _zero(row)
            seen[r] = False
            continue
        seen[r] = True
        _zero_outside(row, lo1[r], hi1[r], lo2[r], hi2[r])
        # p = e^{α (s − m)} on the allowed entries
        _exp_range(row, lo1[r], hi1[r], scale, m, 0.0, okk, koff, ibuf)
        _exp_range(row, lo2[r], hi2[r], scale, m, 0.0, okk, koff, ibuf)
        rm[r] = scale * m
        # ℓ = Σ_c p_rc
        rl[r] = _range_sum(row, lo1[r], hi1[r]) + _range_sum(row, lo2[r], hi2[r])


@njit(**_JIT)
def _probs_rows(s, nq, lo1, hi1, lo2, hi2, okq, okk, koff, scale, lse_rows, ibuf):
    r"""Rebuild P from the scores and the forward's row log-sum-exp, in place:
    :math:`P_{rc} = e^{\alpha s_{rc} - \mathrm{lse}_r}` on allowed entries, 0 elsewhere."""
    for r in range(nq):
        row = s[r]
        if not okq[r]:
            _zero(row)
            continue
        _zero_outside(row, lo1[r], hi1[r], lo2[r], hi2[r])
        _exp_range(row, lo1[r], hi1[r], scale, 0.0, lse_rows[r], okk, koff, ibuf)
        _exp_range(row, lo2[r], hi2[r], scale, 0.0, lse_rows[r], okk, koff, ibuf)


@njit(**_JIT)
def _dscores(p, dp, nq, nk, delta_rows):
    r"""dp ← P ⊙ (dP − δ) in place, :math:`\delta_r = \sum_e dO_{re} O_{re}` (minus the lse
    cotangent). Entries with P = 0 become 0 (dP is finite)."""
    for r in range(nq):
        d = delta_rows[r]
        for c in range(nk):
            dp[r, c] = p[r, c] * (dp[r, c] - d)


# ---------------------------------------------------------------------------
# Local pattern: |i − j| ≤ W (and j ≤ i when causal), query blocks of QB rows
# ---------------------------------------------------------------------------

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


@njit(**_PJIT)
def local_fwd(q, k, v, ok, H, W, causal, scale, QB, nchunk, out, lse, seen):
    r"""Forward of local attention: out (BH, T, Dv), lse (BH, T) and seen (BH, T) filled.

    .. math:: o_i = \frac{\sum_{j:\,|i-j| \le W} e^{\alpha s_{ij} - \alpha m_i} v_j}{\ell_i},
              \qquad \mathrm{lse}_i = \alpha m_i + \log \ell_i
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    nblk = (T + QB - 1) // QB
    ntask = BH * nblk
    nkmax = min(T, QB + W if causal else QB + 2 * W)
    for chunk in prange(nchunk):
        c64 = np.int64(chunk)
        sbuf = np.empty(QB * nkmax, q.dtype)
        obuf = np.empty(QB * Dv, q.dtype)
        ibuf = np.empty(nkmax, np.int64)
        lo1 = np.empty(QB, np.int64)
        hi1 = np.empty(QB, np.int64)
        lo2 = np.empty(QB, np.int64)
        hi2 = np.empty(QB, np.int64)
        rm = np.empty(QB, np.float64)
        rl = np.empty(QB, np.float64)
        rseen = np.empty(QB, np.bool_)
        for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
            bh = t // nblk
            b = bh // H
            i0, i1, j0, j1 = _local_block(T, W, causal, QB, t - bh * nblk)
            nq = i1 - i0
            nk = j1 - j0
            # S = Q_blk K_rngᵀ (unscaled; α is applied inside the exponential)
            s = sbuf[:nq * nk].reshape((nq, nk))
            np.dot(q[bh, i0:i1], k[bh, j0:j1].T, s)                 # (nq, nk)
            _local_ranges(i0, nq, j0, j1, W, causal, lo1, hi1, lo2, hi2)
            _softmax_rows(s, nq, lo1, hi1, lo2, hi2, ok[b, i0:i1], ok[b], j0, scale, ibuf,
                          rm, rl, rseen)
            # O_blk = P V_rng, then o_i = O_i / ℓ_i
            o = obuf[:nq * Dv].reshape((nq, Dv))
            np.dot(s, v[bh, j0:j1], o)                              # (nq, Dv)
            ob = out[bh, i0:i1]                                     # (nq, Dv) view
            for r in range(nq):
                i = i0 + r
                seen[bh, i] = rseen[r]
                if rseen[r]:
                    inv = 1.0 / rl[r]
                    for e in range(Dv):
                        ob[r, e] = o[r, e] * inv
                    # lse_i = α m_i + log ℓ_i
                    lse[bh, i] = rm[r] + math.log(rl[r])
                else:
                    _zero(ob[r])
                    lse[bh, i] = 0


@njit(**_PJIT)
def local_bwd(q, k, v, ok, H, W, causal, scale, QB, nchunk, lse, delta, do, dq, dk, dv):
    r"""Backward of local attention; dq is overwritten, dk and dv are *added to*.

    .. math:: P_{ij} = e^{\alpha s_{ij} - \mathrm{lse}_i}, \quad dP = dO\,V^\top, \quad
              dS = P \odot (dP - \delta), \quad dQ = \alpha\, dS\,K, \quad
              dK = \alpha\, dS^\top Q, \quad dV = P^\top dO

    Blocks are run in ``ncolor`` colours: blocks of one colour reach disjoint key ranges, so
    the dK, dV updates of a colour never touch the same row.
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    nblk = (T + QB - 1) // QB
    reach = QB + W if causal else QB + 2 * W
    nkmax = min(T, reach)
    # blocks b and b + c reach disjoint keys when c·QB ≥ reach
    ncolor = min(nblk, (reach + QB - 1) // QB)
    for color in range(ncolor):
        nb_c = (nblk - color + ncolor - 1) // ncolor        # blocks of this colour per head
        ntask = BH * nb_c
        for chunk in prange(nchunk):
            c64 = np.int64(chunk)
            pbuf = np.empty(QB * nkmax, q.dtype)
            dpbuf = np.empty(QB * nkmax, q.dtype)
            gq = np.empty((QB, D), q.dtype)
            gk = np.empty((nkmax, D), q.dtype)
            gv = np.empty((nkmax, Dv), q.dtype)
            ibuf = np.empty(nkmax, np.int64)
            lo1 = np.empty(QB, np.int64)
            hi1 = np.empty(QB, np.int64)
            lo2 = np.empty(QB, np.int64)
            hi2 = np.empty(QB, np.int64)
            for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
                bh = t // nb_c
                b = bh // H
                blk = color + (t - bh * nb_c) * ncolor
                i0, i1, j0, j1 = _local_block(T, W, causal, QB, blk)
                nq = i1 - i0
                nk = j1 - j0
                p = pbuf[:nq * nk].reshape((nq, nk))
                dp = dpbuf[:nq * nk].reshape((nq, nk))
                # S = Q_blk K_rngᵀ, then P_ij = e^{α s_ij − lse_i} on allowed entries
                np.dot(q[bh, i0:i1], k[bh, j0:j1].T, p)
                _local_ranges(i0, nq, j0, j1, W, causal, lo1, hi1, lo2, hi2)
                _probs_rows(p, nq, lo1, hi1, lo2, hi2, ok[b, i0:i1], ok[b], j0, scale,
                            lse[bh, i0:i1], ibuf)
                # dP = dO_blk V_rngᵀ; dS = P ⊙ (dP − δ)
                np.dot(do[bh, i0:i1], v[bh, j0:j1].T, dp)
                _dscores(p, dp, nq, nk, delta[bh, i0:i1])
                # dQ_blk = α dS K_rng
                np.dot(dp, k[bh, j0:j1], gq[:nq])
                dqb = dq[bh, i0:i1]                                 # (nq, D) view
                for r in range(nq):
                    for e in range(D):
                        dqb[r, e] = scale * gq[r, e]
                # dK_rng += α dSᵀ Q_blk ; dV_rng += Pᵀ dO_blk
                np.dot(dp.T, q[bh, i0:i1], gk[:nk])
                np.dot(p.T, do[bh, i0:i1], gv[:nk])
                dkb = dk[bh, j0:j1]                                 # (nk, D) view
                dvb = dv[bh, j0:j1]                                 # (nk, Dv) view
                for c in range(nk):
                    for e in range(D):
                        dkb[c, e] += scale * gk[c, e]
                    for e in range(Dv):
                        dvb[c, e] += gv[c, e]


# ---------------------------------------------------------------------------
# Atrous groups: positions j = r + p·R; attention over p inside each group
# ---------------------------------------------------------------------------

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
def _gather_group(x, bh, r, R, n, g):
    """g[p] ← x[bh, r + p·R] for p < n (the group's rows made contiguous)."""
    E = x.shape[2]
    for p in range(n):
        src = x[bh, r + p * R]
        dst = g[p]
        for e in range(E):
            dst[e] = src[e]


@njit(**_PJIT)
def group_fwd(q, k, v, ok, H, R, gap, causal, merge, scale, QB, nchunk, out, lse, seen):
    r"""Forward over the R atrous groups (one task per (head, group)).

    With ``merge=False`` it writes the atrous output: within group r,
    :math:`o_p = \sum_{p'} \mathrm{softmax}_{p'}(\alpha\, q_p \cdot k_{p'})\, v_{p'}`.
    With ``merge=True`` (the sparse pattern) ``out``, ``lse`` and ``seen`` already hold the
    local pass, and the group's keys (minus |p − p'| < gap) are merged in log-sum-exp form:

    .. math:: \mathrm{lse} = \log(e^{\mathrm{lse}_A} + e^{\mathrm{lse}_B}), \qquad
              o = e^{\mathrm{lse}_A - \mathrm{lse}}\, o_A + e^{\mathrm{lse}_B - \mathrm{lse}}\, o_B
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    ngroup = min(R, T)
    zero = np.int64(0)
    nmax = (T + R - 1) // R
    ntask = BH * ngroup
    for chunk in prange(nchunk):
        c64 = np.int64(chunk)
        gq = np.empty((nmax, D), q.dtype)
        gk = np.empty((nmax, D), q.dtype)
        gv = np.empty((nmax, Dv), q.dtype)
        gok = np.empty(nmax, np.bool_)
        sbuf = np.empty(QB * nmax, q.dtype)
        obuf = np.empty(QB * Dv, q.dtype)
        ibuf = np.empty(nmax, np.int64)
        lo1 = np.empty(QB, np.int64)
        hi1 = np.empty(QB, np.int64)
        lo2 = np.empty(QB, np.int64)
        hi2 = np.empty(QB, np.int64)
        rm = np.empty(QB, np.float64)
        rl = np.empty(QB, np.float64)
        rseen = np.empty(QB, np.bool_)
        for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
            bh = t // ngroup
            b = bh // H
            r = t - bh * ngroup
            n = (T - 1 - r) // R + 1                              # group length
            _gather_group(q, bh, r, R, n, gq)
            _gather_group(k, bh, r, R, n, gk)
            _gather_group(v, bh, r, R, n, gv)
            for p in range(n):
                gok[p] = ok[b, r + p * R]
            for p0 in range(0, n, QB):
                p1 = min(n, p0 + QB)
                nq = p1 - p0
                nk = p1 if causal else n
                # S = Q_grp[p0:p1] K_grpᵀ
                s = sbuf[:nq * nk].reshape((nq, nk))
                np.dot(gq[p0:p1], gk[:nk].T, s)                   # (nq, nk)
                _group_ranges(p0, nq, n, gap, causal, lo1, hi1, lo2, hi2)
                _softmax_rows(s, nq, lo1, hi1, lo2, hi2, gok[p0:p1], gok, zero, scale, ibuf,
                              rm, rl, rseen)
                o = obuf[:nq * Dv].reshape((nq, Dv))
                np.dot(s, gv[:nk], o)                             # (nq, Dv)
                for rr in range(nq):
                    i = r + (p0 + rr) * R
                    orow = out[bh, i]
                    if merge and seen[bh, i]:
                        if rseen[rr]:
                            # merge the local part A (normalised o_A, lse_A) with this part B
                            lse_b = rm[rr] + math.log(rl[rr])
                            lse_a = lse[bh, i]
                            mx = max(lse_a, lse_b)
                            tot = mx + math.log(math.exp(lse_a - mx) + math.exp(lse_b - mx))
                            wa = math.exp(lse_a - tot)
                            wb = math.exp(rm[rr] - tot)           # = e^{lse_B − lse} / ℓ_B
                            for e in range(Dv):
                                orow[e] = wa * orow[e] + wb * o[rr, e]
                            lse[bh, i] = tot
                    elif rseen[rr]:
                        inv = 1.0 / rl[rr]
                        for e in range(Dv):
                            orow[e] = o[rr, e] * inv
                        lse[bh, i] = rm[rr] + math.log(rl[rr])
                        seen[bh, i] = True
                    elif not merge:
                        _zero(orow)
                        lse[bh, i] = 0
                        seen[bh, i] = False


@njit(**_PJIT)
def group_bwd(q, k, v, ok, H, R, gap, causal, scale, QB, nchunk, lse, delta, do, dq, dk, dv):
    r"""Backward over the atrous groups; *adds* into dq, dk and dv (one task per (head, group),
    which owns every row of its group, so no two threads write the same row).

    .. math:: dS = P \odot (dP - \delta), \quad dQ \mathrel{+}= \alpha\, dS\,K, \quad
              dK \mathrel{+}= \alpha\, dS^\top Q, \quad dV \mathrel{+}= P^\top dO
    """
    BH, T, D = q.shape
    Dv = v.shape[2]
    ngroup = min(R, T)
    zero = np.int64(0)
    nmax = (T + R - 1) // R
    ntask = BH * ngroup
    for chunk in prange(nchunk):
        c64 = np.int64(chunk)
        gq = np.empty((nmax, D), q.dtype)
        gk = np.empty((nmax, D), q.dtype)
        gv = np.empty((nmax, Dv), q.dtype)
        gdo = np.empty((nmax, Dv), q.dtype)
        gdk = np.empty((nmax, D), q.dtype)
        gdv = np.empty((nmax, Dv), q.dtype)
        tk = np.empty((nmax, D), q.dtype)
        tv = np.empty((nmax, Dv), q.dtype)
        tq = np.empty((QB, D), q.dtype)
        glse = np.empty(nmax, lse.dtype)
        gdelta = np.empty(nmax, delta.dtype)
        gok = np.empty(nmax, np.bool_)
        pbuf = np.empty(QB * nmax, q.dtype)
        dpbuf = np.empty(QB * nmax, q.dtype)
        ibuf = np.empty(nmax, np.int64)
        lo1 = np.empty(QB, np.int64)
        hi1 = np.empty(QB, np.int64)
        lo2 = np.empty(QB, np.int64)
        hi2 = np.empty(QB, np.int64)
        for t in range(c64 * ntask // nchunk, (c64 + 1) * ntask // nchunk):
            bh = t // ngroup
            b = bh // H
            r = t - bh * ngroup
            n = (T - 1 - r) // R + 1
            _gather_group(q, bh, r, R, n, gq)
            _gather_group(k, bh, r, R, n, gk)
            _gather_group(v, bh, r, R, n, gv)
            _gather_group(do, bh, r, R, n, gdo)
            for p in range(n):
                i = r + p * R
                gok[p] = ok[b, i]
                glse[p] = lse[bh, i]
                gdelta[p] = delta[bh, i]
            for p in range(n):
                _zero(gdk[p])
                _zero(gdv[p])
            for p0 in range(0, n, QB):
                p1 = min(n, p0 + QB)
                nq = p1 - p0
                nk = p1 if causal else n
                pm = pbuf[:nq * nk].reshape((nq, nk))
                dp = dpbuf[:nq * nk].reshape((nq, nk))
                np.dot(gq[p0:p1], gk[:nk].T, pm)
                _group_ranges(p0, nq, n, gap, causal, lo1, hi1, lo2, hi2)
                _probs_rows(pm, nq, lo1, hi1, lo2, hi2, gok[p0:p1], gok, zero, scale,
                            glse[p0:p1], ibuf)
                np.dot(gdo[p0:p1], gv[:nk].T, dp)
                _dscores(pm, dp, nq, nk, gdelta[p0:p1])
                # dQ rows of this block: α dS K_grp
                np.dot(dp, gk[:nk], tq[:nq])
                for rr in range(nq):
                    dqrow = dq[bh, r + (p0 + rr) * R]
                    for e in range(D):
                        dqrow[e] += scale * tq[rr, e]
                # dK_grp += dSᵀ Q_blk ; dV_grp += Pᵀ dO_blk (α applied when scattering)
                np.dot(dp.T, gq[p0:p1], tk[:nk])
                np.dot(pm.T, gdo[p0:p1], tv[:nk])
                for c in range(nk):
                    for e in range(D):
                        gdk[c, e] += tk[c, e]
                    for e in range(Dv):
                        gdv[c, e] += tv[c, e]
            for p in range(n):
                dkrow = dk[bh, r + p * R]
                dvrow = dv[bh, r + p * R]
                for e in range(D):
                    dkrow[e] += scale * gdk[p, e]
                for e in range(Dv):
                    dvrow[e] += gdv[p, e]


# ---------------------------------------------------------------------------
# Per-row key lists (any pattern): key_index (T, Kmax), −1 padded
# ---------------------------------------------------------------------------

@njit(**_JIT)
def _dot(a, b):
    """a · b over the last axis with four interleaved accumulators (fixed order)."""
    n = a.shape[0]
    s0 = s1 = s2 = s3 = a[0] * b[0] * 0
    c = 0
    while c + 4 <= n:
        s0 += a[c] * b[c]
        s1 += a[c + 1] * b[c + 1]
        s2 += a[c + 2] * b[c + 2]
        s3 += a[c + 3] * b[c + 3]
        c += 4
    s = (s0 + s1) + (s2 + s3)
    while c < n:
        s += a[c] * b[c]
        c += 1
    return s


@njit(**_PJIT)
def indexed_fwd(q, k, v, ok, H, idx, nkeys, scale, out, lse):
    r"""Forward over per-row key lists: row i attends to idx[i, :nkeys[i]] (valid keys only)."""
    BH, T, D = q.shape
    Dv = v.shape[2]
    K = idx.shape[1]
    for t in prange(BH * T):
        t64 = np.int64(t)
        bh = t64 // T
        i = t64 - bh * T
        b = bh // H
        orow = out[bh, i]
        _zero(orow)
        lse[bh, i] = 0
        if not ok[b, i]:
            continue
        s = np.empty(K, np.float64)
        m = -np.inf
        cnt = 0
        for c in range(nkeys[i]):
            j = idx[i, c]
            if ok[b, j]:
                # s_c = α q_i · k_j
                s[c] = scale * _dot(q[bh, i], k[bh, j])
                cnt += 1
                if s[c] > m:
                    m = s[c]
        if cnt == 0:                                  # a fully masked row: output 0 (D4)
            continue
        ell = 0.0
        for c in range(nkeys[i]):
            j = idx[i, c]
            if ok[b, j]:
                # p_c = e^{s_c − m}; o_i += p_c v_j
                pc = math.exp(s[c] - m)
                ell += pc
                vrow = v[bh, j]
                for e in range(Dv):
                    orow[e] += pc * vrow[e]
        for e in range(Dv):
            orow[e] = orow[e] / ell
        lse[bh, i] = m + math.log(ell)


@njit(**_PJIT)
def indexed_bwd_rows(q, k, v, ok, H, idx, nkeys, scale, lse, delta, do, dq, pst, dsst):
    r"""Row pass of the key-list backward: dq, and P and dS stored per (row, list slot)
    (memory O(T·Kmax), the same as the key lists times B·H)."""
    BH, T, D = q.shape
    for t in prange(BH * T):
        t64 = np.int64(t)
        bh = t64 // T
        i = t64 - bh * T
        b = bh // H
        _zero(dq[bh, i])
        _zero(pst[bh, i])
        _zero(dsst[bh, i])
        if not ok[b, i]:
            continue
        for c in range(nkeys[i]):
            j = idx[i, c]
            if ok[b, j]:
                # P_ij = e^{α q_i·k_j − lse_i};  dS_ij = P_ij (dO_i·v_j − δ_i)
                pc = math.exp(scale * _dot(q[bh, i], k[bh, j]) - lse[bh, i])
                dsc = pc * (_dot(do[bh, i], v[bh, j]) - delta[bh, i])
                pst[bh, i, c] = pc
                dsst[bh, i, c] = dsc
                # dq_i += α dS_ij k_j
                dqrow = dq[bh, i]
                krow = k[bh, j]
                for e in range(D):
                    dqrow[e] += scale * dsc * krow[e]


@njit(**_PJIT)
def indexed_bwd_cols(q, do, ok, H, rows_of, slot_of, start, scale, pst, dsst, dk, dv):
    r"""Column pass: key j gathers the rows that list it (CSR ``start``/``rows_of``/``slot_of``):
    :math:`dk_j = \alpha \sum_i dS_{ij} q_i`, :math:`dv_j = \sum_i P_{ij}\, dO_i`."""
    BH, T, D = q.shape
    Dv = do.shape[2]
    for t in prange(BH * T):
        t64 = np.int64(t)
        bh = t64 // T
        j = t64 - bh * T
        dkrow = dk[bh, j]
        dvrow = dv[bh, j]
        _zero(dkrow)
        _zero(dvrow)
        for a in range(start[j], start[j + 1]):
            i = rows_of[a]
            c = slot_of[a]
            dsc = dsst[bh, i, c]
            pc = pst[bh, i, c]
            qrow = q[bh, i]
            dorow = do[bh, i]
            for e in range(D):
                dkrow[e] += scale * dsc * qrow[e]
            for e in range(Dv):
                dvrow[e] += pc * dorow[e]
