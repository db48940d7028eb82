r"""Localisation: *where* a failing output's error lives, along each axis of the op.

A convention (``kexue_ref.testing.diagnose``) names a mismatch that is a documented choice;
:func:`localise` names one that is a structural bug. Given one compared member of one failing
case (``"value out"``, ``"grad k"``, …), the candidate's array, the oracle's and the boolean
array of entries outside the tolerance, it returns at most three one-line phrases such as

* ``"the candidate matches the oracle with keys at distance W+1 = 4 from the query also
  allowed: a window one too wide (|i − j| ≤ W+1)"`` (a hypothesis, re-run on the oracle),
* ``"only fully masked rows (5 of 10 query rows); the candidate returns NaN there"``,
* ``"only query positions ≥ T−3 = 10 (the last 3 = W)"``, ``"only level 0"``,
  ``"only the last time step (t = T−1 = 6)"``,
* ``"the error grows with the time step (×40 from the first to the last quarter)"``,
* ``"all entries (52/52): no structure along batch, head, query position, feature"``
  when nothing structural is found.

How it works, in order (each step adds at most one line):

1. **Hypotheses.** Cheap alternatives are tried and the first the candidate matches (within the
   comparison's tolerance when ``rtol``/``atol`` are given, else to 1e-3 of its error) is named:
   for the attention family a perturbed allowed-mask (a window one wider or narrower, no
   diagonal key, padded keys attended, the last partial group padded with attended zeros),
   evaluated with the dense oracle :func:`kexue_ref.sparse_attention.attention` (≤ 5 oracle
   evaluations, VJPs for gradient members); for every op a constant offset, a constant factor
   (a flipped sign), transposed last axes and a shift by one along a named axis (no oracle).
2. **Masked classes** from the case's inputs and parameters: fully masked or padded query rows
   (attention, masked softmax), padded or never-attended keys (gradients of k, v), padded
   time steps and fully padded samples (DGCNN), with what the candidate returns there
   (NaN, the uniform average).
3. **Axes.** The projection of ``bad`` on each named axis (:func:`axis_names`), described when
   it is a simple set: one index (the first, the last), a run at either end (related to the
   case's R, W, block or chunk: "the last partial group, T mod R = 1"), both ends, a residue
   class modulo such a parameter, or whole ON-LSTM levels. A scattered set gets no label.
4. **Growth** of the per-position error along a position axis that is bad everywhere.
5. Otherwise ``"all entries"`` / ``"scattered"`` with the fraction, naming no structure.

Deterministic (no random draw), and cheap: no candidate call, a few small oracle calls.

>>> import numpy as np
>>> from kexue_ref import registry
>>> case = [c for c in registry.cases("numerics.softmax") if c.name == "n5"][0]
>>> e = np.asarray(case.spec.ref(case.inputs["x"], **case.params))
>>> a = 2.0 * e                                     # a factor-2 bug
>>> localise(case, "value out", a, e, mismatch_mask(a, e, 1e-12, 1e-13))[0]
'the candidate is 2 × the oracle everywhere (a constant factor)'
"""
import numpy as onp

from kexue_ref import registry

__all__ = ["localise", "axis_names", "mismatch_mask"]

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
# The attention family: masks, classes, hypotheses
# ---------------------------------------------------------------------------

def _bool_or_none(x):
    return None if x is None else onp.asarray(x, dtype=bool)


