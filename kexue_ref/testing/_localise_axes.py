"""Localisation, the generic part: the axis table of each op family and statistics along axes.

Used by :func:`kexue_ref.testing.localise.localise` for every op: :func:`axis_names` (what
each axis of a compared member is), :func:`mismatch_mask` (the failing entries, as ``check``
counts them), the matcher of a hypothesis, the generic hypotheses that need no oracle call (a
constant offset or factor, transposed axes, a shift by one), the masked classes of the
softmax and sequence ops, the description of the projection of the bad entries on each axis,
and the growth of the error along a position axis. The attention family's hypotheses are in
``kexue_ref.testing._localise_attention``. The steps are described in ``docs/localisation.md``.
"""
import numpy as onp

from kexue_ref import registry

__all__ = ["axis_names", "mismatch_mask"]

# ---------------------------------------------------------------------------
# The axis table
# ---------------------------------------------------------------------------

#: attention ops -> the pattern their allowed mask follows (None: given as an input)
_ATTENTION = {
    "sparse_attention.attention": None,
    "sparse_attention.indexed_attention": "indexed",
    "sparse_attention.atrous_attention": "atrous",
    "sparse_attention.local_attention": "local",
    "sparse_attention.sparse_attention": "sparse",
    "sparse_attention.atrous_attention_blocked": "atrous",
    "sparse_attention.local_attention_blocked": "local",
    "sparse_attention.sparse_attention_blocked": "sparse",
}
#: DGCNN ops whose sequence members are (B, T, F)
_DGCNN_SEQ = ("dgcnn.dilated_conv1d", "dgcnn.dgcnn_block", "dgcnn.dgcnn_stack",
              "dgcnn.multihead_attention", "dgcnn.gru", "dgcnn.lstm", "dgcnn.birnn",
              "dgcnn.seq_maxpool", "dgcnn.conv1d_torch")
_ON_LSTM_CELL = ("on_lstm.cell", "on_lstm.cell_official")
_ON_LSTM_LAYER = ("on_lstm.layer", "on_lstm.layer_official", "on_lstm.layer_dropconnect",
                  "on_lstm.layer_official_dropconnect", "on_lstm.stack2")
_SOFTMAX_LIKE = ("numerics.masked_softmax", "numerics.softmax", "numerics.log_softmax")

#: axis kind -> (label, plural, length symbol)
_LABELS = {
    "batch": ("batch", "batches", "B"), "head": ("head", "heads", "H"),
    "query": ("query position", "query positions", "T"), "key": ("key position", "key positions", "T"),
    "time": ("time step", "time steps", "T"), "feature": ("feature", "features", "F"),
    "unit": ("unit", "units", "N"), "level": ("level", "levels", "L"),
    "pos": ("position", "positions", "n"),
}
#: axis kinds along which an error may "grow with the position"
_POSITIONAL = ("query", "key", "time", "pos")


def _parse_what(what):
    """("value"|"grad"|"", member) from a compared member's name such as "grad k"."""
    parts = str(what).split()
    if len(parts) == 2 and parts[0] in ("value", "grad"):
        return parts[0], parts[1]
    return "", str(what)


