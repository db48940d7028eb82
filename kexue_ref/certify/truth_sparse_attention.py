# Over 500 lines: a truth table, one plain-loop mpmath formula (and its VJP) per registry op of sparse attention.
r"""Multiprecision truth for sparse attention (https://kexue.fm/archives/6853).

Every op of ``kexue_ref/cases/sparse_attention.py`` is written again here from its definition,
with plain loops over the query i and the key j, in mpmath at the working precision:

.. math:: S_{ij} = \frac{q_i\cdot k_j}{\sqrt D},\qquad
          P_{ij} = \frac{e^{S_{ij}}}{\sum_{j'\in\mathcal N(i)} e^{S_{ij'}}}\ (j\in\mathcal N(i)),
          \qquad o_i = \sum_{j\in\mathcal N(i)} P_{ij}\, v_j

for a key set N(i) per query (post: "Attention(Q, K, V) = softmax(QKᵀ/√d)V" and its Atrous,
Local and Sparse restrictions). Nothing of the float64 code is shared: no max shift, no mask
arrays of the oracle, no regrouping; the key sets are built from the predicates of the post
((i − j) mod R = 0, |i − j| ≤ W, their union) and, for ``compat="keras"``, from a reading of
the author's ``attention_keras.py`` (``bojone/attention``), as described in
``docs/sparse_attention.md``.

Conventions (``docs/sparse_attention.md``): shapes q, k (B, H, T, D), v (B, H, T, Dv); a
sequence ``mask`` (B, T) removes padded keys and zeroes padded query rows (gradient 0); a row
with no allowed key outputs 0 with zero gradient (decision D4); the ``*_blocked`` forms are the
same mathematics as the dense patterns (their ``block`` parameter changes only the computation)
and share one truth each.

Gradients: :data:`GRADS` gives the vector–Jacobian product of the same formula, written out by
hand (∂o/∂S of a softmax: dS_ij = P_ij (g_i·v_j − Σ_j' P_ij' g_i·v_j')), for every attention op.
It is needed for the Keras float32 step (``compat="keras"``, ``causal=False`` in the atrous and
local layers): there the forward is piecewise constant in q and k, and the reference follows
TensorFlow's ``Cast`` gradient (the cotangent of the float32 scores is rounded to float32 on
the way back, otherwise the step is the identity), which central differences cannot see. For
the other cases it is the exact derivative of the same formula, and it keeps the topic's
certification fast (central differences cost two forwards per input element);
``tests/certify/test_truth_sparse_attention.py`` checks it against central differences of the
forward.
"""
import itertools

import numpy as onp

from kexue_ref.certify import _mp

__all__ = ["TRUTH", "GRADS", "BOUNDS"]

#: The additive mask constant of ``attention_keras.py`` (``x − (1 − mask)·1e10``), exact.
KERAS_CONSTANT = 10 ** 10


def _mpm():
    import mpmath
    return mpmath


# ---------------------------------------------------------------------------
# Key sets ("plans"): for every (b, h, i) the list of softmax entries of query i
# ---------------------------------------------------------------------------
# An entry is (j, c, fixed): j the key position (None for a zero token of the Keras padding:
# k = 0, v = 0), c an exact additive constant (an integer multiple of 1e10 in the Keras
# forms, 0 elsewhere), fixed None or a number that *replaces* the score (``fill``).
# A row is None (output 0, gradient 0) when the query is padded or has no entry (D4).


def _seq_mask(mask, B, T):
    """The (B, T) sequence mask as nested lists of bools (all True when None)."""
    if mask is None:
        return [[True] * T for _ in range(B)]
    return onp.asarray(mask, dtype=bool).tolist()


def _post_plan(B, T, allowed, causal, mask):
    """Rows of a post pattern: N(i) = {j : allowed(i, j), [j ≤ i] if causal, key j valid}."""
    m = _seq_mask(mask, B, T)
    plan = []
    for b in range(B):
        rows = []
        for i in range(T):
            # a padded query outputs 0 (its row is removed)
            if not m[b][i]:
                rows.append(None)
                continue
            # N(i): the pattern, the causal cut and the valid keys
            ents = [(j, 0, None) for j in range(T)
                    if allowed(i, j) and (not causal or j <= i) and m[b][j]]
            rows.append(ents or None)
        plan.append(rows)
    return plan


