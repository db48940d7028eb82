"""The results of a check: one :class:`CaseResult` per case, gathered in a :class:`Report`.

``str(report)`` is the readable report (at most four lines a failing case, torch.testing's
wording for mismatches); ``report.to_dict()`` is its JSON form (the schema
``kexue_ref/schemas/check_report.schema.json``, version :data:`REPORT_FORMAT_VERSION`).
"""
import dataclasses

__all__ = ["CaseResult", "Report", "STATUSES", "REPORT_FORMAT_VERSION"]

#: version of the report's JSON layout (``Report.to_dict``); bumped on any change of its fields
REPORT_FORMAT_VERSION = 2

#: longest exception message quoted in a report line
_MAX_MESSAGE = 160


#: CaseResult.status values: a valid case that matched, an error case the candidate refused,
#: a failure, an expected failure (``xfail``) and an expected failure that passed
STATUSES = ("passed", "refused", "failed", "xfailed", "xpassed")


@dataclasses.dataclass
class CaseResult:
    """The verdict for one case: its comparisons, or what the candidate raised.

    ``passed`` is the case's own verdict (matched, or refused as it should); ``status`` is
    one of :data:`STATUSES` (an ``xfail`` case that fails is "xfailed" and does not fail the
    run); ``quirk`` names the peer convention the case reproduces ("" for the post's).
    """
    case_id: str
    tier: str
    passed: bool
    comparisons: list
    error: str = ""
    status: str = ""
    quirk: str = ""
    xfail: str = ""

    def __post_init__(self):
        if not self.status:
            self.status = "passed" if self.passed else "failed"

    def _head(self, word):
        tag = f" (quirk {self.quirk})" if self.quirk else ""
        return f"{word} {self.case_id} [{self.tier}]{tag}"

    def lines(self):
        """The case in at most 4 lines: 1 when it passes, at most 4 when it fails."""
        if self.status in ("passed", "refused"):
            return [self._head("PASS") + (f" {self.error}" if self.error else "")]
        if self.status == "xpassed":
            return [self._head("XPASS") + f": passes although marked xfail ({self.xfail})"]
        bad = [c for c in self.comparisons if not c.passed]
        if self.status == "xfailed":
            why = self.error or (bad[0].headline() if bad else "")
            return [self._head("XFAIL") + f": {_clip(why)}"]
        if self.error or not bad:
            return [self._head("FAIL") + (f": {self.error}" if self.error else "")]
        first = bad[0]
        head = self._head("FAIL") + " " + first.headline()
        if len(bad) > 1:
            # the other failing arrays, one phrase each
            head += "; also " + ", ".join(f"{c.what} ({c.n_bad}/{c.size})" if c.size else c.what
                                          for c in bad[1:])
        out = [head] + ["    " + d for d in first.detail()]
        if first.where:
            out.append("    where: " + "; ".join(first.where))
        elif first.message and first.size:
            out.append("    " + first.message)
        return out[:4]


def _clip(text, n=_MAX_MESSAGE):
    """One line of at most ``n`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _describe(exc):
    """An exception as ``Type: message`` on one line."""
    return _clip(f"{type(exc).__name__}: {exc}")


@dataclasses.dataclass
class Report:
    """Per-case results of :func:`check`; ``str(report)`` is the readable report.

    ``notes`` holds the rule in use, the quirk cases left out, the convention diagnosis and
    any localisation the failing cases got; ``diagnosis`` lists the labels of the registered
    conventions the failing candidate follows.
    """
    op: str
    candidate: str
    dtype: str
    tiers: tuple
    results: list
    notes: list = dataclasses.field(default_factory=list)
    rule: str = "table"
    k: float = 2.0
    framework: str = "numpy"
    quirks: bool = False
    check_dtype: bool = True
    skipped: list = dataclasses.field(default_factory=list)
    diagnosis: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        """True when no case failed (expected failures and their passes do not count)."""
        return all(r.status != "failed" for r in self.results)

    @property
    def failures(self):
        """The failed cases (not the expected failures)."""
        return [r for r in self.results if r.status == "failed"]

    def __bool__(self):
        return self.passed

    def counts(self):
        """{status: number of cases} over :data:`STATUSES`."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def summary(self):
        """``"N passed, M failed"``, with refusals, xfails and xpasses when there are any."""
        n = self.counts()
        parts = [f"{n['passed']} passed"]
        if n["refused"]:
            parts.append(f"{n['refused']} refused")
        parts.append(f"{n['failed']} failed")
        parts += [f"{n[s]} {s}" for s in ("xfailed", "xpassed") if n[s]]
        return ", ".join(parts)

    def __str__(self):
        lines = [f"kexue_ref check: {self.op} vs {self.candidate} "
                 f"(dtype {self.dtype}, tiers {', '.join(self.tiers)})"]
        for r in self.results:
            lines.extend(r.lines())
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"{self.op}: {self.summary()}")
        return "\n".join(lines)

    def to_dict(self):
        """The report as JSON-able data (the schema ``check_report``)."""
        from kexue_ref import __version__

        return {"format_version": REPORT_FORMAT_VERSION, "version": __version__,
                "op": self.op, "candidate": self.candidate, "dtype": self.dtype,
                "tiers": list(self.tiers), "framework": self.framework, "rule": self.rule,
                "k": self.k, "quirks": self.quirks, "check_dtype": self.check_dtype,
                "passed": self.passed, "summary": self.summary(), "counts": self.counts(),
                "notes": list(self.notes), "diagnosis": list(self.diagnosis),
                "skipped": list(self.skipped),
                "results": [dict(dataclasses.asdict(r)) for r in self.results]}
