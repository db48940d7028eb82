"""Certificates for the reference tables: every stored number against ≥ 50-digit arithmetic.

For each table the certifier evaluates the op's *truth function* — the post's formula
written again in mpmath (``kexue_ref/certify/truth_<topic>.py``), independent of the float64
code path — on the exact stored inputs, and measures every stored float member against it:

* ``output.*``: the truth's value, evaluated at ``dps`` digits and re-checked at ``2·dps``
  (more where the inputs span extreme magnitudes: at 50 digits ``1e308 + 1`` is not
  representable, so the precision grows with the decimal span of the inputs);
* ``grad.*``: the exact VJP ``Σ_k <u_k, ∂out_k/∂x>`` for the stored cotangents ``u``, from
  an exact gradient formula where the truth module gives one (``GRADS``), else from central
  differences of the truth's forward at high precision (step ``h = 10^(−dps/3)·|x_j|``,
  truncation ``O(h²)`` and rounding ``O(10^(−dps)/h)``, both ≈ ``10^(−2·dps/3)`` relative;
  the bound is checked a posteriori on a sample of entries with a step 10³ larger).

Per member the certificate records the largest error in ulps of the truth, the largest error
in units of ``eps · S`` (``eps = 2^-52`` and ``S`` the member's natural scale, see
:func:`kexue_ref.tables.natural_scales`), the worst index, and the bound it is held to. An
entry passes when ``|stored − truth| ≤ ulps_bound · ulp(truth)`` or
``≤ eps_scale_bound · eps · S``; the goal bound is 2 ulps / 1 eps·S (:data:`GOAL`), and any
op or case held to a looser bound says why (``BOUNDS`` of its truth module). Integer,
boolean and index members are certified exactly.

Command line: ``kexue-ref tables certify [--check] [--only PATTERN] [--tier T] [--jobs N]``
(certifies the stored tables and writes the certificates into the manifest; ``--check``
writes nothing and exits 1 if any member exceeds its bound), and ``python -m
kexue_ref.certify`` (the same on fresh in-memory records of the current oracle, for
developing a truth module). Needs the optional extra ``certify`` (mpmath; gmpy2 for speed).
"""
import dataclasses
import importlib
import math
from fractions import Fraction

import numpy as onp

from kexue_ref.certify import _mp

__all__ = ["GOAL", "TOPICS", "truth_for", "bound_for", "certify_record", "measure",
           "Certificate"]

#: The goal: an entry is within 2 ulps of the truth, or within 1·eps·S of it.
GOAL = {"ulps": 2.0, "eps_scale": 1.0}
#: Base working precision (decimal digits) of every truth evaluation.
BASE_DPS = 50
#: Topics with a truth module ``kexue_ref.certify.truth_<topic>``.
TOPICS = ("numerics", "smoothing", "on_lstm", "orthogonality", "sparse_attention", "reparam",
          "dgcnn")
EPS = float(onp.finfo(onp.float64).eps)

_TRUTH = None


def _load():
    global _TRUTH
    if _TRUTH is None:
        truth, grads, bounds = {}, {}, {}
        for topic in TOPICS:
            try:
                module = importlib.import_module(f"kexue_ref.certify.truth_{topic}")
            except ModuleNotFoundError as exc:
                if exc.name != f"kexue_ref.certify.truth_{topic}":
                    raise
                continue
            truth.update(module.TRUTH)
            grads.update(getattr(module, "GRADS", {}))
            bounds.update(getattr(module, "BOUNDS", {}))
        _TRUTH = (truth, grads, bounds)
    return _TRUTH


def truth_for(op_name):
    """The truth function of an op (``None`` if no truth module covers it)."""
    return _load()[0].get(op_name)


def bound_for(case, member):
    """``(ulps, eps_scale, reason)``: the bound a member of a case is held to.

    A truth module's ``BOUNDS["op[case]"]`` wins over ``BOUNDS["op"]``; an entry with a
    ``members`` list applies to those members only; everything else is held to :data:`GOAL`.
    """
    bounds = _load()[2]
    for key in (case.id, case.spec.name):
        b = bounds.get(key)
        if b and (not b.get("members") or member in b["members"]):
            return float(b["ulps"]), float(b["eps_scale"]), b["reason"]
    return GOAL["ulps"], GOAL["eps_scale"], ""


