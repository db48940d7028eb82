"""Convention diagnosis: when a candidate fails, which documented convention does it follow?

Many mismatches are not bugs but a different convention: 1-based positions, a temperature
that divides instead of multiplies, the ``-1e9`` mask constant, the official ON-LSTM master
input gate, the Keras sparse-attention code, the other DGCNN gate placement. Each op can list
such alternatives in :data:`CONVENTIONS`; :func:`diagnose` re-runs the oracle with each of
them on the failing cases and says which one the candidate matches.

>>> import numpy as np
>>> from kexue_ref.testing import check
>>> def soft_argmax_1based(x, scale=1.0, axis=-1, base=0):   # counts from 1 like the post
...     p = np.exp(scale * x - np.max(scale * x, axis=axis, keepdims=True))
...     p = p / p.sum(axis=axis, keepdims=True)
...     return np.sum(np.arange(1, x.shape[axis] + 1) * np.moveaxis(p, axis, -1), axis=-1)
>>> report = check(soft_argmax_1based, "smoothing.soft_argmax")
>>> report.passed
False
>>> d = diagnose(soft_argmax_1based, "smoothing.soft_argmax", report=report)
>>> d.matches[0].convention.label
'base=1'
>>> print(d.lines()[0])
diagnosis: the candidate matches the oracle called with base=1 (the post's 1-based positions) on 2/2 failing cases

When no registered convention explains the failures, the diagnosis says where the errors
live instead (:func:`kexue_ref.testing.localise.localise`: "only keys at distance W+1",
"only the last time step", …) and lists the conventions it tried. A convention that is a
peer's quirk (``OpSpec.quirks``, e.g. ``compat='keras'``) is offered only when it explains
every failing case, and always labelled as a quirk; a failing case that is itself a quirk
case is first compared with the post's semantics (the quirk parameters removed), so a
faithful port is told so instead of "no convention explains".

An alternative (:class:`Convention`) changes the oracle's call, never the candidate's:
``params`` override keyword arguments (a value, or a callable of the case's parameters);
``inputs`` maps the case's inputs to the ones the oracle gets (e.g. an inverted mask); ``ref``
replaces the reference function (``"module:function"`` strings are imported when needed).
Alternatives for ops that are not in the registry, or that the reference does not accept
(it raises on the changed call), are skipped, so options can be listed before their rows exist.
The table of the six posts' conventions is in ``kexue_ref.testing._conventions``.
"""
import dataclasses

import numpy as onp

from kexue_ref import registry
from kexue_ref.testing._compare import compare
from kexue_ref.testing._conventions import (  # noqa: F401  (importable from here, as before)
    _MASK_INVERTED, _ON_LSTM, _SCALE_DIVIDES, CONVENTIONS, Convention, _as_convention,
    _flip, _flip_default, _invert_mask, _other_filters, _temperature, conventions_for,
    register_conventions)
from kexue_ref.testing._oracle import autograd_vjp, make_cotangents, reference_grads, reference_outputs
from kexue_ref.testing._run import _run_cases
from kexue_ref.testing.adapters import get_adapter
from kexue_ref.testing.localise import localise as _localise, mismatch_mask
from kexue_ref.testing.tolerances import tolerance_for

__all__ = ["Convention", "CONVENTIONS", "register_conventions", "conventions_for",
           "diagnose", "Diagnosis", "Match", "Where", "QuirkCase", "MAX_LOCALISED"]


# ---------------------------------------------------------------------------
# diagnose
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Match:
    """How one alternative fared on the failing cases.

    ``quirk`` is the peer quirk the alternative turns a post case into (e.g.
    ``"compat='keras'"``), or "" when it is a convention of the post's own.
    """
    convention: Convention
    matched: list          # case ids the candidate matches under the alternative
    tried: list            # case ids where the alternative could be evaluated
    skipped: list          # case ids where the alternative oracle raised (not applicable)
    quirk: str = ""

    @property
    def complete(self):
        return bool(self.tried) and len(self.matched) == len(self.tried)


