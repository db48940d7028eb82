"""Which registry cases a check runs: tiers, quirk cases, ``only`` / ``skip`` / ``xfail`` patterns."""
import fnmatch

from kexue_ref import registry

__all__ = ["select_cases"]


def _patterns(value, name):
    """A tuple of glob patterns from None, a string or an iterable of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out = tuple(value)
    if not all(isinstance(p, str) and p for p in out):
        raise TypeError(f"{name} must be a case name or id, a glob pattern, or a list of them")
    return out


def _matches(case, pattern):
    """Whether a pattern names the case: its name (``post-x-K1``) or id (``op[post-x-K1]``)."""
    return fnmatch.fnmatchcase(case.name, pattern) or fnmatch.fnmatchcase(case.id, pattern)


def select_cases(spec, tiers, quirks=False, only=None, skip=None, xfail=None):
    """The cases ``check`` runs, with the quirk cases it leaves out and the xfail reasons.

    Parameters
    ----------
    spec : OpSpec.
    tiers : tuple of tier names.
    quirks : bool, run the cases that reproduce a peer's quirk (``Case.quirk != ""``).
    only, skip : glob patterns (or exact names / ids) of cases to keep / drop.
    xfail : patterns, or a dict {pattern: reason}, of cases expected to fail.

    Returns
    -------
    (cases, left_out_quirks, xfail_reasons): the cases in registry order, the ids of the
    quirk cases not run, and {case id: reason}. A pattern that matches no case of the tiers
    raises ``ValueError`` (a typo must not silently select nothing), and so does an empty
    selection.
    """
    every = registry.cases(spec, tiers)
    only, skip = _patterns(only, "only"), _patterns(skip, "skip")
    reasons = dict(xfail) if isinstance(xfail, dict) else {p: "" for p in _patterns(xfail, "xfail")}
    for name, pats in (("only", only), ("skip", skip), ("xfail", tuple(reasons))):
        for p in pats:
            if not any(_matches(c, p) for c in every):
                raise ValueError(f"{name} pattern {p!r} matches no case of {spec.name} in tiers "
                                 f"{', '.join(tiers)}")
    chosen = [c for c in every if (not only or any(_matches(c, p) for p in only))
              and not any(_matches(c, p) for p in skip)]
    left_out = [c.id for c in chosen if c.quirk and not quirks]
    chosen = [c for c in chosen if quirks or not c.quirk]
    if not chosen:
        why = []
        if only or skip:
            why.append("after --only/--skip")
        if left_out:
            why.append(f"{len(left_out)} quirk case(s) left out; quirks=True (--quirks) runs them")
        raise ValueError(f"no case of {spec.name} to run in tiers {', '.join(tiers)}"
                         + (f" ({'; '.join(why)})" if why else ""))
    xf = {}
    for c in chosen:
        for p, why in reasons.items():
            if _matches(c, p):
                xf[c.id] = why or f"xfail {p}"
    return chosen, left_out, xf


def _tiers_of(cases):
    if cases == "all":
        return registry.TIERS
    return (cases,) if isinstance(cases, str) else tuple(cases)