# ---------------------------------------------------------------------------
# Measuring stored numbers against the truth
# ---------------------------------------------------------------------------

def _ulp(value):
    """The spacing of float64 at |value| (the ulp of the correctly rounded truth)."""
    f = abs(float(value))
    if math.isinf(f):
        f = float(onp.finfo(onp.float64).max)
    return float(onp.spacing(f))


def measure(stored, truth, scale, ulps_bound=GOAL["ulps"], eps_scale_bound=GOAL["eps_scale"]):
    """Errors of a stored float64 array against its truth (object array of mpf / Fraction).

    ``err_i = |stored_i − truth_i|`` is computed exactly (mpf at the current precision, or
    rational); ``ulps_i = err_i / ulp(truth_i)`` and ``es_i = err_i / (eps·S)``. Entry i
    passes when ``ulps_i ≤ ulps_bound`` or ``es_i ≤ eps_scale_bound``. Infinities pass only
    where the truth rounds to the same infinity; a NaN never passes.

    Returns a dict: ``max_ulps``, ``max_eps_scale``, ``worst`` (index of the entry furthest
    past its bound, else of the largest error), ``n_bad``, ``passed``.
    """
    import mpmath
    stored = onp.asarray(stored, dtype=onp.float64)
    truth = onp.asarray(truth, dtype=object)
    if truth.shape != stored.shape:
        truth = onp.broadcast_to(truth, stored.shape) if truth.size == 1 else truth
    if truth.shape != stored.shape:
        return {"max_ulps": math.inf, "max_eps_scale": math.inf, "worst": None, "n_bad": stored.size,
                "passed": False, "message": f"truth shape {truth.shape} != stored {stored.shape}"}
    unit = EPS * float(scale)
    max_u = max_e = 0.0
    worst, worst_key, n_bad = None, -math.inf, 0
    for idx in onp.ndindex(stored.shape):
        s, t = float(stored[idx]), truth[idx]
        if isinstance(t, Fraction):
            tf = float(t)
            err = abs(Fraction(s) - t) if math.isfinite(s) else None
        else:
            t = mpmath.mpf(t)
            tf = float(t)
            err = abs(mpmath.mpf(s) - t) if math.isfinite(s) else None
        if err is None or not math.isfinite(tf):
            ok = (math.isinf(s) and math.isinf(tf) and (s > 0) == (tf > 0))
            u = e = 0.0 if ok else math.inf
        else:
            u = float(err / Fraction(_ulp(tf))) if isinstance(err, Fraction) else float(err / _ulp(tf))
            if unit > 0:
                e = float(err / Fraction(unit)) if isinstance(err, Fraction) else float(err / unit)
            else:
                e = 0.0 if err == 0 else math.inf
            ok = u <= ulps_bound or e <= eps_scale_bound
        max_u, max_e = max(max_u, u), max(max_e, e)
        key = min(u / ulps_bound if ulps_bound else math.inf,
                  e / eps_scale_bound if eps_scale_bound else math.inf)
        if not ok:
            n_bad += 1
        if key > worst_key:
            worst_key, worst = key, tuple(int(i) for i in idx)
    return {"max_ulps": max_u, "max_eps_scale": max_e, "worst": worst, "n_bad": n_bad,
            "passed": n_bad == 0}


def _exact_equal(stored, truth):
    stored = onp.asarray(stored)
    truth = onp.asarray(truth)
    if stored.shape != truth.shape:
        return False, f"shape {stored.shape} stored, {truth.shape} true"
    if stored.dtype.kind in "fc" or truth.dtype == object:
        ok = all(Fraction(float(a)) == Fraction(b) if not isinstance(b, float) else float(a) == b
                 for a, b in zip(stored.reshape(-1), truth.reshape(-1)))
    else:
        ok = bool(onp.array_equal(stored, truth))
    if ok:
        return True, ""
    bad = [i for i, (a, b) in enumerate(zip(stored.reshape(-1).tolist(), truth.reshape(-1).tolist()))
           if a != b]
    idx = onp.unravel_index(bad[0], stored.shape) if bad and stored.shape else ()
    return False, f"{len(bad)} entries differ, first at {tuple(int(i) for i in idx)}"