@dataclasses.dataclass
class Where:
    """The localisation of one failing member of one case (:func:`localise`)."""
    case_id: str
    what: str              # "value out", "grad k", …
    lines: list            # the phrases, most specific first


@dataclasses.dataclass
class QuirkCase:
    """A failing case that reproduces a peer's quirk, compared with the post's semantics."""
    case_id: str
    quirk: str             # e.g. "compat='keras'"
    post_match: bool       # the candidate matches the oracle with the quirk parameters removed


@dataclasses.dataclass
class Diagnosis:
    """The result of :func:`diagnose`: alternatives that explain every failing case first,
    then where the errors live when none does."""
    op: str
    failing: list                    # the failing case ids that were diagnosed
    results: list                    # Match per alternative, in registration order
    where: list = dataclasses.field(default_factory=list)        # Where per failing member
    quirk_cases: list = dataclasses.field(default_factory=list)  # QuirkCase per quirk case

    @property
    def matches(self):
        """The alternatives that the candidate matches on every diagnosed case."""
        return [m for m in self.results if m.complete]

    @property
    def faithful_quirk_cases(self):
        """Ids of the failing quirk cases on which the candidate follows the post instead."""
        return [q.case_id for q in self.quirk_cases if q.post_match]

    def lines(self):
        """The diagnosis as report lines, each starting with ``"diagnosis:"``.

        Order: complete matches (a quirk labelled as such); the quirk cases on which the
        candidate follows the post; partial matches of the post's own conventions; and, when
        no alternative explains every remaining failure, the conventions tried and where the
        errors live (at most two localisation lines, identical ones merged across cases).
        """
        if not self.failing:
            return ["diagnosis: no failing value case to diagnose"]
        out = []
        for m in self.matches:
            text = (f"diagnosis: the candidate matches the oracle called with "
                    f"{m.convention.text()} on {len(m.matched)}/{len(m.tried)} failing cases")
            if m.quirk:
                text += f"; that is a peer's quirk ({m.quirk}), not the post's semantics"
            out.append(text)
        faithful = [q for q in self.quirk_cases if q.post_match]
        if faithful:
            quirks = ", ".join(sorted({q.quirk for q in faithful}))
            out.append(f"diagnosis: {len(faithful)} failing case(s) reproduce a peer's quirk "
                       f"({quirks}); on them the candidate matches the post's semantics, as a "
                       f"faithful port should (quirk cases run only when asked for)")
        # a quirk that explains only some cases is no explanation of a structural failure
        partial = [m for m in self.results if m.matched and not m.complete and not m.quirk]
        for m in partial:
            rest = [_short(i) for i in m.tried if i not in m.matched]
            more = f", +{len(rest) - 3} more" if len(rest) > 3 else ""
            out.append(f"diagnosis: partial match with {m.convention.text()} on "
                       f"{len(m.matched)}/{len(m.tried)} failing cases (not on "
                       f"{', '.join(rest[:3])}{more})")
        faithful_ids = {q.case_id for q in faithful}
        unexplained = [i for i in self.failing if i not in faithful_ids]
        if unexplained and not self.matches:
            if self.results:
                tried = "; ".join(m.convention.label for m in self.results)
                head = (f"diagnosis: no registered convention of {self.op} explains the "
                        f"failures (tried: {tried})")
            else:
                head = (f"diagnosis: {self.op} has no registered convention options "
                        "(kexue_ref.testing.diagnose.register_conventions)")
            # a line of its own first, so the first line always says what was tried
            out.insert(0, head)
            out.extend(self._where_lines(unexplained))
        return out

    def _where_lines(self, case_ids, limit=2):
        """"diagnosis: where …" lines for the given cases: a phrase found for several members
        or cases is one line naming them all, the most widespread first, at most ``limit``
        lines (every entry stays in ``self.where``)."""
        groups = {}
        for w in self.where:
            if w.case_id not in case_ids:
                continue
            for line in w.lines:
                whats, ids = groups.setdefault(line, ({}, {}))
                # ordered sets: the members and the cases the phrase was found for
                whats[w.what] = None
                ids[w.case_id] = None
        if not groups:
            return []
        n = len(case_ids)
        # most cases first; ties keep their first appearance (dicts keep insertion order)
        ranked = sorted(groups.items(), key=lambda item: -len(item[1][1]))
        out = []
        for line, (whats, ids) in ranked[:limit]:
            which = f"{len(ids)}/{n} failing cases" if n > 1 else _short(next(iter(ids)))
            out.append(f"diagnosis: where: {', '.join(whats)}: {line} [{which}]")
        if len(ranked) > limit:
            out.append(f"diagnosis: where: {len(ranked) - limit} more finding(s) in Diagnosis.where")
        return out

    def __str__(self):
        return "\n".join(self.lines())