def _atrous_pred(R):
    # A_ij = [(i − j) mod R = 0]
    return lambda i, j: (i - j) % R == 0


def _local_pred(W):
    # A_ij = [|i − j| ≤ W]
    return lambda i, j: abs(i - j) <= W


def _sparse_pred(R):
    # A_ij = [|i − j| ≤ R] ∨ [(i − j) mod R = 0]
    return lambda i, j: abs(i - j) <= R or (i - j) % R == 0


def _keras_atrous_plan(B, T, R, causal, mask):
    """``AtrousSelfAttention(rate=R, mask_right=causal)`` read from ``attention_keras.py``.

    The sequence is padded with R − (T mod R) zero tokens (1..R); query t = nR + r attends
    every token t' = n'R + r of the padded sequence, with −1e10 added for an invalid key
    (only when ``mask`` is given: without it the zero tokens are attended) and −1e10 for
    n' > n when causal.
    """
    pad = R - T % R
    Tp = T + pad
    m = None if mask is None else _seq_mask(mask, B, T)
    plan = []
    for b in range(B):
        rows = []
        for i in range(T):
            # to_mask(o, x_mask, 'mul'): a padded query outputs 0
            if m is not None and not m[b][i]:
                rows.append(None)
                continue
            ents = []
            for t in range(i % R, Tp, R):
                c = 0
                # to_mask(a, v_mask, 'add'): a − (1 − mask)·1e10, padding tokens invalid
                if m is not None and not (t < T and m[b][t]):
                    c -= KERAS_CONSTANT
                # mask_right=True: − 1e10 above the diagonal of the group (n' > n)
                if causal and t > i:
                    c -= KERAS_CONSTANT
                ents.append((t if t < T else None, c, None))
            rows.append(ents)
        plan.append(rows)
    return plan


def _keras_local_plan(B, T, W, causal, mask):
    """``LocalSelfAttention(neighbors=W, rate=1, mask_right=causal)`` from ``attention_keras.py``.

    Query i reads the 2W + 1 slots u = 0..2W, slot u being key i + u − W of the zero-padded
    sequence; −1e10 for an invalid slot (only with ``mask``) and for u > W when causal.
    """
    m = None if mask is None else _seq_mask(mask, B, T)
    plan = []
    for b in range(B):
        rows = []
        for i in range(T):
            if m is not None and not m[b][i]:
                rows.append(None)
                continue
            ents = []
            for u in range(2 * W + 1):
                j = i + u - W
                inside = 0 <= j < T
                c = 0
                # xp_mask: the mask's own windows, zero outside the sequence
                if m is not None and not (inside and m[b][j]):
                    c -= KERAS_CONSTANT
                # mask_right: a (1, 2W + 1) row of ones with its last W entries 0
                if causal and u > W:
                    c -= KERAS_CONSTANT
                ents.append((j if inside else None, c, None))
            rows.append(ents)
        plan.append(rows)
    return plan