# ---------------------------------------------------------------------------
# Evaluating the truth
# ---------------------------------------------------------------------------

def _float_values(case, rec):
    vals = []
    for key, arr in rec.items():
        if key.startswith(("input.", "param.")) and arr.dtype.kind == "f":
            a = onp.abs(arr[onp.isfinite(arr)])
            vals.extend(a[a > 0].tolist())
    return vals


def working_precision(case, rec):
    """Decimal digits for a case: ``BASE_DPS`` plus the decimal span of its float inputs.

    Inputs from 1e-300 to 1e300 need ~600 more digits for ``1e300 + 1e-300`` to stay exact
    in intermediate sums; ordinary inputs (span < 10) get ~60.
    """
    vals = _float_values(case, rec)
    if not vals:
        return BASE_DPS
    span = math.log10(max(vals)) - math.log10(min(vals))
    return BASE_DPS + int(math.ceil(max(span, 0.0))) + 10


def _mp_inputs(case, rec):
    args = []
    for name in case.spec.inputs:
        arr = rec[f"input.{name}"]
        args.append(_mp.mpf_array(arr) if arr.dtype.kind == "f" else arr)
    return args


def _outputs(case, fn, args):
    out = fn(*args, **case.params)
    return case.spec.as_outputs(out)


def _as_obj(value):
    if isinstance(value, onp.ndarray):
        return value
    return onp.asarray(value, dtype=object) if not isinstance(value, (int, bool)) else onp.asarray(value)


def _rel_gap(a, b):
    """max |a − b| / max(|a|, tiny) over two object arrays (floats for the comparison)."""
    import mpmath
    a = onp.asarray(a, dtype=object).reshape(-1)
    b = onp.asarray(b, dtype=object).reshape(-1)
    worst = mpmath.mpf(0)
    for x, y in zip(a, b):
        x, y = mpmath.mpf(x), mpmath.mpf(y)
        if mpmath.isinf(x) or mpmath.isinf(y):
            if x != y:
                return mpmath.inf
            continue
        d = abs(x - y)
        if d:
            worst = max(worst, d / max(abs(x), abs(y)))
    return worst


def truth_outputs(case, rec, fn, dps):
    """The truth's outputs at ``dps`` digits, re-checked at ``2·dps``.

    Returns ``(outputs, dps_used, digits_agreed)``. If the two evaluations of a float output
    disagree beyond ``10^(−BASE_DPS + 10)`` relative, the precision doubles again (up to
    three times) and the last two evaluations must agree.
    """
    import mpmath
    lo = None
    digits = None
    for attempt in range(4):
        with mpmath.workdps(dps * 2 ** attempt):
            hi = [_as_obj(o) for o in _outputs(case, fn, _mp_inputs(case, rec))]
        if lo is not None:
            gaps = [_rel_gap(a, b) for a, b in zip(lo, hi)
                    if isinstance(a, onp.ndarray) and a.dtype == object and a.size
                    and not isinstance(a.reshape(-1)[0], Fraction)]
            gap = max(gaps) if gaps else mpmath.mpf(0)
            digits = math.inf if gap == 0 else float(-mpmath.log10(gap))
            if digits >= BASE_DPS - 10:
                return hi, dps * 2 ** attempt, digits
        lo = hi
    raise ArithmeticError(f"{case.id}: the truth does not settle with precision "
                          f"(digits agreed {digits:.1f} at {dps * 8} digits)")


def _phi(case, fn, args, cotangents):
    """Σ_k <u_k, out_k> for the stored cotangents, skipping zero cotangent entries."""
    import mpmath
    outs = _outputs(case, fn, args)
    total = mpmath.mpf(0)
    for name, o in zip(case.spec.outputs, outs):
        u = cotangents.get(name)
        if u is None:
            continue
        o = onp.asarray(o, dtype=object).reshape(-1)
        for ui, oi in zip(u.reshape(-1).tolist(), o):
            if ui != 0.0:
                total += ui * oi
    return total


