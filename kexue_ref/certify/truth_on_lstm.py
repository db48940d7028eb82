# Over 500 lines on purpose: a truth table, one mpmath formula per registry op (kexue_ref/cases/on_lstm.py).
r"""Multiprecision truth for the ON-LSTM tables (post https://kexue.fm/archives/6621).

Every registry op of :mod:`kexue_ref.cases.on_lstm` is written here again from the equations of
the post and the paper (Y. Shen et al., "Ordered Neurons", ICLR 2019, arXiv 1810.09536), in
plain mpmath arithmetic, with the conventions documented in ``docs/on_lstm.md``:

* the canonical ("su") weight layout ``W (D, 2L + 4N)``, ``U (N, 2L + 4N)``, ``b (2L + 4N,)``
  with columns ``[f̃ (L) | ĩ (L) | f (N) | i (N) | o (N) | ĉ (N)]`` (the Keras code's), and the
  official PyTorch layout ``W_ih (2L + 4N, D)``, ``W_hh (2L + 4N, N)``, two biases, rows
  ``[ĩ (L) | f̃ (L) | o (N) | ĉ (N) | i (N) | f (N)]``, read here row by row in that order (no
  conversion to the canonical layout: the gate order is certified, not assumed);
* neuron ``n`` belongs to level ``n // C`` (each level is C consecutive neurons);
* master input gate ``"su"`` = the inclusive suffix sum Σ_{j ≥ k} p_j (the post), ``"paper"`` =
  the exclusive suffix sum Σ_{j > k} p_j = 1 − cumax (the paper and the official code);
* DropConnect with boolean keep-masks: ``"inverted"`` W ⊙ m / (1 − p) in training; ``"official"``
  W ⊙ m in training and W (1 − p) at evaluation (no masks), on ``("W", "U")`` / ``("U",)`` by
  default; dropout between stacked layers h ⊙ m / (1 − p).

The cell and the layer are evaluated with plain Python loops over lists of ``mpf`` (one
``mpmath.fdot`` per pre-activation), so that the core's central differences over every weight
stay cheap. The trees, brackets and spans are exact (strings and ints), bracket F1 is a
:class:`fractions.Fraction`.
"""
from fractions import Fraction

import numpy as onp

__all__ = ["TRUTH", "GRADS", "BOUNDS"]

POST = "https://kexue.fm/archives/6621"


def _m():
    import mpmath
    return mpmath


def _obj(values, shape):
    """An object array of the given shape from a flat Python list."""
    out = onp.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _scalar(v):
    """A 0-d object array holding ``v``."""
    out = onp.empty((), dtype=object)
    out[()] = v
    return out


# ---------------------------------------------------------------------------
# cumax and the master gates
# ---------------------------------------------------------------------------

def _softmax_list(a):
    """softmax(a)_k = e^{a_k} / Σ_j e^{a_j} for a list of mpf (no shift: mpf does not overflow)."""
    m = _m()
    e = [m.exp(v) for v in a]
    s = m.fsum(e)
    return [v / s for v in e]


def _prefix(p):
    """cs→(p)_k = Σ_{j ≤ k} p_j."""
    m = _m()
    return [m.fsum(p[:k + 1]) for k in range(len(p))]


def _suffix(p, inclusive=True):
    """cs←(p)_k = Σ_{j ≥ k} p_j (inclusive) or Σ_{j > k} p_j (exclusive)."""
    m = _m()
    L = len(p)
    return [m.fsum(p[k if inclusive else k + 1:]) if (inclusive or k + 1 < L) else m.mpf(0)
            for k in range(L)]


def _gates_lists(a_f, a_i, master_input):
    """(f̃, ĩ) at level granularity from the logits (lists of mpf, length L)."""
    # f̃ = cs→(softmax(a_f))
    fm = _prefix(_softmax_list(a_f))
    # ĩ = cs←(softmax(a_i)): inclusive (post, "su") or exclusive (paper: 1 − cumax)
    if master_input == "su":
        im = _suffix(_softmax_list(a_i), inclusive=True)
    elif master_input == "paper":
        im = _suffix(_softmax_list(a_i), inclusive=False)
    else:
        raise ValueError(f"unknown master_input {master_input!r}")
    return fm, im


def _rows(a):
    """An object array (..., L) as a list of its rows (lists), and the leading shape."""
    a = onp.asarray(a, dtype=object)
    return a.reshape(-1, a.shape[-1]).tolist(), a.shape[:-1]