def _keras_sparse_plan(B, T, R, causal, mask):
    """``SparseSelfAttention(rate=R, mask_right=causal)`` from ``attention_keras.py``.

    After padding to Tp = T + R − (T mod R), query t = nR + r has two blocks of entries in
    one softmax: (1) the group {n'R + r} (−1e10 for invalid keys, and for n' > n when causal);
    (2) ``extract_seq_patches(kw, 2R − 1, R)``: the slots u = 0..2R − 2 holding key
    t + (u − (R − 1))·R of the padded sequence, zero outside [0, Tp) (−1e10 for invalid slots,
    and for u > R − 1 when causal). A key in both blocks (always t itself) counts twice.
    """
    pad = R - T % R
    Tp = T + pad
    m = None if mask is None else _seq_mask(mask, B, T)

    def valid(b, t):
        # x_mask padded with zeros: real tokens carry their mask, padding is invalid
        return 0 <= t < T and m[b][t]

    plan = []
    for b in range(B):
        rows = []
        for i in range(T):
            if m is not None and not m[b][i]:
                rows.append(None)
                continue
            ents = []
            # (1) atrous block of the padded sequence
            for t in range(i % R, Tp, R):
                c = 0
                if m is not None and not valid(b, t):
                    c -= KERAS_CONSTANT
                if causal and t > i:
                    c -= KERAS_CONSTANT
                ents.append((t if t < T else None, c, None))
            # (2) the dilated window, 2R − 1 slots
            for u in range(2 * R - 1):
                t = i + (u - (R - 1)) * R
                c = 0
                if m is not None and not valid(b, t):
                    c -= KERAS_CONSTANT
                # mask[:, -neighbors:] = 0 with neighbors = R − 1
                if causal and u > R - 1:
                    c -= KERAS_CONSTANT
                ents.append((t if 0 <= t < T else None, c, None))
            rows.append(ents)
        plan.append(rows)
    return plan


# ---------------------------------------------------------------------------
# Evaluation of a plan: forward and hand-written VJP
# ---------------------------------------------------------------------------

def _round32(x):
    """x rounded to the nearest float32 value (24-bit significand, ties to even)."""
    mpmath = _mpm()
    with mpmath.workprec(24):
        return +x


def _keras_float32_step(s):
    r"""fl32(fl32(s) − 1e10): the always-true ``mask_right`` branch in float32 arithmetic.

    Both roundings of a float32 graph: the score enters as a float32 number and the
    difference is rounded to float32 (1e10 is exactly representable, spacing 1024 there).
    """
    # fl32(fl32(s) − 1e10)
    return _round32(_round32(s) - KERAS_CONSTANT)


def _scores(qi, kb, ents, inv_sqrt_d, collapse):
    """The softmax arguments of one row: s_e = q_i·k_j/√D + c (0 + c for a zero token)."""
    mpf = _mpm().mpf
    out = []
    for j, c, fixed in ents:
        if fixed is not None:
            # fill: the disallowed score is replaced by the constant
            s = mpf(fixed)
        else:
            # S_ij = q_i · k_j / √D (a zero token has score 0), plus the additive constant
            s = (sum((a * b for a, b in zip(qi, kb[j])), mpf(0)) * inv_sqrt_d if j is not None
                 else mpf(0)) + c
        out.append(_keras_float32_step(s) if collapse else s)
    return out


def _softmax_row(s):
    """P_e = e^{s_e} / Σ_e' e^{s_e'}, as written (mpf does not overflow)."""
    mpmath = _mpm()
    e = [mpmath.exp(x) for x in s]
    Z = sum(e)
    return [x / Z for x in e]


def _lists(x):
    return onp.asarray(x, dtype=object).tolist()


def _forward(q, k, v, plan, collapse=False, heads_differ=False):
    """o[b, h, i] = Σ_e P_e v_{j_e} for the entries of plan[b][i] (plan[b][h][i] if heads differ)."""
    mpmath = _mpm()
    B, H, Tq, D = q.shape
    Dv = v.shape[-1]
    inv = 1 / mpmath.sqrt(D)
    qL, kL, vL = _lists(q), _lists(k), _lists(v)
    out = _mp.zeros((B, H, Tq, Dv))
    for b, h in itertools.product(range(B), range(H)):
        rows = plan[b][h] if heads_differ else plan[b]
        for i, ents in enumerate(rows):
            if not ents:
                continue                                   # D4 / padded query: 0
            P = _softmax_row(_scores(qL[b][h][i], kL[b][h], ents, inv, collapse))
            for d in range(Dv):
                # o_i = Σ_j P_ij v_j (a zero token has v = 0)
                out[b, h, i, d] = sum((p * vL[b][h][j][d] for p, (j, _, _) in zip(P, ents)
                                       if j is not None), mpmath.mpf(0))
    return out