def truth_grads(case, rec, fn, dps, sample=6):
    """The exact VJP by central differences of the truth's forward at ``dps`` digits.

    Returns ``({input: object array}, est_rel_error)`` where the error estimate is the
    largest ``|D(h) − D(10³h)| / 10⁶`` over a sample of entries (truncation error is
    ``O(h²)``), relative to the largest gradient entry, plus the rounding term
    ``10^(−dps)/h``.
    """
    import mpmath
    cots = {k.split(".", 1)[1]: v for k, v in rec.items() if k.startswith("cotangent.")}
    grads, est = {}, mpmath.mpf(0)
    with mpmath.workdps(dps):
        base = _mp_inputs(case, rec)
        names = list(case.spec.inputs)
        rel_step = mpmath.mpf(10) ** (-(dps // 3))
        gmax = mpmath.mpf(0)
        checks = []
        for name in case.spec.diff:
            pos = names.index(name)
            x = base[pos]
            flat = x.reshape(-1)
            finite = [abs(v) for v in flat if mpmath.isfinite(v)]
            xscale = max(finite) if finite and max(finite) > 0 else mpmath.mpf(1)
            g = onp.empty(x.shape, dtype=object)
            gflat = g.reshape(-1)
            rng = onp.random.default_rng([case.seed, 11, pos])
            picks = set(rng.choice(flat.size, size=min(sample, flat.size), replace=False).tolist()) \
                if flat.size else set()

            def deriv(j, h):
                orig = flat[j]
                try:
                    flat[j] = orig + h
                    fp = _phi(case, fn, base, cots)
                    flat[j] = orig - h
                    fm = _phi(case, fn, base, cots)
                    return (fp - fm) / (2 * h)
                except (ValueError, ZeroDivisionError, ArithmeticError):
                    # a domain edge (log at 0, a probability at 1): one-sided 3-point stencil
                    # away from the edge, also O(h²)
                    for sgn in (1, -1):
                        try:
                            flat[j] = orig
                            f0 = _phi(case, fn, base, cots)
                            flat[j] = orig + sgn * h
                            f1 = _phi(case, fn, base, cots)
                            flat[j] = orig + 2 * sgn * h
                            f2 = _phi(case, fn, base, cots)
                            return sgn * (-3 * f0 + 4 * f1 - f2) / (2 * h)
                        except (ValueError, ZeroDivisionError, ArithmeticError):
                            continue
                    raise
                finally:
                    flat[j] = orig

            for j in range(flat.size):
                h = rel_step * (abs(flat[j]) if flat[j] != 0 else xscale)
                gflat[j] = deriv(j, h)
                gmax = max(gmax, abs(gflat[j]))
                if j in picks:
                    checks.append((gflat[j], deriv(j, h * 1000), h))
            grads[name] = g
        for d1, d2, h in checks:
            est = max(est, abs(d1 - d2) / 10 ** 6 + mpmath.mpf(10) ** (-dps) / h)
        rel = float(est / gmax) if gmax else float(est)
    return grads, rel


# ---------------------------------------------------------------------------
# One record
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Certificate:
    """The certificate of one member (see :func:`measure`); ``as_dict()`` is what the manifest holds."""
    member: str
    passed: bool
    exact: bool = False
    max_ulps: float = 0.0
    max_eps_scale: float = 0.0
    worst: tuple | None = None
    bound_ulps: float = GOAL["ulps"]
    bound_eps_scale: float = GOAL["eps_scale"]
    reason: str = ""
    method: str = ""
    dps: int = 0
    message: str = ""

    def as_dict(self):
        if self.exact:
            d = {"exact": True, "passed": self.passed, "method": self.method}
        else:
            d = {"max_ulps": _round(self.max_ulps), "max_eps_scale": _round(self.max_eps_scale),
                 "worst": list(self.worst) if self.worst is not None else None,
                 "bound": {"ulps": self.bound_ulps, "eps_scale": self.bound_eps_scale},
                 "passed": self.passed, "method": self.method, "dps": self.dps}
            if self.reason:
                d["bound"]["reason"] = self.reason
        if self.message:
            d["message"] = self.message
        return d

    def line(self):
        verdict = "ok  " if self.passed else "FAIL"
        if self.exact:
            return f"{verdict} {self.member}: exact{'' if self.passed else ': ' + self.message}"
        b = f" (bound {self.bound_ulps:g} ulp / {self.bound_eps_scale:g} eps·S: {self.reason})" \
            if self.reason else ""
        return (f"{verdict} {self.member}: {self.max_ulps:.3g} ulp, {self.max_eps_scale:.3g} eps·S"
                f" at {self.worst}{b}{'; ' + self.message if self.message else ''}")


def _round(x):
    if not math.isfinite(x):
        return repr(x)
    return float(f"{x:.4g}")


def certify_record(case, rec, scales=None):
    """Certify every floating (and exact) member of one table record.

    ``rec`` is a table record (:func:`kexue_ref.tables.case_record` or a loaded ``.npz``);
    ``scales`` maps members to their natural scale ``S`` (default: computed with
    :func:`kexue_ref.tables.natural_scales`). Returns ``{member: Certificate}`` for every
    ``output.*`` and ``grad.*`` member.
    """
    from kexue_ref import tables
    spec = case.spec
    fn = truth_for(spec.name)
    if fn is None:
        raise KeyError(f"no truth function for {spec.name} (kexue_ref/certify/truth_{spec.topic}.py)")
    if scales is None:
        scales = {k: v["scale"] for k, v in tables.natural_scales(case, rec).items()}
    certs = {}
    dps = working_precision(case, rec)
    outs, dps_used, digits = truth_outputs(case, rec, fn, dps)
    import mpmath
    with mpmath.workdps(dps_used):
        for name, t in zip(spec.outputs, outs):
            key = f"output.{name}"
            certs[key] = _certify_member(case, key, rec[key], t, scales.get(key, 0.0),
                                         f"mpmath at {dps_used} digits (agrees with {dps_used // 2} "
                                         f"digits to {min(digits, 999):.0f} digits)", dps_used)
    grad_keys = [k for k in rec if k.startswith("grad.")]
    if grad_keys:
        exact = _load()[1].get(spec.name)
        if exact is not None:
            cots = {k.split(".", 1)[1]: v for k, v in rec.items() if k.startswith("cotangent.")}
            with mpmath.workdps(dps_used):
                g = exact(*_mp_inputs(case, rec), cotangents=cots, **case.params)
            method = f"exact gradient formula at {dps_used} digits"
        else:
            g, est = truth_grads(case, rec, fn, dps)
            method = f"central differences at {dps} digits (estimated relative error {est:.1e})"
        with mpmath.workdps(dps_used):
            for key in grad_keys:
                name = key.split(".", 1)[1]
                certs[key] = _certify_member(case, key, rec[key], g[name], scales.get(key, 0.0),
                                             method, dps_used)
    return certs


def _certify_member(case, key, stored, truth, scale, method, dps):
    stored = onp.asarray(stored)
    truth_arr = truth if isinstance(truth, onp.ndarray) else onp.asarray(truth, dtype=object)
    is_exact = stored.dtype.kind not in "fc" or (
        truth_arr.dtype != object) or (truth_arr.size and isinstance(truth_arr.reshape(-1)[0], Fraction))
    if stored.dtype.kind not in "fc" or truth_arr.dtype.kind in "biu":
        ok, msg = _exact_equal(stored, truth_arr)
        return Certificate(member=key, passed=ok, exact=True, method="exact (integers)", message=msg)
    ulps_b, es_b, reason = bound_for(case, key)
    m = measure(stored, truth_arr, scale, ulps_b, es_b)
    method = "exact rational arithmetic" if is_exact else method
    return Certificate(member=key, passed=m["passed"], max_ulps=m["max_ulps"],
                       max_eps_scale=m["max_eps_scale"], worst=m["worst"], bound_ulps=ulps_b,
                       bound_eps_scale=es_b, reason=reason, method=method, dps=dps,
                       message=m.get("message", ""))