def _attention_setup(case):
    """The dense form of an attention case, or None (a peer's compat code, an unknown op).

    Returns a dict: q, k, v (float64), A (B, H, Tq, Tk) the allowed mask *before* the key
    mask, km (B, Tk) / qm (B, Tq) the key and query masks or None, fill, pattern, w (the rate
    or half-window) and its symbol, causal.
    """
    from kexue_ref import _masks

    pattern = _ATTENTION.get(case.spec.name, "none")
    p = case.params
    if pattern == "none" or p.get("compat") is not None:
        return None
    q, k, v = (onp.asarray(case.inputs[n], dtype=onp.float64) for n in ("q", "k", "v"))
    B, H, Tq, _ = q.shape
    Tk = k.shape[2]
    causal = bool(p.get("causal", False))
    w, sym = None, ""
    if pattern is None:
        allowed = case.inputs.get("allowed")
        A = onp.ones((Tq, Tk), bool) if allowed is None else onp.asarray(allowed, bool)
        km, qm = _bool_or_none(p.get("key_mask")), _bool_or_none(p.get("query_mask"))
    elif pattern == "indexed":
        idx = onp.asarray(case.inputs["key_index"])
        A = onp.zeros((Tq, Tk), bool)
        # row i may attend the listed keys; -1 pads the list
        for i in range(Tq):
            A[i, idx[i][idx[i] >= 0]] = True
        km = qm = _bool_or_none(p.get("mask"))
    else:
        sym = "W" if pattern == "local" else "R"
        w = int(p["neighbors"] if pattern == "local" else p["rate"])
        A = getattr(_masks, f"{pattern}_mask")(Tq, w, causal)
        km = qm = _bool_or_none(p.get("mask"))
    if causal and pattern in (None, "indexed"):
        # the pattern masks include causality themselves; the dense op ANDs it in
        A = A & onp.tril(onp.ones((Tq, Tk), bool))
    A = onp.broadcast_to(A, (B, H, Tq, Tk))
    return dict(q=q, k=k, v=v, A=A, km=km, qm=qm, fill=p.get("fill"), pattern=pattern, w=w,
                sym=sym, causal=causal, B=B, H=H, Tq=Tq, Tk=Tk)


def _dense(s, A, km="case", qm="case"):
    """A function (q, k, v) -> the dense oracle's output with allowed mask A."""
    from kexue_ref import sparse_attention as sa

    km = s["km"] if isinstance(km, str) else km
    qm = s["qm"] if isinstance(qm, str) else qm
    return lambda q, k, v: sa.attention(q, k, v, A, key_mask=km, query_mask=qm, fill=s["fill"])


def _padded(s, Tp, before):
    """A function (q, k, v) -> the oracle's pattern run on the sequence zero-padded to Tp
    (``before`` tokens in front), every padded token a valid key, cropped back to T."""
    import autograd.numpy as anp
    from kexue_ref import _masks
    from kexue_ref import sparse_attention as sa

    T = s["Tq"]
    after = Tp - T - before
    Ap = getattr(_masks, f"{s['pattern']}_mask")(Tp, s["w"], s["causal"])
    # the sequence mask extended with True: the padding is attended, as the bug does
    m = None if s["km"] is None else onp.pad(s["km"], ((0, 0), (before, after)), constant_values=True)

    def fn(q, k, v):
        pad = ((0, 0), (0, 0), (before, after), (0, 0))
        out = sa.attention(anp.pad(q, pad), anp.pad(k, pad), anp.pad(v, pad), Ap,
                           key_mask=m, query_mask=m)
        return out[:, :, before:before + T]

    return fn