def cumax(a, axis=-1):
    r"""cumax(a)_k = Σ_{j ≤ k} softmax(a)_j along ``axis``.

    .. math:: \mathrm{cumax}(a) = \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a))

    Parameters
    ----------
    a : object array of mpf (..., L, ...); axis : int, the level axis.

    Returns
    -------
    object array of mpf, the shape of ``a``.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (f̃ = cs→(softmax(·))); the paper's cumax.
    """
    a = onp.moveaxis(onp.asarray(a, dtype=object), axis, -1)
    rows, lead = _rows(a)
    out = [_prefix(_softmax_list(r)) for r in rows]
    return onp.moveaxis(_obj([v for r in out for v in r], a.shape), -1, axis)


def _expand_rows(rows, C):
    # each level repeated C times in a row: g^exp_n = g_{n // C}
    return [[v for v in r for _ in range(C)] for r in rows]


def master_gates(a_f, a_i, master_input="su", chunk=1):
    r"""The master gates f̃ = cs→(softmax(a_f)) and ĩ = cs←(softmax(a_i)), expanded by C.

    .. math:: \tilde f_k = \sum_{j \le k} p^f_j, \qquad
              \tilde i^{\,su}_k = \sum_{j \ge k} p^i_j, \qquad
              \tilde i^{\,paper}_k = \sum_{j > k} p^i_j, \qquad p = \mathrm{softmax}(a)

    Parameters
    ----------
    a_f, a_i : object arrays (..., L); master_input : "su" or "paper"; chunk : C ≥ 1.

    Returns
    -------
    (f_master, i_master), object arrays (..., L·C), neuron n on level n // C.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the post's ĩ); arXiv 1810.09536 (ĩ = 1 − cumax).
    """
    rf, lead = _rows(a_f)
    ri, _ = _rows(a_i)
    fms, ims = zip(*[_gates_lists(f, i, master_input) for f, i in zip(rf, ri)]) if rf else ((), ())
    fms, ims = _expand_rows(fms, chunk), _expand_rows(ims, chunk)
    shape = lead + (onp.shape(a_f)[-1] * chunk,)
    return (_obj([v for r in fms for v in r], shape), _obj([v for r in ims for v in r], shape))


def expand_levels(g, chunk):
    r"""g^exp_n = g_{⌊n / C⌋}: every level repeated C times in a row.

    Parameters
    ----------
    g : object array (..., L); chunk : C ≥ 1.

    Returns
    -------
    object array (..., L·C).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (each level covers C consecutive neurons).
    """
    rows, lead = _rows(g)
    out = _expand_rows(rows, chunk)
    return _obj([v for r in out for v in r], lead + (onp.shape(g)[-1] * chunk,))


def hard_master_gates(d_f, d_i, levels, base=0):
    r"""Hard master gates f̃_k = [k ≥ d_f], ĩ_k = [k ≤ d_i] (cumsums of one-hot levels).

    .. math:: \tilde f = \overrightarrow{\mathrm{cs}}(\mathrm{onehot}(d_f)), \qquad
              \tilde i = \overleftarrow{\mathrm{cs}}(\mathrm{onehot}(d_i))

    Parameters
    ----------
    d_f, d_i : int arrays (...), levels in [base, L − 1 + base]; levels : L; base : 0 or 1.

    Returns
    -------
    (f_master, i_master), object arrays of mpf 0/1 of shape (..., L).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified form of the partitioned update).
    """
    m = _m()
    df = onp.asarray(d_f).reshape(-1).tolist()
    di = onp.asarray(d_i).reshape(-1).tolist()
    shape = onp.shape(d_f) + (levels,)
    # positions k = base .. L − 1 + base, compared with the level directly
    fm = [m.mpf(1 if k + base >= d else 0) for d in df for k in range(levels)]
    im = [m.mpf(1 if k + base <= d else 0) for d in di for k in range(levels)]
    return _obj(fm, shape), _obj(im, shape)


def partitioned_update(c_prev, c_hat, f, i, d_f, d_i, chunk=1, base=0):
    r"""The post's hard update, case by case (levels of neuron k: k // C).

    d_f ≤ d_i: c_k = ĉ_k (k < d_f), f_k c_{t−1,k} + i_k ĉ_k (d_f ≤ k ≤ d_i), c_{t−1,k} (k > d_i);
    d_f > d_i: c_k = ĉ_k (k ≤ d_i), 0 (d_i < k < d_f), c_{t−1,k} (k ≥ d_f).

    Parameters
    ----------
    c_prev, c_hat, f, i : object arrays (B, N); d_f, d_i : int arrays (B,); chunk : C; base : 0/1.

    Returns
    -------
    object array (B, N).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the two cases of the partitioned update).
    """
    m = _m()
    cp, ch, ff, ii = (onp.asarray(a, dtype=object).tolist() for a in (c_prev, c_hat, f, i))
    B, N = onp.shape(c_prev)
    out = []
    for bb in range(B):
        a, b = int(d_f[bb]) - base, int(d_i[bb]) - base
        for n in range(N):
            k = n // chunk
            if a <= b:
                v = ch[bb][n] if k < a else (ff[bb][n] * cp[bb][n] + ii[bb][n] * ch[bb][n]
                                             if k <= b else cp[bb][n])
            else:
                v = ch[bb][n] if k <= b else (m.mpf(0) if k < a else cp[bb][n])
            out.append(v)
    return _obj(out, (B, N))