def axis_names(case, what, ndim):
    """The kinds of the axes of one compared member, from the op family's table.

    Parameters
    ----------
    case : kexue_ref.registry.Case.
    what : str, the compared member, ``"value <output>"`` or ``"grad <input>"``.
    ndim : int, the member's number of dimensions.

    Returns
    -------
    list of str, one kind per axis among ``batch``, ``head``, ``query`` (query position),
    ``key`` (key position), ``time`` (time step), ``feature``, ``unit`` (ON-LSTM neuron, a
    level of C units), ``level``, ``pos`` (the softmax axis); or None when the op or the rank
    is not in the table (the caller then uses "axis 0", "axis 1", …).

    The table:

    ======================================  ===================  =================================
    ops                                     member               axes
    ======================================  ===================  =================================
    sparse_attention.* (q, k, v)            value out, grad q    batch, head, query, feature
    sparse_attention.* (q, k, v)            grad k, grad v       batch, head, key, feature
    dgcnn sequence ops                      (B, T, F) members    batch, time, feature
    on_lstm.cell, cell_official             h, c, grad h, c      batch, unit
    on_lstm.cell, cell_official             f_master, i_master   batch, level
    on_lstm.layer*, stack2                  h, c                 batch, time, unit
    on_lstm.layer*, stack2                  f/i_master           batch, time, level
    on_lstm.layer*, stack2                  distance(_in)        batch, time
    on_lstm.master_gates, cumax             gates, grads         batch…, unit (level if C = 1)
    numerics.(masked_)softmax, log_softmax  out, grad x          …, pos (the ``axis`` parameter)
    ======================================  ===================  =================================
    """
    if not isinstance(case, registry.Case):
        raise TypeError(f"case must be a kexue_ref.registry.Case, got {type(case).__name__}")
    kind, member = _parse_what(what)
    op = case.spec.name
    names = None
    if op in _ATTENTION and member in ("out", "q", "k", "v"):
        # values and grad q run over queries, grad k and grad v over keys
        names = ["batch", "head", "key" if kind == "grad" and member in ("k", "v") else "query",
                 "feature"]
    elif op in _DGCNN_SEQ and ndim == 3:
        names = ["batch", "time", "feature"]
    elif op in _ON_LSTM_CELL:
        if member in ("f_master", "i_master"):
            names = ["batch", "level"]
        elif member in ("h", "c"):
            names = ["batch", "unit"]
        elif member == "x":
            names = ["batch", "feature"]
    elif op in _ON_LSTM_LAYER:
        names = {"h": ["batch", "time", "unit"], "c": ["batch", "time", "unit"],
                 "f_master": ["batch", "time", "level"], "i_master": ["batch", "time", "level"],
                 "distance": ["batch", "time"], "distance_in": ["batch", "time"],
                 "x": ["batch", "time", "feature"], "h0": ["batch", "unit"],
                 "c0": ["batch", "unit"]}.get(member)
    elif op in ("on_lstm.master_gates", "on_lstm.cumax") and ndim >= 1:
        names = ["batch"] * (ndim - 1) + ["unit"]
        if op == "on_lstm.cumax" and case.params.get("axis", -1) % ndim != ndim - 1:
            names = None
    elif op in _SOFTMAX_LIKE and ndim >= 1:
        axis = case.params.get("axis", -1) % ndim
        names = ["axis"] * ndim
        names[axis] = "pos"
    if names is not None and len(names) != ndim:
        return None
    return names


# ---------------------------------------------------------------------------
# Matching a hypothesis
# ---------------------------------------------------------------------------

def mismatch_mask(actual, expected, rtol, atol):
    """The entries outside ``|a − e| ≤ atol + rtol·|e|``, as ``check``'s ``compare`` counts them.

    Parameters
    ----------
    actual, expected : float arrays of the same shape.
    rtol, atol : floats ≥ 0.

    Returns
    -------
    bool array of the shape: True where the entry fails. Where the oracle is not finite the
    candidate must equal it: the same infinity, or NaN where the oracle is NaN.
    """
    a = onp.asarray(actual, dtype=onp.float64)
    e = onp.asarray(expected, dtype=onp.float64)
    if a.shape != e.shape:
        raise ValueError(f"actual of shape {a.shape} and expected of shape {e.shape} differ")
    # the same infinity at the same place is a match
    same_special = ((onp.isinf(a) & onp.isinf(e) & (onp.sign(a) == onp.sign(e)))
                    | (onp.isnan(a) & onp.isnan(e)))
    with onp.errstate(invalid="ignore", over="ignore"):
        diff = onp.where(same_special, 0.0, onp.abs(a - e))
        allowed = atol + rtol * onp.where(onp.isfinite(e), onp.abs(e), 0.0)
    # NaN differences compare False with <=, so they fail
    return ~(diff <= allowed)