def _attention_hypotheses(s):
    """[(phrase, fn(q, k, v))]: at most five alternatives of the allowed mask, most specific first."""
    A, T, Tk, w, sym = s["A"], s["Tq"], s["Tk"], s["w"], s["sym"]
    i = onp.arange(T)[:, None]
    j = onp.arange(Tk)[None, :]
    dist = onp.abs(i - j)
    causal_ok = (j <= i) if s["causal"] else onp.ones_like(dist, bool)
    out = []
    if s["pattern"] in ("local", "sparse"):
        ring = (dist == w + 1) & causal_ok
        if ring.any():
            out.append((f"the candidate matches the oracle with keys at distance {sym}+1 = {w + 1} "
                        f"from the query also allowed: a window one too wide (|i − j| ≤ {sym}+1)",
                        _dense(s, A | ring)))
    if s["pattern"] == "local" and w >= 1:
        out.append((f"the candidate matches the oracle without the keys at distance {sym} = {w}: "
                    f"a window one too narrow (|i − j| < {sym})", _dense(s, A & ~(dist == w))))
    if T == Tk and onp.any(A & (dist == 0)):
        why = ("a causal mask j < i instead of j ≤ i" if s["causal"]
               else "the query's own key excluded")
        out.append((f"the candidate matches the oracle without the diagonal key j = i: {why}",
                    _dense(s, A & ~(dist == 0))))
    if s["pattern"] in ("atrous", "sparse") and T % w:
        Tp = -(-T // w) * w
        out.append((f"the candidate matches the oracle on the sequence zero-padded to a multiple "
                    f"of {sym} ({Tp}), the padding attended: the last partial group "
                    f"(T mod {sym} = {T % w}) is mishandled", _padded(s, Tp, 0)))
    if s["pattern"] in ("local", "sparse") and w < T:
        out.append(("the candidate matches the oracle with the window slots outside [0, T) "
                    "attended as zero tokens: the edge padding is not masked",
                    _padded(s, T + 2 * w, w)))
    if s["km"] is not None and not s["km"].all():
        out.append(("the candidate matches the oracle with the padded keys attended: the key "
                    "mask is ignored", _dense(s, A, km=None)))
    return out[:5]


def _hypothesis_values(case, kind, member, fn):
    """The member ``what`` of a hypothesis fn(q, k, v): its output, or its VJP with the
    case's seeded cotangent (the one ``check`` uses)."""
    from kexue_ref.testing._check import autograd_vjp, make_cotangents, reference_outputs

    spec = case.spec
    q, k, v = (onp.asarray(case.inputs[n], dtype=onp.float64) for n in ("q", "k", "v"))
    if kind != "grad":
        return fn(q, k, v)
    cot = make_cotangents(case, reference_outputs(case))
    # the hypothesis as a function with the op's signature, for autograd_vjp
    inputs = {n: onp.asarray(case.inputs[n], dtype=onp.float64) for n in spec.inputs}
    g = autograd_vjp(lambda *args, **_: fn(*args[:3]), spec, inputs, {}, cot)
    return g[spec.diff.index(member)]


def _attention_classes(s, kind, member, actual, bad):
    """A phrase when the bad rows (or keys) all lie in a masked class, else None."""
    B, H, Tq, Tk = s["B"], s["H"], s["Tq"], s["Tk"]
    A = s["A"] if s["km"] is None else s["A"] & s["km"][:, None, None, :]
    A = onp.broadcast_to(A, (B, H, Tq, Tk))
    if kind == "grad" and member in ("k", "v"):
        unattended = ~A.any(axis=2)
        keybad = bad.any(axis=-1)
        if unattended.any() and not unattended.all() and onp.all(unattended[keybad]):
            return (f"only keys no query may attend ({int(unattended.sum())} of {unattended.size}: "
                    f"padded or outside every window); the post gives them zero gradient")
        return None
    fully = onp.broadcast_to(~A.any(axis=-1), (B, H, Tq))
    padded = (onp.zeros((B, H, Tq), bool) if s["qm"] is None
              else onp.broadcast_to(~s["qm"][:, None, :], (B, H, Tq)))
    cls = fully | padded
    rowbad = bad.any(axis=-1)
    if not cls.any() or not onp.all(cls[rowbad]):
        return None
    name = ("padded query rows" if not onp.any(fully[rowbad] & ~padded[rowbad])
            else "fully masked rows" if not onp.any(padded[rowbad] & ~fully[rowbad])
            else "fully masked or padded query rows")
    text = (f"{name} (all {cls.size})" if cls.all()
            else f"only {name} ({int(cls.sum())} of {cls.size} query rows)")
    if kind == "value":
        rows = actual[rowbad]
        uniform = onp.broadcast_to(s["v"].mean(axis=2, keepdims=True), actual.shape)[rowbad]
        if onp.isnan(rows).any():
            text += "; the candidate returns NaN there (the post: 0, zero gradient)"
        elif onp.allclose(rows, uniform, rtol=1e-6, atol=1e-9):
            text += ("; the candidate returns the uniform average of v there, as a finite fill "
                     "such as -1e9 gives (the post: 0)")
        else:
            text += "; the post's rows are 0"
    return text


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


# ---------------------------------------------------------------------------
# localise
# ---------------------------------------------------------------------------

def _check_args(case, what, actual, expected, bad):
    if not isinstance(case, registry.Case):
        raise TypeError(f"case must be a kexue_ref.registry.Case, got {type(case).__name__}")
    if not isinstance(what, str):
        raise TypeError(f"what must be a str such as 'value out' or 'grad q', got {type(what).__name__}")
    a = onp.asarray(actual)
    e = onp.asarray(expected)
    m = onp.asarray(bad)
    if a.dtype.kind not in "fiub" or e.dtype.kind not in "fiub":
        raise TypeError(f"actual and expected must be real numeric arrays, got {a.dtype} and {e.dtype}")
    if a.shape != e.shape:
        raise ValueError(f"actual of shape {a.shape} and expected of shape {e.shape} differ")
    if m.dtype != bool:
        raise TypeError(f"bad must be a boolean array, got dtype {m.dtype}")
    if m.shape != e.shape:
        raise ValueError(f"bad of shape {m.shape} does not match expected of shape {e.shape}")
    return a.astype(onp.float64), e.astype(onp.float64), m


def localise(case, what, actual, expected, bad, *, rtol=None, atol=None, max_lines=3):
    """Summarise where the error of one failing member of one case lives.

    Parameters
    ----------
    case : kexue_ref.registry.Case, the failing case.
    what : str, the compared member as ``check`` names it: ``"value <output>"`` or
        ``"grad <input>"`` (e.g. ``"value out"``, ``"grad k"``).
    actual, expected : real arrays of the same shape, the candidate's and the float64 oracle's.
    bad : bool array of that shape, True where the entry is outside the tolerance
        (:func:`mismatch_mask` computes it as ``check`` does).
    rtol, atol : the comparison's tolerance (optional): a hypothesis explains the candidate
        when ``|a − h| ≤ atol + rtol·|h|`` everywhere; without them, when ``max|a − h|`` is
        at most 1e-3 of the candidate's largest finite error.
    max_lines : int ≥ 1, the most lines returned (default 3).

    Returns
    -------
    list of str, one-line phrases (no member name, no trailing period), most specific first;
    ``[]`` when ``bad`` has no True entry. A phrase names a structure only when the evidence
    is exact (a hypothesis met to the tolerance, or a bad set confined to a simple index set
    or masked class); otherwise the single line says ``"all entries"`` or ``"scattered"``.

    Notes
    -----
    The op families and axis names are those of :func:`axis_names`; see the module docstring
    and ``docs/localisation.md`` for the steps. At most five oracle evaluations (VJPs for a
    gradient member) are made, all on the case's own float64 inputs.
    """
    a, e, bad = _check_args(case, what, actual, expected, bad)
    if not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError(f"max_lines must be an int >= 1, got {max_lines!r}")
    if not bad.any():
        return []
    # a candidate's NaN and inf entries are data here, not a numerical accident to warn about
    with onp.errstate(all="ignore"):
        return _localise(case, what, a, e, bad, rtol, atol)[:max_lines]


def _localise(case, what, a, e, bad, rtol, atol):
    """The body of :func:`localise` on checked float64 arrays: every line, most specific first."""
    kind, member = _parse_what(what)
    names = axis_names(case, what, e.ndim)
    match = _Matcher(a, e, bad, rtol, atol)
    ctx = _symbols(case)
    lines = []

    # 1. hypotheses: the attention family's masks first, then the generic ones
    setup = _attention_setup(case) if names is not None and case.spec.name in _ATTENTION else None
    found = None
    if setup is not None:
        for phrase, fn in _attention_hypotheses(setup):
            try:
                h = _hypothesis_values(case, kind, member, fn)
            except Exception:       # an alternative the oracle refuses explains nothing
                continue
            if match(onp.asarray(h)):
                found = phrase
                break
    if found is None:
        found = _generic_hypotheses(names, a, e, bad, match)
    if found:
        lines.append(found)

    # 2. masked classes
    if setup is not None:
        cls = _attention_classes(setup, kind, member, a, bad)
    else:
        cls = _softmax_classes(case, names, a, bad) or _sequence_classes(case, names, bad)
    if cls:
        lines.append(cls)

    # 3. axes
    axis_kinds = names if names is not None else ["axis"] * e.ndim
    axes = _axis_phrases(case, axis_kinds, bad, ctx)
    if axes:
        lines.append("; ".join(axes))

    # 4. growth along a position axis
    if names is not None and not axes:
        grow = _growth(names, a, e, bad)
        if grow:
            lines.append(grow)

    nonfinite = int(onp.sum(bad & ~onp.isfinite(a)))
    if nonfinite and not any("NaN" in line for line in lines):
        lines.append(f"the candidate returns NaN or inf at {nonfinite} of {int(bad.sum())} "
                     f"mismatched entries")

    # 5. nothing structural
    if not lines:
        n_bad, size = int(bad.sum()), bad.size
        along = ", ".join(_LABELS.get(k, (f"axis {i}",))[0] for i, k in enumerate(axis_kinds))
        along = along or "the array"
        if n_bad == size:
            lines.append(f"all entries ({n_bad}/{size}): no structure along {along}")
        else:
            lines.append(f"scattered: {n_bad}/{size} entries ({100 * n_bad / size:.0f}%), "
                         f"no structure along {along}")
    return lines