def _short(case_id):
    """The case name of a case id ``op[name]``."""
    return case_id[case_id.index("[") + 1:-1] if "[" in case_id else case_id


def _alt_case(case, inputs, params):
    defn = dataclasses.replace(case.defn, params=params)
    return registry.Case(spec=case.spec, defn=defn, inputs=inputs, seed=case.seed)


def _post_case(case):
    """The case with its quirk parameters removed: the post's semantics on the same inputs."""
    params = {k: v for k, v in case.params.items() if k not in case.spec.quirks}
    return _alt_case(case, dict(case.inputs), params)


def _agrees(got, expected, tol):
    """Every array of ``got`` within the tolerance of ``expected`` (same count)."""
    return len(got) == len(expected) and all(
        compare(g, onp.asarray(e), tol[0], tol[1]).passed for g, e in zip(got, expected))


def _where(case, got, expected, names, tol, kind):
    """Where entries, one per failing float member, by :func:`localise`."""
    out = []
    for name, g, e in zip(names, got, expected):
        g, e = onp.asarray(g), onp.asarray(e)
        if g.shape != e.shape or e.dtype.kind != "f" or g.dtype.kind not in "fiu":
            continue
        bad = mismatch_mask(g, e, tol[0], tol[1])
        if bad.any():
            what = f"{kind} {name}"
            out.append(Where(case.id, what, _localise(case, what, g, e, bad, rtol=tol[0], atol=tol[1])))
    return out


#: the most failing cases localised by one diagnosis (each costs a few small oracle calls)
MAX_LOCALISED = 6