def _vjp(q, k, v, plan, g, collapse=False, heads_differ=False):
    r"""The VJP of :func:`_forward` for the cotangent g (B, H, Tq, Dv).

    .. math:: dv_j = \sum_i P_{ij} g_i,\quad
              dS_{ij} = P_{ij}\Big(g_i\cdot v_j - \sum_{j'} P_{ij'}\, g_i\cdot v_{j'}\Big),\quad
              dq_i = \sum_j dS_{ij} \frac{k_j}{\sqrt D},\quad dk_j = \sum_i dS_{ij}\frac{q_i}{\sqrt D}

    With ``collapse`` (the Keras float32 step) dS is rounded to float32 before it reaches q and k,
    the gradient of TensorFlow's ``Cast`` (see ``docs/sparse_attention.md``). Replaced scores
    (``fill``) and zero tokens pass no gradient to q and k.
    """
    mpmath = _mpm()
    mpf = mpmath.mpf
    B, H, Tq, D = q.shape
    Dv = v.shape[3]
    inv = 1 / mpmath.sqrt(D)
    qL, kL, vL = _lists(q), _lists(k), _lists(v)
    gL = _lists(_mp.mpf_array(g))
    dq, dk, dv = _mp.zeros(q.shape), _mp.zeros(k.shape), _mp.zeros(v.shape)
    for b, h in itertools.product(range(B), range(H)):
        rows = plan[b][h] if heads_differ else plan[b]
        for i, ents in enumerate(rows):
            if not ents:
                continue                                   # zero output, zero gradient (D4)
            gi = gL[b][h][i]
            P = _softmax_row(_scores(qL[b][h][i], kL[b][h], ents, inv, collapse))
            # dP_e = g_i · v_{j_e} (0 for a zero token)
            dP = [sum((a * c for a, c in zip(gi, vL[b][h][j])), mpf(0)) if j is not None else mpf(0)
                  for j, _, _ in ents]
            mean = sum((p * x for p, x in zip(P, dP)), mpf(0))
            for p, x, (j, _, fixed) in zip(P, dP, ents):
                if j is None:
                    continue
                # dv_j += P_ij g_i
                for d in range(Dv):
                    dv[b, h, j, d] += p * gi[d]
                if fixed is not None:
                    continue
                # dS_ij = P_ij (dP_ij − Σ_j' P_ij' dP_ij'); rounded to float32 by the Cast gradient
                dS = p * (x - mean)
                if collapse:
                    dS = _round32(dS)
                # dq_i += dS_ij k_j / √D ;  dk_j += dS_ij q_i / √D
                for d in range(D):
                    dq[b, h, i, d] += dS * kL[b][h][j][d] * inv
                    dk[b, h, j, d] += dS * qL[b][h][i][d] * inv
    return {"q": dq, "k": dk, "v": dv}


# ---------------------------------------------------------------------------
# The ops
# ---------------------------------------------------------------------------

def _attention_plan(q, k, allowed, key_mask, query_mask, causal, fill):
    B, H, Tq, _ = q.shape
    Tk = k.shape[2]
    A = (onp.ones((B, H, Tq, Tk), bool) if allowed is None
         else onp.broadcast_to(onp.asarray(allowed, dtype=bool), (B, H, Tq, Tk)))
    km = _seq_mask(key_mask, B, Tk)
    qm = _seq_mask(query_mask, B, Tq)
    plan = []
    for b in range(B):
        per_head = []
        for h in range(H):
            rows = []
            for i in range(Tq):
                if not qm[b][i]:
                    rows.append(None)                  # invalid query: 0, zero gradient
                    continue
                # A_ij ∧ key_mask_bj ∧ [j ≤ i]_causal
                ok = [bool(A[b, h, i, j]) and km[b][j] and (not causal or j <= i) for j in range(Tk)]
                if fill is None:
                    ents = [(j, 0, None) for j in range(Tk) if ok[j]]
                    rows.append(ents or None)
                else:
                    # replacement masking: every key enters, disallowed ones with score c
                    rows.append([(j, 0, None if ok[j] else fill) for j in range(Tk)])
            per_head.append(rows)
        plan.append(per_head)
    return plan


def attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    r"""Truth of ``attention``: o_i = Σ_{j allowed} softmax_j(q_i·k_j/√D) v_j.

    Shapes q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), allowed broadcastable to
    (B, H, Tq, Tk); allowed pairs are A_ij ∧ key_mask_bj ∧ [j ≤ i]_causal; an invalid query or a
    row without allowed key outputs 0 (D4). With ``fill = c`` the disallowed scores are replaced
    by c and every key enters the softmax. Source: https://kexue.fm/archives/6853 ("Attention(Q,
    K, V) = softmax(QKᵀ/√d)V"); masking rules in ``docs/sparse_attention.md``.
    """
    plan = _attention_plan(q, k, allowed, key_mask, query_mask, causal, fill)
    return _forward(q, k, v, plan, heads_differ=True)


def _attention_grad(q, k, v, allowed=None, *, cotangents, key_mask=None, query_mask=None,
                    causal=False, fill=None):
    plan = _attention_plan(q, k, allowed, key_mask, query_mask, causal, fill)
    return _vjp(q, k, v, plan, cotangents["out"], heads_differ=True)


def _pattern_plan(kind, q, param, causal, mask, compat):
    B, _, T, _ = q.shape
    if compat == "keras":
        build = {"atrous": _keras_atrous_plan, "local": _keras_local_plan,
                 "sparse": _keras_sparse_plan}[kind]
        # the always-true mask_right branch: only the atrous and local layers, only non-causal
        return build(B, T, param, causal, mask), (kind != "sparse" and not causal)
    pred = {"atrous": _atrous_pred, "local": _local_pred, "sparse": _sparse_pred}[kind](param)
    return _post_plan(B, T, pred, causal, mask), False


def atrous_attention(q, k, v, rate, *, causal=False, mask=None, compat=None, block=None):
    r"""Truth of ``atrous_attention`` (and ``atrous_attention_blocked``).

    .. math:: o_i = \sum_{j:\ (i-j) \bmod R = 0} \mathrm{softmax}_j(q_i\cdot k_j/\sqrt D)\, v_j

    q, k (B, H, T, D), v (B, H, T, Dv); ``causal`` keeps j ≤ i, ``mask`` (B, T) removes
    invalid keys and zeroes invalid queries. ``compat="keras"``: ``AtrousSelfAttention`` of
    ``attention_keras.py`` (1..R zero tokens appended, attended without ``mask``; additive
    −1e10 masks; non-causal: every score s becomes fl32(fl32(s) − 1e10)). Source:
    https://kexue.fm/archives/6853, "Atrous Self Attention".
    """
    plan, collapse = _pattern_plan("atrous", q, rate, causal, mask, compat)
    return _forward(q, k, v, plan, collapse)


def local_attention(q, k, v, neighbors, *, causal=False, mask=None, compat=None, block=None):
    r"""Truth of ``local_attention`` (and ``local_attention_blocked``; ``block`` is ignored).

    .. math:: o_i = \sum_{j:\ |i-j| \le W} \mathrm{softmax}_j(q_i\cdot k_j/\sqrt D)\, v_j

    Windows are cut at the sequence edges. ``compat="keras"``: ``LocalSelfAttention`` (2W + 1
    slots zero-padded at the edges, attended without ``mask``; non-causal float32 step).
    Source: https://kexue.fm/archives/6853, "Local Self Attention".
    """
    plan, collapse = _pattern_plan("local", q, neighbors, causal, mask, compat)
    return _forward(q, k, v, plan, collapse)


def sparse_attention(q, k, v, rate, *, causal=False, mask=None, compat=None, block=None):
    r"""Truth of ``sparse_attention`` (and ``sparse_attention_blocked``; ``block`` is ignored).

    .. math:: o_i = \sum_{j \in \mathcal N(i)} \mathrm{softmax}_j(q_i\cdot k_j/\sqrt D)\, v_j,
              \qquad \mathcal N(i) = \{|i-j| \le R\} \cup \{(i-j) \bmod R = 0\}

    each key of the union counted once. ``compat="keras"``: ``SparseSelfAttention`` (the atrous
    group plus the dilated window {i + uR : |u| ≤ R − 1} concatenated in one softmax, shared keys
    twice, zero padding attended without ``mask``). Source: https://kexue.fm/archives/6853,
    "Sparse Self Attention".
    """
    plan, collapse = _pattern_plan("sparse", q, rate, causal, mask, compat)
    return _forward(q, k, v, plan, collapse)