def _abs_diff(a, h):
    """|a − h| with NaN and mismatched infinities as +inf."""
    with onp.errstate(invalid="ignore", over="ignore"):
        d = onp.abs(a - h)
    both_inf = onp.isinf(a) & onp.isinf(h) & (onp.sign(a) == onp.sign(h))
    d = onp.where(both_inf, 0.0, d)
    return onp.where(onp.isnan(d), onp.inf, d)


class _Matcher:
    """Whether the candidate equals a hypothesis: within (rtol, atol) if known, else to 1e-3
    of its largest finite error against the oracle."""

    def __init__(self, actual, expected, bad, rtol, atol):
        self.a = actual
        err = _abs_diff(actual, expected)[bad]
        finite = err[onp.isfinite(err)]
        self.scale = float(finite.max()) if finite.size else 0.0
        self.rtol, self.atol = rtol, atol

    def __call__(self, h, where=None):
        h = onp.asarray(h, dtype=onp.float64)
        if h.shape != self.a.shape:
            return False
        d = _abs_diff(self.a, h)
        if self.rtol is not None or self.atol is not None:
            limit = (self.atol or 0.0) + (self.rtol or 0.0) * onp.where(onp.isfinite(h), onp.abs(h), 0.0)
        else:
            # no tolerance given: 1000× closer to the hypothesis than to the oracle
            limit = onp.full(d.shape, 1e-3 * self.scale)
        ok = d <= limit
        return bool(onp.all(ok if where is None else ok[where]))



# ---------------------------------------------------------------------------
# Other masked classes
# ---------------------------------------------------------------------------

def _softmax_classes(case, names, actual, bad):
    """Fully masked rows of ``numerics.masked_softmax``: the mask has no True along the axis."""
    if case.spec.name != "numerics.masked_softmax" or names is None:
        return None
    axis = names.index("pos")
    mask = onp.broadcast_to(onp.asarray(case.inputs["mask"], bool), bad.shape)
    fully = ~mask.any(axis=axis)
    rowbad = bad.any(axis=axis)
    if not fully.any() or not onp.all(fully[rowbad]):
        return None
    text = (f"fully masked rows (all {fully.size})" if fully.all()
            else f"only fully masked rows ({int(fully.sum())} of {fully.size} rows)")
    rows = onp.moveaxis(actual, axis, -1)[rowbad]
    if onp.isnan(rows).any():
        text += "; the candidate returns NaN there (the post: 0)"
    elif onp.allclose(rows, 1.0 / actual.shape[axis]):
        text += "; the candidate returns the uniform distribution there, as a finite fill gives (the post: 0)"
    return text


def _sequence_classes(case, names, bad):
    """Padded time steps (mask False) of the DGCNN ops that take a (B, T) mask."""
    if names is None or names[:2] != ["batch", "time"] or "mask" not in case.inputs:
        return None
    mask = onp.asarray(case.inputs["mask"])
    if mask.shape != bad.shape[:2]:
        return None
    valid = mask.astype(bool)
    stepbad = bad.reshape(bad.shape[:2] + (-1,)).any(axis=-1)
    if valid.all() or not onp.all(~valid[stepbad]):
        return None
    empty = ~valid.any(axis=1)
    samples = sorted({int(b) for b in onp.nonzero(stepbad)[0]})
    if all(empty[b] for b in samples):
        return f"only the fully padded sample{'s' if len(samples) > 1 else ''} (batch {', '.join(map(str, samples))})"
    return f"only padded time steps (mask False: {int((~valid).sum())} of {valid.size})"


# ---------------------------------------------------------------------------
# Axes: describing the projection of the bad entries
# ---------------------------------------------------------------------------

