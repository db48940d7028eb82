"""Localisation, the attention family: the dense form of a case, its mask hypotheses, its classes.

For the ops of ``kexue_ref.sparse_attention`` (the post https://kexue.fm/archives/6853 and
its dense oracle :func:`kexue_ref.sparse_attention.attention`), the case's allowed mask is
rebuilt densely and perturbed into at most five alternatives (a window one wider or narrower,
no diagonal key, padded keys attended, the last partial group padded with attended zeros);
the candidate that matches one is named by it. The masked classes (fully masked or padded
query rows, keys no query may attend) say what the candidate returns where the post gives 0.
"""
import numpy as onp

from kexue_ref.testing._localise_axes import _ATTENTION
from kexue_ref.testing._oracle import autograd_vjp, make_cotangents, reference_outputs

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