def _pattern_grad(kind):
    name = "neighbors" if kind == "local" else "rate"

    def grad(q, k, v, *args, cotangents, causal=False, mask=None, compat=None, block=None,
             **param):
        # the rate / neighbours arrive positionally or by name, as for the reference
        p = args[0] if args else param[name]
        plan, collapse = _pattern_plan(kind, q, p, causal, mask, compat)
        return _vjp(q, k, v, plan, cotangents["out"], collapse)
    grad.__name__ = f"_{kind}_grad"
    grad.__doc__ = f"VJP of the {kind} truth (see :func:`_vjp`)."
    return grad


def _indexed_plan(q, key_index, mask):
    B, _, T, _ = q.shape
    idx = onp.asarray(key_index).tolist()
    # A_ij = [j ∈ key_index_i] (−1 is padding), then the sequence mask
    return _post_plan(B, T, lambda i, j: j in idx[i], False, mask)


def indexed_attention(q, k, v, key_index, *, mask=None):
    r"""Truth of ``indexed_attention``: o_i = Σ_{j ∈ key_index_i} softmax_j(q_i·k_j/√D) v_j.

    key_index (T, Kmax) lists the keys of each query (−1 = padding; an empty list is a fully
    masked row, output 0, D4); ``mask`` (B, T) as for the patterns. Source:
    https://kexue.fm/archives/6853 (any sparse pattern given as per-row key lists).
    """
    return _forward(q, k, v, _indexed_plan(q, key_index, mask))


def _indexed_grad(q, k, v, key_index, *, cotangents, mask=None):
    return _vjp(q, k, v, _indexed_plan(q, key_index, mask), cotangents["out"])


# ---------------------------------------------------------------------------
# The pattern predicates, exactly, by loops over (i, j)
# ---------------------------------------------------------------------------

def _square(T, pred):
    out = onp.zeros((T, T), dtype=bool)
    for i in range(T):
        for j in range(T):
            out[i, j] = bool(pred(i, j))
    return out


def atrous_mask(T, rate, causal=False):
    r"""A_ij = [(i − j) mod R = 0] ∧ [j ≤ i]_causal, (T, T) bool (https://kexue.fm/archives/6853)."""
    return _square(T, lambda i, j: (i - j) % rate == 0 and (not causal or j <= i))


def local_mask(T, neighbors, causal=False):
    r"""A_ij = [|i − j| ≤ W] ∧ [j ≤ i]_causal, (T, T) bool (https://kexue.fm/archives/6853)."""
    return _square(T, lambda i, j: abs(i - j) <= neighbors and (not causal or j <= i))


def sparse_mask(T, rate, causal=False):
    r"""A_ij = ([|i − j| ≤ R] ∨ [(i − j) mod R = 0]) ∧ [j ≤ i]_causal (https://kexue.fm/archives/6853)."""
    return _square(T, lambda i, j: (abs(i - j) <= rate or (i - j) % rate == 0)
                   and (not causal or j <= i))


def strided_mask(T, stride):
    r"""OpenAI's strided factor: A_ij = [j ≤ i] ∧ [(i − j) mod l = 0] (arXiv 1904.10509 §4.2)."""
    return _square(T, lambda i, j: j <= i and (i - j) % stride == 0)


def openai_local_mask(T, bandwidth):
    r"""OpenAI's local factor: A_ij = [i − l < j ≤ i] (arXiv 1904.10509 §4.2)."""
    return _square(T, lambda i, j: i - bandwidth < j <= i)