def _symbols(case):
    """Integer parameters an index set may relate to: {symbol: value}."""
    p = case.params
    out = {}
    for key, sym in (("rate", "R"), ("neighbors", "W"), ("block", "b"), ("chunk", "C"),
                     ("dilation", "r"), ("stride", "s")):
        value = p.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            out[sym] = value
    return out


def _relate(m, n, ctx):
    """A phrase relating a run of m indices at the end of n to a parameter, or ""."""
    for sym, val in ctx.items():
        if m == val:
            return f" = {sym}"
    for sym, val in ctx.items():
        if 1 < val < n and n % val == m:
            return f": the last partial group, T mod {sym} = {m}"
    return ""


def _describe(P, n, kind, ctx, label=None):
    """A phrase for the index set P ⊊ range(n) on an axis of this kind, or None when P is
    all of the axis, empty, or not a simple set."""
    P = sorted(int(i) for i in P)
    if not P or len(P) == n:
        return None
    default = (label or kind, (label or kind).replace("index", "indices"), "n")
    label, plural, sym = _LABELS.get(kind, default)
    if kind == "level":
        sym = "L"
    if len(P) == 1:
        i = P[0]
        if kind in _POSITIONAL and i == n - 1:
            return f"only the last {label} ({label} {i} = {sym}−1)"
        if kind in _POSITIONAL and i == 0:
            return f"only the first {label} ({label} 0)"
        return f"only {label} {i}" + (" (the last)" if kind == "level" and i == n - 1 else "")
    run = P == list(range(P[0], P[-1] + 1))
    if run and P[-1] == n - 1:
        m, s = n - P[0], P[0]
        rel = _relate(m, n, ctx)
        if not rel:
            # the run may start at a parameter (rows ≥ W+1 of a causal window) instead
            start = next((f"{k} = {s}" if s == val else f"{k}+1 = {s}"
                          for k, val in ctx.items() if s in (val, val + 1)), None)
            if start:
                return f"only {plural} ≥ {start} (the last {m})"
        return f"only {plural} ≥ {sym}−{m} = {s} (the last {m}{rel})"
    if run and P[0] == 0:
        m = P[-1] + 1
        rel = next((f" = {s}" for s, val in ctx.items() if val == m), "")
        return f"only {plural} < {m} (the first {m}{rel})"
    if run:
        return f"only {plural} {P[0]}–{P[-1]}"
    # both ends: [0, a) ∪ [c, n)
    gap = [i for i in range(n) if i not in P]
    if P[0] == 0 and P[-1] == n - 1 and gap == list(range(gap[0], gap[-1] + 1)):
        return f"only {plural} near both ends (< {gap[0]} or ≥ {gap[-1] + 1})"
    # a residue class modulo one of the case's integer parameters
    for s, p in ctx.items():
        if 2 <= p < n:
            res = sorted({i % p for i in P})
            if len(res) < p and P == [i for i in range(n) if i % p in res]:
                return f"only {plural} i with i mod {s} ∈ {{{', '.join(map(str, res))}}} ({s} = {p})"
    return None


def _level_chunk(case, N):
    """(C, L): units per level and the number of levels of an ON-LSTM member N units wide,
    or None when the parameters do not say (per-layer lists, sizes that do not divide)."""
    p = case.params
    levels, chunk = p.get("levels"), p.get("chunk", 1) or 1
    if levels:
        if not isinstance(levels, int) or N % levels:
            return None
        return N // levels, levels
    if not isinstance(chunk, int) or N % chunk:
        return None
    return chunk, N // chunk