def _update(cp, ch, f, i, fm, im):
    # ω = f̃ ĩ;  c_t = ω (f c_{t−1} + i ĉ) + (f̃ − ω) c_{t−1} + (ĩ − ω) ĉ
    w = fm * im
    return w * (f * cp + i * ch) + (fm - w) * cp + (im - w) * ch


def cell_update(c_prev, c_hat, f, i, f_master, i_master, chunk=1):
    r"""The unified update with master gates f̃, ĩ (level granularity, expanded by C).

    .. math:: \omega = \tilde f \odot \tilde i, \qquad
              c_t = \omega \odot (f \odot c_{t-1} + i \odot \hat c)
              + (\tilde f - \omega) \odot c_{t-1} + (\tilde i - \omega) \odot \hat c

    Parameters
    ----------
    c_prev, c_hat, f, i : object arrays (B, N); f_master, i_master : (B, N / C); chunk : C.

    Returns
    -------
    object array (B, N).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified formula).
    """
    cp, ch, ff, ii = (onp.asarray(a, dtype=object).tolist() for a in (c_prev, c_hat, f, i))
    fm, im = (onp.asarray(a, dtype=object).tolist() for a in (f_master, i_master))
    B, N = onp.shape(c_prev)
    out = [_update(cp[b][n], ch[b][n], ff[b][n], ii[b][n], fm[b][n // chunk], im[b][n // chunk])
           for b in range(B) for n in range(N)]
    return _obj(out, (B, N))


# ---------------------------------------------------------------------------
# The cell and the layer
# ---------------------------------------------------------------------------

#: gate blocks of the pre-activation axis in each layout (fm = f̃, im = ĩ: L wide; others N wide)
_ORDER = {"su": ("fm", "im", "f", "i", "o", "c"), "official": ("im", "fm", "o", "c", "i", "f")}


def _dropconnect(weights, masks, convention, p, on):
    """Apply DropConnect to a dict of weight arrays (object arrays, in their own layout).

    inverted: w ⊙ m / (1 − p) (training), w (evaluation); official: w ⊙ m (training),
    w (1 − p) (evaluation, p > 0). ``on`` defaults to both kernels (inverted) or U only (official).
    """
    m = _m()
    p = m.mpf(p)
    if on is None:
        on = ("W", "U") if convention == "inverted" else ("U",)
    out = dict(weights)
    for k in on:
        w = weights[k]
        if masks is None:
            if convention == "official" and p > 0:
                out[k] = w * (1 - p)
            continue
        keep = onp.asarray(masks[k])
        kept = onp.where(keep, w, m.mpf(0))
        out[k] = kept / (1 - p) if convention == "inverted" else kept
    return out


class _Units:
    """Per pre-activation unit: input weights (D), recurrent weights (N), bias; by gate."""

    def __init__(self, win, wrec, bias, layout, L, N):
        self.L, self.N = L, N
        self.gates, start = {}, 0
        for g in _ORDER[layout]:
            width = L if g in ("fm", "im") else N
            self.gates[g] = [(win[j], wrec[j], bias[j]) for j in range(start, start + width)]
            start += width


def _units_su(W, U, b, L):
    """Units of the canonical layout: column j of W (D,), of U (N,), b_j."""
    Wc = onp.asarray(W, dtype=object).T.tolist()
    Uc = onp.asarray(U, dtype=object).T.tolist()
    return _Units(Wc, Uc, list(onp.asarray(b, dtype=object)), "su", L, onp.shape(U)[0])


def _units_official(W_ih, b_ih, W_hh, b_hh, L):
    """Units of the official layout: row r of W_ih (D,), of W_hh (N,), b_ih[r] + b_hh[r]."""
    bias = [u + v for u, v in zip(onp.asarray(b_ih, dtype=object), onp.asarray(b_hh, dtype=object))]
    return _Units(onp.asarray(W_ih, dtype=object).tolist(), onp.asarray(W_hh, dtype=object).tolist(),
                  bias, "official", L, onp.shape(W_hh)[1])


def _step(units, x, h, c, C, master_input):
    """One step for one sequence: lists x (D), h (N), c (N) → (h, c, f̃ (L), ĩ (L))."""
    m = _m()
    fdot, exp, tanh = m.fdot, m.exp, m.tanh

    def pre(g):
        # z_j = Σ_d x_d W_dj + Σ_n h_n U_nj + b_j
        return [fdot(wi, x) + fdot(wr, h) + bj for wi, wr, bj in units.gates[g]]
    fm, im = _gates_lists(pre("fm"), pre("im"), master_input)
    # f = σ(z_f), i = σ(z_i), o = σ(z_o), ĉ = tanh(z_c)
    f = [1 / (1 + exp(-z)) for z in pre("f")]
    i = [1 / (1 + exp(-z)) for z in pre("i")]
    o = [1 / (1 + exp(-z)) for z in pre("o")]
    ch = [tanh(z) for z in pre("c")]
    # the unified update, neuron n on level n // C
    c_new = [_update(c[n], ch[n], f[n], i[n], fm[n // C], im[n // C]) for n in range(units.N)]
    # h_t = o ⊙ tanh(c_t)
    h_new = [o[n] * tanh(c_new[n]) for n in range(units.N)]
    return h_new, c_new, fm, im


def _chunk(N, levels, chunk):
    return N // levels if levels is not None else chunk


def _scan(units, x, h0, c0, C, master_input):
    """Run the cell over T for every sequence; lists out[b][t] of (h, c, f̃, ĩ)."""
    out = []
    for xb, h, c in zip(x, h0, c0):
        seq = []
        for xt in xb:
            h, c, fm, im = _step(units, xt, h, c, C, master_input)
            seq.append((h, c, fm, im))
        out.append(seq)
    return out


def _layer_outputs(seqs):
    """The six arrays of a layer from the scan: h, c, f̃, ĩ, distance, distance_in."""
    m = _m()
    B, T = len(seqs), len(seqs[0])
    N, L = len(seqs[0][0][0]), len(seqs[0][0][2])
    flat = [[v for s in seqs for st in s for v in st[k]] for k in range(4)]
    # distance = 1 − (1/L) Σ_k f̃_k;  distance_in = (1/L) Σ_k ĩ_k
    dist = [1 - m.fsum(st[2]) / L for s in seqs for st in s]
    dist_in = [m.fsum(st[3]) / L for s in seqs for st in s]
    return (_obj(flat[0], (B, T, N)), _obj(flat[1], (B, T, N)), _obj(flat[2], (B, T, L)),
            _obj(flat[3], (B, T, L)), _obj(dist, (B, T)), _obj(dist_in, (B, T)))


def _state(a, B, N):
    m = _m()
    return [[m.mpf(0)] * N for _ in range(B)] if a is None else onp.asarray(a, dtype=object).tolist()


def _su_layer(x, h0, c0, W, U, b, levels=None, chunk=None, master_input="su",
              dropconnect_masks=None, dropconnect="inverted", dropconnect_p=0.0, dropconnect_on=None):
    N = onp.shape(U)[0]
    C = _chunk(N, levels, chunk)
    L = N // C
    w = _dropconnect({"W": W, "U": U}, dropconnect_masks, dropconnect, dropconnect_p, dropconnect_on)
    units = _units_su(w["W"], w["U"], b, L)
    B = onp.shape(x)[0]
    seqs = _scan(units, onp.asarray(x, dtype=object).tolist(), _state(h0, B, N), _state(c0, B, N),
                 C, master_input)
    return _layer_outputs(seqs)


def _official_layer(x, h0, c0, W_ih, b_ih, W_hh, b_hh, levels=None, chunk=None, master_input="su",
                    dropconnect_masks=None, dropconnect="inverted", dropconnect_p=0.0,
                    dropconnect_on=None):
    N = onp.shape(W_hh)[1]
    C = _chunk(N, levels, chunk)
    L = N // C
    # DropConnect in the official layout: "W" is ih.0.weight, "U" is hh.weight
    w = _dropconnect({"W": W_ih, "U": W_hh}, dropconnect_masks, dropconnect, dropconnect_p,
                     dropconnect_on)
    units = _units_official(w["W"], b_ih, w["U"], b_hh, L)
    B = onp.shape(x)[0]
    seqs = _scan(units, onp.asarray(x, dtype=object).tolist(), _state(h0, B, N), _state(c0, B, N),
                 C, master_input)
    return _layer_outputs(seqs)


def _as_cell(outs):
    h, c, fm, im = outs[:4]
    return h[:, 0], c[:, 0], fm[:, 0], im[:, 0]


def cell(x, h, c, W, U, b, **kw):
    r"""One ON-LSTM step, canonical layout (columns [f̃ | ĩ | f | i | o | ĉ]).

    .. math::
        z &= x W + h_{t-1} U + b, \quad f, i, o = \sigma(z_{f,i,o}), \quad \hat c = \tanh(z_c), \\
        \tilde f &= \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a_{\tilde f})), \quad
        \tilde i = \overleftarrow{\mathrm{cs}}(\mathrm{softmax}(a_{\tilde i})), \quad
        \omega = \tilde f \tilde i, \\
        c_t &= \omega (f c_{t-1} + i \hat c) + (\tilde f - \omega) c_{t-1} + (\tilde i - \omega)
        \hat c, \qquad h_t = o \tanh(c_t)

    Parameters
    ----------
    x (B, D), h, c (B, N), W (D, 2L + 4N), U (N, 2L + 4N), b (2L + 4N,): object arrays of mpf;
    kw: levels or chunk, master_input, dropconnect, dropconnect_p, dropconnect_on.

    Returns
    -------
    (h (B, N), c (B, N), f_master (B, L), i_master (B, L)).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the ON-LSTM equations); the Keras code's layout.
    """
    return _as_cell(_su_layer(onp.asarray(x, dtype=object)[:, None, :], h, c, W, U, b, **kw))


def cell_official(x, h, c, W_ih, b_ih, W_hh, b_hh, **kw):
    r"""One ON-LSTM step with the official weights: z = (W_ih x + b_ih) + (W_hh h + b_hh).

    Rows of z: [ĩ (L) | f̃ (L) | o (N) | ĉ (N) | i (N) | f (N)]; the rest as :func:`cell`.

    Parameters
    ----------
    x (B, D), h, c (B, N), W_ih (2L + 4N, D), b_ih, W_hh (2L + 4N, N), b_hh (2L + 4N,).

    Returns
    -------
    (h, c, f_master, i_master).

    Notes
    -----
    Source: https://kexue.fm/archives/6621; ON_LSTM.py ``ONLSTMCell.forward`` (yikangshen/Ordered-Neurons).
    """
    return _as_cell(_official_layer(onp.asarray(x, dtype=object)[:, None, :], h, c, W_ih, b_ih,
                                    W_hh, b_hh, **kw))


def layer(x, h0, c0, W, U, b, **kw):
    r"""The cell scanned over t = 1..T, with d_t = 1 − mean_k f̃_{t,k}, d^in_t = mean_k ĩ_{t,k}.

    Parameters
    ----------
    x (B, T, D), h0, c0 (B, N), W, U, b (canonical layout).

    Returns
    -------
    (h, c (B, T, N), f_master, i_master (B, T, L), distance, distance_in (B, T)).

    Notes
    -----
    Source: https://kexue.fm/archives/6621; the Keras code's ``distance`` / ``distance_in``.
    """
    return _su_layer(x, h0, c0, W, U, b, **kw)


def layer_official(x, h0, c0, W_ih, b_ih, W_hh, b_hh, **kw):
    r"""The layer with the official weights (see :func:`cell_official`).

    Returns
    -------
    the six arrays of :func:`layer`.

    Notes
    -----
    Source: ON_LSTM.py ``ONLSTMStack.forward`` (one layer, batch-first).
    """
    return _official_layer(x, h0, c0, W_ih, b_ih, W_hh, b_hh, **kw)


def layer_dropconnect(x, h0, c0, W, U, b, keep_W, keep_U, **kw):
    r"""The layer with DropConnect on both kernels: W ⊙ m_W, U ⊙ m_U, / (1 − p) if "inverted".

    Returns
    -------
    the six arrays of :func:`layer`.

    Notes
    -----
    Source: the Keras code (``K.dropout`` on both kernels, inverted); ON_LSTM.py
    ``LinearDropConnect`` (no rescaling in training).
    """
    return _su_layer(x, h0, c0, W, U, b, dropconnect_masks={"W": keep_W, "U": keep_U},
                     dropconnect_on=("W", "U"), **kw)


def layer_official_dropconnect(x, h0, c0, W_ih, b_ih, W_hh, b_hh, keep_hh, **kw):
    r"""An official training step: W_hh ⊙ keep_hh (official layout, no rescaling).

    Returns
    -------
    the six arrays of :func:`layer`.

    Notes
    -----
    Source: ON_LSTM.py ``LinearDropConnect.forward`` (training branch: weight masked, unscaled).
    """
    return _official_layer(x, h0, c0, W_ih, b_ih, W_hh, b_hh, dropconnect="official",
                           dropconnect_masks={"U": keep_hh}, dropconnect_on=("U",), **kw)


def stack2(x, W0, U0, b0, W1, U1, b1, keep_dropout, levels, dropout_p=0.0, master_input="su"):
    r"""Two layers with zero initial states and inverted dropout between them.

    .. math:: h^{(1)} = \mathrm{ONLSTM}_0(x), \qquad
              h^{(2)} = \mathrm{ONLSTM}_1\big(m \odot h^{(1)} / (1 - p)\big)

    Parameters
    ----------
    x (B, T, D); W0, U0, b0 and W1, U1, b1 canonical weights; keep_dropout bool (B, N_0)
    (shared over time) or (B, T, N_0); levels [L_0, L_1]; dropout_p p; master_input.

    Returns
    -------
    (h (B, T, N_1), distance (2, B, T), distance_in (2, B, T)).

    Notes
    -----
    Source: ON_LSTM.py ``ONLSTMStack`` (``LockedDropout``, inverted).
    """
    m = _m()
    out0 = _su_layer(x, None, None, W0, U0, b0, levels=levels[0], master_input=master_input)
    h = out0[0]
    keep = onp.asarray(keep_dropout)
    if keep.ndim == 2:
        keep = keep[:, None, :]
    # h ← m ⊙ h / (1 − p)
    inp = onp.where(onp.broadcast_to(keep, h.shape), h, m.mpf(0)) / (1 - m.mpf(dropout_p))
    out1 = _su_layer(inp, None, None, W1, U1, b1, levels=levels[1], master_input=master_input)
    return (out1[0], onp.stack([out0[4], out1[4]]), onp.stack([out0[5], out1[5]]))


# ---------------------------------------------------------------------------
# Soft level and distances
# ---------------------------------------------------------------------------

def soft_level(f_master, base=0):
    r"""d_f = Σ_k (k + base) p_f(k) with p_f(k) = f̃_k − f̃_{k−1}, f̃_{−1} = 0.

    Parameters
    ----------
    f_master : object array (..., L); base : 0 or 1 (the post's 1-based levels).

    Returns
    -------
    object array (...).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (d_f = Σ_{k=1}^{L} k p_f(k), the expected level).
    """
    m = _m()
    rows, lead = _rows(f_master)
    out = []
    for r in rows:
        # p_f(k) = f̃_k − f̃_{k−1}
        p = [r[k] - (r[k - 1] if k else 0) for k in range(len(r))]
        out.append(m.fsum((k + base) * p[k] for k in range(len(r))))
    return _obj(out, lead)


def distance(f_master):
    r"""d = 1 − (1/L) Σ_k f̃_k (the codes' syntactic distance).

    Parameters
    ----------
    f_master : object array (..., L).

    Returns
    -------
    object array (...).

    Notes
    -----
    Source: https://kexue.fm/archives/6621; the Keras code's ``distance``.
    """
    m = _m()
    rows, lead = _rows(f_master)
    return _obj([1 - m.fsum(r) / len(r) for r in rows], lead)


def distance_in(i_master):
    r"""d^in = (1/L) Σ_k ĩ_k.

    Parameters
    ----------
    i_master : object array (..., L).

    Returns
    -------
    object array (...).

    Notes
    -----
    Source: the Keras code's ``distance_in``; ON_LSTM.py ``distance_cin``.
    """
    m = _m()
    rows, lead = _rows(i_master)
    return _obj([m.fsum(r) / len(r) for r in rows], lead)


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------

def _split(d, lo, hi):
    """The first index of the largest d on [lo, hi)."""
    k = lo
    for t in range(lo + 1, hi):
        if d[t] > d[k]:
            k = t
    return k


def _tree(tokens, d, lo, hi, spans):
    """The bracket string of the greedy tree of tokens[lo:hi]; adds every list node's span."""
    if hi - lo == 1:
        return tokens[lo]
    k = _split(d, lo, hi)
    spans.add((lo, hi))
    if k == lo:
        # [x_k, tree(right)]
        return f"({tokens[k]} {_tree(tokens, d, k + 1, hi, spans)})"
    if k == hi - 1:
        # [tree(left), x_k]
        return f"({_tree(tokens, d, lo, k, spans)} {tokens[k]})"
    # [tree(left), [x_k, tree(right)]]
    spans.add((k, hi))
    return f"({_tree(tokens, d, lo, k, spans)} ({tokens[k]} {_tree(tokens, d, k + 1, hi, spans)}))"


def _spans(d):
    """Non-trivial spans (length ≥ 2, not the whole sentence) of the greedy tree of d."""
    T = len(d)
    spans = set()
    _tree([str(t) for t in range(T)], d, 0, T, spans)
    return {s for s in spans if s[1] - s[0] >= 2 and s != (0, T)}


def induced_tree(d, tokens):
    r"""Greedy top-down parse: split at k = argmax_t d_t (first on ties), recurse.

    tree(x) = x_k (one token); [tree(x_<k), [x_k, tree(x_>k)]]; [tree(x_<k), x_k] (right empty);
    [x_k, tree(x_>k)] (left empty).

    Parameters
    ----------
    d : object array (T,) of mpf; tokens : str array (T,).

    Returns
    -------
    (brackets 0-d str array, spans (S, 2) int64: the non-trivial half-open spans, sorted).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (split at the largest d_f); test_phrase_grammar.py
    ``build_tree`` / ``get_brackets`` (yikangshen/Ordered-Neurons).
    """
    d = list(onp.asarray(d, dtype=object))
    toks = [str(t) for t in onp.asarray(tokens).tolist()]
    spans = set()
    br = _tree(toks, d, 0, len(d), spans)
    T = len(d)
    keep = sorted(s for s in spans if s[1] - s[0] >= 2 and s != (0, T))
    return onp.array(br), onp.array(keep, dtype=onp.int64).reshape(-1, 2)


def tree_f1(d, d_gold):
    r"""Unlabeled bracket precision, recall and F1 of the greedy trees of d and d_gold.

    .. math:: P = |S \cap G| / |S|, \quad R = |S \cap G| / |G|, \quad F_1 = 2PR / (P + R)

    (S = G = ∅: P = 1; G = ∅: R = 1; P + R = 0: F_1 = 0.)

    Parameters
    ----------
    d, d_gold : object arrays (T,) of mpf.

    Returns
    -------
    (precision, recall, f1) as 0-d object arrays of exact Fractions.

    Notes
    -----
    Source: test_phrase_grammar.py ``test`` (sentence-level unlabeled F1), exact.
    """
    s = _spans(list(onp.asarray(d, dtype=object)))
    g = _spans(list(onp.asarray(d_gold, dtype=object)))
    hit = len(s & g)
    P = Fraction(hit, len(s)) if s else Fraction(1 if not g else 0)
    R = Fraction(hit, len(g)) if g else Fraction(1)
    F = 2 * P * R / (P + R) if P + R > 0 else Fraction(0)
    return _scalar(P), _scalar(R), _scalar(F)


# ---------------------------------------------------------------------------
# Exact VJPs where central differences lose the small entries
# ---------------------------------------------------------------------------

def _softmax_vjp_rows(a_rows, G_rows):
    """∂/∂a_m Σ_j p_j G_j = p_m Σ_j p_j (G_m − G_j), p = softmax(a), for every row."""
    m = _m()
    out = []
    for a, G in zip(a_rows, G_rows):
        p = _softmax_list(a)
        out.append([p[k] * m.fsum(p[j] * (G[k] - G[j]) for j in range(len(p)))
                    for k in range(len(p))])
    return out


def _cot_rows(u, L, C=1):
    """Cotangent rows (..., L·C) folded to levels: U_k = Σ_c u_{kC + c} (the VJP of the expansion)."""
    m = _m()
    rows = onp.asarray(u, dtype=onp.float64).reshape(-1, L * C).tolist()
    return [[m.fsum(m.mpf(r[k * C + c]) for c in range(C)) for k in range(L)] for r in rows]


def cumax_grad(a, cotangents, axis=-1):
    r"""Exact VJP of :func:`cumax` for the cotangent u.

    .. math:: \phi = \sum_k u_k \tilde f_k = \sum_j p_j G_j, \quad G_j = \sum_{k \ge j} u_k,
              \qquad \partial\phi / \partial a_m = p_m \sum_j p_j (G_m - G_j)

    Parameters
    ----------
    a : object array (..., L, ...); cotangents : {"out": float array, the shape of a}; axis.

    Returns
    -------
    {"a": object array, the shape of a}.

    Notes
    -----
    Written without the cancellation of G_m − Σ_j p_j G_j, so entries of size e^{−90} next to
    entries of size 1 (saturated logits) are exact; central differences of φ = O(1) would
    lose them. Source: the softmax Jacobian ∂p_j/∂a_m = p_j (δ_jm − p_m).
    """
    m = _m()
    a = onp.moveaxis(onp.asarray(a, dtype=object), axis, -1)
    L = a.shape[-1]
    u = onp.moveaxis(onp.asarray(cotangents["out"], dtype=onp.float64), axis, -1)
    rows, _ = _rows(a)
    # G_j = Σ_{k ≥ j} u_k
    G = [[m.fsum(r[j:]) for j in range(L)] for r in _cot_rows(u, L)]
    g = _softmax_vjp_rows(rows, G)
    return {"a": onp.moveaxis(_obj([v for r in g for v in r], a.shape), -1, axis)}


def master_gates_grad(a_f, a_i, cotangents, master_input="su", chunk=1):
    r"""Exact VJP of :func:`master_gates` for cotangents u (of f̃) and w (of ĩ), both (..., L·C).

    .. math:: U_k = \sum_c u_{kC+c}, \quad G_j = \sum_{k \ge j} U_k; \qquad
              W_k = \sum_c w_{kC+c}, \quad H_j = \sum_{k \le j} W_k \ (\text{su}), \
              \sum_{k < j} W_k \ (\text{paper})

    and ∂/∂a_m = p_m Σ_j p_j (G_m − G_j) (resp. H for a_i).

    Parameters
    ----------
    a_f, a_i : object arrays (..., L); cotangents : {"f_master", "i_master"}; master_input; chunk.

    Returns
    -------
    {"a_f", "a_i"}: object arrays (..., L).

    Notes
    -----
    Source: the softmax Jacobian and the post's f̃ = cs→(softmax), ĩ = cs←(softmax).
    """
    m = _m()
    L = onp.shape(a_f)[-1]
    rf, lead = _rows(a_f)
    ri, _ = _rows(a_i)
    out = {}
    U = _cot_rows(cotangents["f_master"], L, chunk)
    G = [[m.fsum(r[j:]) for j in range(L)] for r in U]
    W = _cot_rows(cotangents["i_master"], L, chunk)
    # ĩ_k = Σ_{j ≥ k} p_j (su) or Σ_{j > k} p_j (paper): φ = Σ_j p_j H_j
    H = [[m.fsum(r[:j + 1] if master_input == "su" else r[:j]) for j in range(L)] for r in W]
    for name, rows, C in (("a_f", rf, G), ("a_i", ri, H)):
        g = _softmax_vjp_rows(rows, C)
        out[name] = _obj([v for r in g for v in r], onp.shape(a_f))
    return out


TRUTH = {f"on_lstm.{fn.__name__}": fn for fn in (
    cumax, master_gates, expand_levels, hard_master_gates, partitioned_update, cell_update, cell,
    cell_official, layer, layer_official, layer_dropconnect, layer_official_dropconnect, stack2,
    soft_level, distance, distance_in, induced_tree, tree_f1)}
GRADS = {"on_lstm.cumax": cumax_grad, "on_lstm.master_gates": master_gates_grad}

_GRAD_REASON = (
    "reverse-mode float64 VJP of a composite: each gradient entry is a sum of many rounded "
    "products (the softmax VJP of the master gates, the cumsum VJPs, the gate products of the "
    "update and the matrix products over D + N terms{steps}) whose terms are of the member's "
    "size S, so a few roundings of size eps·S add up; measured up to {seen} eps·S")


def _grad_bound(members, eps_scale, seen, steps=""):
    return {"ulps": 2, "eps_scale": eps_scale, "members": members,
            "reason": _GRAD_REASON.format(seen=seen, steps=steps)}


_CELL = ["grad.x", "grad.h", "grad.c", "grad.W", "grad.U", "grad.b"]
_CELL_OFF = ["grad.x", "grad.h", "grad.c", "grad.W_ih", "grad.b_ih", "grad.W_hh", "grad.b_hh"]
_LAYER = ["grad.x", "grad.h0", "grad.c0", "grad.W", "grad.U", "grad.b"]
_LAYER_OFF = ["grad.x", "grad.h0", "grad.c0", "grad.W_ih", "grad.b_ih", "grad.W_hh", "grad.b_hh"]
_STEPS = ", chained over T steps through h and c"
BOUNDS = {
    "on_lstm.cumax[L115]": {
        "ulps": 2, "eps_scale": 1.5, "members": ["output.out", "grad.a"],
        "reason": "115 softmax terms, each with ~2 ulp relative error (exp, the sum, the "
                  "division), summed into the cdf; near 1/2 neither side of the two-sided "
                  "cumulative sum is short; measured 1.1 eps·S (a plain cumsum reached 2)"},
    "on_lstm.cumax": _grad_bound(["grad.a"], 1.5, 1.3),
    "on_lstm.master_gates": _grad_bound(["grad.a_f", "grad.a_i"], 1.5, 1.13),
    "on_lstm.cell": _grad_bound(_CELL, 1.5, 1.25),
    "on_lstm.cell_official": _grad_bound(_CELL_OFF, 1.5, 1.1),
    "on_lstm.layer": _grad_bound(_LAYER, 3, 2.2, _STEPS),
    "on_lstm.layer_official": _grad_bound(_LAYER_OFF, 2, 1.3, _STEPS),
    "on_lstm.layer_dropconnect": _grad_bound(_LAYER, 2, 1.45, _STEPS),
    "on_lstm.layer_official_dropconnect": _grad_bound(_LAYER_OFF, 2, 1.05, _STEPS),
    "on_lstm.stack2": _grad_bound(["grad.x", "grad.W0", "grad.U0", "grad.b0", "grad.W1",
                                   "grad.U1", "grad.b1"], 2, 1.6,
                                  _STEPS + " and through two layers"),
}
