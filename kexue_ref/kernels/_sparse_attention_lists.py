r"""numba kernels of ``indexed_attention``: any pattern given as per-row key lists (private).

``key_index`` (T, Kmax) lists, for each query row, its allowed keys in increasing order, padded
with −1 at the end (``nkeys[i]`` entries are real); ``ok`` (B, T) is the sequence mask and
``H`` maps a flat head bh to its batch row bh // H. Arrays: q, k (BH, T, D), v (BH, T, Dv).

Forward and dQ: one task per row (``prange`` over B·H·T rows), scalar code; the backward keeps
P and dS per (row, list slot), memory O(B·H·T·Kmax), and a second pass gives dK and dV one task
per key through the transposed lists (CSR ``start``/``rows_of``/``slot_of``), so no two threads
write the same row. Scores and row sums accumulate in float64 for every input dtype. A row
with no valid listed key (or an invalid query) outputs 0 with zero cotangents (D4), detected
by counting the keys seen.

This module is self-contained (no jitted function imported from another module): numba's disk
cache checks only the source file of the function it caches, so a kernel that inlined a helper
from another file would keep the old helper after that file changed.
"""
import math

import numpy as np
from numba import njit, prange

from kexue_ref.kernels import _config

_JIT = {"fastmath": set(_config.FASTMATH), "cache": _config.CACHE}
_PJIT = {**_JIT, "parallel": _config.PARALLEL}


@njit(**_JIT)
def _zero(a):
    """a[c] ← 0 for every c of a 1-D array."""
    for c in range(a.shape[0]):
        a[c] = 0


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