def _axis_phrases(case, names, bad, ctx):
    """Phrases for the axes along which the bad entries are confined."""
    out = []
    for ax, kind in enumerate(names):
        n = bad.shape[ax]
        if n < 2:
            continue
        # the indices of this axis that hold at least one bad entry
        P = onp.nonzero(bad.any(axis=tuple(a for a in range(bad.ndim) if a != ax)))[0]
        if kind == "unit" and _level_chunk(case, n) is None:
            # levels unknown: plain units
            phrase = _describe(P, n, "unit", ctx)
        elif kind == "unit":
            C, L = _level_chunk(case, n)
            if C == 1:
                phrase = _describe(P, n, "level", ctx)
            else:
                levels = sorted({int(u) // C for u in P})
                phrase = _describe(levels, L, "level", ctx)
                if phrase is not None:
                    units = ", ".join(map(str, P[:6])) + (", …" if len(P) > 6 else "")
                    phrase += f" (units {units}; {C} units a level)"
        else:
            label = f"index on axis {ax}" if kind == "axis" else None
            phrase = _describe(P, n, kind, ctx, label=label)
        if phrase:
            out.append(phrase)
    return out


def _growth(names, actual, expected, bad):
    """"the error grows with the <axis>" when the per-index error rises steadily along a
    position axis that is bad at every index, else None."""
    err = _abs_diff(actual, expected)
    if not onp.all(onp.isfinite(err)):
        return None
    for ax, kind in enumerate(names):
        n = bad.shape[ax]
        if kind not in _POSITIONAL or n < 4:
            continue
        others = tuple(a for a in range(bad.ndim) if a != ax)
        if not onp.all(bad.any(axis=others)):
            continue
        e = err.max(axis=others)
        # Spearman's rank correlation of the error with the index (ties broken by position)
        ranks = onp.argsort(onp.argsort(e, kind="stable"), kind="stable")
        rho = onp.corrcoef(ranks, onp.arange(n))[0, 1]
        q = max(1, n // 4)
        first, last = e[:q].mean(), e[-q:].mean()
        if rho >= 0.9 and last >= 10 * max(first, onp.finfo(float).tiny):
            label = _LABELS[kind][0]
            return f"the error grows with the {label} (×{last / max(first, 1e-300):.2g} from the first to the last quarter)"
    return None


# ---------------------------------------------------------------------------
# Generic hypotheses (no oracle call)
# ---------------------------------------------------------------------------

def _generic_hypotheses(names, actual, expected, bad, match):
    """A phrase for an offset, a factor, a transpose or a shift by one that explains the
    candidate, or None."""
    a, e = actual, expected
    fin = bad & onp.isfinite(a) & onp.isfinite(e)
    if not fin.any():
        return None
    d = onp.median((a - e)[fin])
    if d != 0 and match(e + d):
        return f"the candidate is the oracle {d:+.6g} everywhere (a constant offset)"
    nz = fin & (e != 0)
    if nz.any():
        r = onp.median(a[nz] / e[nz])
        if r != 1 and match(r * e):
            if abs(r + 1) < 1e-9:
                return "the candidate is −1 × the oracle everywhere (a flipped sign)"
            return f"the candidate is {r:.6g} × the oracle everywhere (a constant factor)"
    if e.ndim >= 2 and e.shape[-1] == e.shape[-2] > 1 and match(onp.swapaxes(e, -1, -2)):
        return "the candidate is the oracle with its last two axes transposed"
    for ax in range(e.ndim):
        n = e.shape[ax]
        if n < 3:
            continue
        label = _LABELS.get(names[ax], (f"axis {ax}",))[0] if names else f"axis {ax}"
        for step in (1, -1):
            # the candidate's index i holds the oracle's index i − step (edge ignored)
            h = onp.roll(e, step, axis=ax)
            where = onp.ones(e.shape, bool)
            edge = [slice(None)] * e.ndim
            edge[ax] = 0 if step == 1 else n - 1
            where[tuple(edge)] = False
            if onp.any(bad & where) and match(h, where):
                sign = "i − 1" if step == 1 else "i + 1"
                return f"the candidate's {label} i holds the oracle's {label} {sign} (shifted by one)"
    return None