def openai_fixed_layout(n_blocks, stride, heads=1, num_verts=1, vertsize=1):
    r"""OpenAI's block-level ``fixed`` layout, (heads, n, n) bool.

    L_hrc = [c ≤ r] ∧ ([⌊c/s⌋ = ⌊r/s⌋] ∨ [c mod s ∈ S_h]); the summary offsets S_h of head h are
    the (h mod n_v)-th group of v offsets when s − 1, s − 2, …, 0 is cut into groups of v
    (arXiv 1904.10509 §4.2; ``openai/sparse_attention`` ``get_blocksparse_obj``, mode "fixed").
    """
    s, v = stride, vertsize
    # s − 1, s − 2, …, 0 in groups of v
    offsets = list(range(s - 1, -1, -1))
    groups = [offsets[g * v:(g + 1) * v] for g in range(s // v)]
    out = onp.zeros((heads, n_blocks, n_blocks), dtype=bool)
    for h in range(heads):
        summary = set(groups[h % num_verts])
        for r in range(n_blocks):
            for c in range(n_blocks):
                out[h, r, c] = c <= r and (c // s == r // s or c % s in summary)
    return out


def mask_to_layout(mask, block):
    r"""L_rc = ∨ {A_ij : ⌊i/b⌋ = r, ⌊j/b⌋ = c} over the (…, Tq, Tk) mask (partial last blocks)."""
    A = onp.asarray(mask, dtype=bool)
    Tq, Tk = A.shape[-2:]
    nq, nk = -(-Tq // block), -(-Tk // block)
    out = onp.zeros(A.shape[:-2] + (nq, nk), dtype=bool)
    for lead in onp.ndindex(*A.shape[:-2]):
        for i in range(Tq):
            for j in range(Tk):
                if A[lead + (i, j)]:
                    out[lead + (i // block, j // block)] = True
    return out


TRUTH = {
    "sparse_attention.attention": attention,
    "sparse_attention.atrous_attention": atrous_attention,
    "sparse_attention.local_attention": local_attention,
    "sparse_attention.sparse_attention": sparse_attention,
    "sparse_attention.indexed_attention": indexed_attention,
    # the blocked forms: the same mathematics, one truth each
    "sparse_attention.atrous_attention_blocked": atrous_attention,
    "sparse_attention.local_attention_blocked": local_attention,
    "sparse_attention.sparse_attention_blocked": sparse_attention,
    "sparse_attention.atrous_mask": atrous_mask,
    "sparse_attention.local_mask": local_mask,
    "sparse_attention.sparse_mask": sparse_mask,
    "sparse_attention.strided_mask": strided_mask,
    "sparse_attention.openai_local_mask": openai_local_mask,
    "sparse_attention.openai_fixed_layout": openai_fixed_layout,
    "sparse_attention.mask_to_layout": mask_to_layout,
}

GRADS = {
    "sparse_attention.attention": _attention_grad,
    "sparse_attention.atrous_attention": _pattern_grad("atrous"),
    "sparse_attention.local_attention": _pattern_grad("local"),
    "sparse_attention.sparse_attention": _pattern_grad("sparse"),
    "sparse_attention.indexed_attention": _indexed_grad,
    "sparse_attention.atrous_attention_blocked": _pattern_grad("atrous"),
    "sparse_attention.local_attention_blocked": _pattern_grad("local"),
    "sparse_attention.sparse_attention_blocked": _pattern_grad("sparse"),
}

_GRAD_MEMBERS = ["grad.q", "grad.k", "grad.v"]
_GRAD_REASON = ("each gradient entry is a float64 sum, over the keys of a row (dq) or over up to "
                "T = 40 queries (dk, dv), of products that each carry the rounding of a score, of "
                "g·v_j and of the softmax-Jacobian sum; the natural scale is the largest |entry| "
                "(nothing cancels at the member level), and such sums leave one to two eps of it "
                "(worst measured 1.5 eps·S); 1 eps·S would need compensated sums in every matmul "
                "of the VJP")

#: The attention ops' gradients: held to 3 eps·S (outputs stay at the goal).
BOUNDS = {op: {"ulps": 2, "eps_scale": 3, "members": _GRAD_MEMBERS, "reason": _GRAD_REASON}
          for op in GRADS}