def diagnose(candidate, op, cases="quick", grads=None, dtype="float64", adapter=None,
             report=None, conventions=None, localise=True):
    """Say which registered convention, if any, explains a candidate's failures, else where
    the errors live.

    Parameters
    ----------
    candidate, op, cases, grads, dtype, adapter : as for :func:`kexue_ref.testing.check`.
    report : a :class:`~kexue_ref.testing.Report` of the same check, to reuse its verdicts
        (otherwise ``check`` is run first).
    conventions : alternatives to try instead of the registered ones (``Convention`` or dicts).
    localise : bool (default True), localise the errors of up to :data:`MAX_LOCALISED`
        failing cases (:func:`kexue_ref.testing.localise.localise`).

    Returns
    -------
    Diagnosis. For every failing case that is not an error case, the candidate is run once
    (values, and its VJP when ``grads`` is given) and compared, with the table tolerance of
    ``dtype``, to the oracle re-run under each alternative. An alternative "matches" a case
    when every compared array agrees. A failing quirk case (``Case.quirk``) is first compared
    with the post's semantics; when the candidate follows the post there, the case is reported
    as such and the alternatives are not tried on it.
    """
    spec = registry.get_op(op)
    adapter = get_adapter(adapter)
    if report is None:
        # check without its own diagnosis (that would be this one again) and no localisation
        report = _run_cases(candidate, spec, cases=cases, grads=grads, dtype=dtype,
                            adapter=adapter, localise=False)[0]
    alts = ([_as_convention(a) for a in conventions] if conventions is not None
            else conventions_for(spec))
    failing_ids = {r.case_id for r in report.failures}
    failing = [c for c in registry.cases(spec, report.tiers)
               if c.id in failing_ids and c.tier != "error"]
    results = [Match(a, [], [], []) for a in alts]
    diagnosis = Diagnosis(spec.name, [c.id for c in failing], results)
    if not failing or (not alts and not localise and not any(c.quirk for c in failing)):
        return diagnosis
    run = adapter.wrap(candidate) if hasattr(adapter, "wrap") else candidate
    n_localised = 0
    # the localisation lines check() attached to failing comparisons, by case id
    reported = {r.case_id: [Where(r.case_id, c.what, list(c.where)) for c in r.comparisons
                            if not c.passed and getattr(c, "where", None)]
                for r in report.failures}
    for case in failing:
        # the table tolerance of the dtype, with the case's overrides
        vtol = tolerance_for(dtype, "values", case.tol)
        gtol = tolerance_for(dtype, "grads", case.tol)
        try:
            args = [adapter.to_candidate(case.inputs[n], dtype) for n in spec.inputs]
            got = [adapter.to_numpy(o) for o in spec.as_outputs(run(*args, **case.params))]
        except Exception:
            continue  # a candidate that raises matches no convention and has no error to place
        cot = cand_g = None
        if grads is not None and spec.diff:
            cot = make_cotangents(case, reference_outputs(case))
            try:
                cand_g = [adapter.to_numpy(g) for g in adapter.vjp(run, spec, case, dtype, cot, grads)]
            except Exception:
                cand_g = None
        if case.quirk:
            # a quirk case: does the candidate follow the post's semantics instead?
            post = _post_case(case)
            try:
                ok = _agrees(got, reference_outputs(post), vtol)
                if ok and cand_g is not None:
                    ok = _agrees(cand_g, autograd_vjp(spec.ref, spec, post.inputs, post.params, cot), gtol)
            except Exception:
                ok = False
            diagnosis.quirk_cases.append(QuirkCase(case.id, case.quirk, bool(ok)))
            if ok:
                continue
        for m in results:
            conv = m.convention
            try:
                inputs, params = conv.apply(case)
                alt = _alt_case(case, inputs, params)
                ref = conv.reference(spec)
                expected = [onp.asarray(o) for o in spec.as_outputs(spec.call(ref, alt))]
                alt_g = None
                if cand_g is not None:
                    alt_g = autograd_vjp(ref, spec, inputs, params, cot)
            except Exception:
                m.skipped.append(case.id)
                continue
            m.tried.append(case.id)
            if alt.quirk and alt.quirk != case.quirk:
                # the alternative turns the case into a peer's quirk
                m.quirk = alt.quirk
            ok = _agrees(got, expected, vtol)
            if ok and alt_g is not None:
                ok = _agrees(cand_g, alt_g, gtol)
            if ok:
                m.matched.append(case.id)
        if localise and reported.get(case.id):
            # check() has localised these comparisons already: reuse, do not recompute
            diagnosis.where += reported[case.id]
        elif localise and n_localised < MAX_LOCALISED:
            # where the errors live, against the case's own oracle
            n_localised += 1
            try:
                diagnosis.where += _where(case, got, reference_outputs(case), spec.outputs, vtol, "value")
                if cand_g is not None:
                    ref_g = reference_grads(case, cot)
                    diagnosis.where += _where(case, cand_g, [ref_g[n] for n in spec.diff],
                                              spec.diff, gtol, "grad")
            except Exception as exc:   # localisation is advice: never let it hide the report
                diagnosis.where.append(Where(case.id, "localisation",
                                             [f"failed: {type(exc).__name__}: {exc}"]))
    return diagnosis
