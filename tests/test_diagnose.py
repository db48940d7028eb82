"""The diagnosis when no convention explains a failure: it says where the errors are, never
offers a peer's quirk for a structural bug, and tells a faithful port that fails only the
quirk cases that it follows the post.

The candidates are written independently of the oracle (their own masks and formulas); the
expected verdicts follow from what each one computes.
"""
import pathlib
import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval

from kexue_ref.testing import check
from kexue_ref.testing import diagnose as dg
from kexue_ref.testing.diagnose import Convention, Diagnosis, Match, QuirkCase, Where, diagnose

LOCAL = "sparse_attention.local_attention"
WIDE = ("the candidate matches the oracle with keys at distance W+1 = 4 from the query also "
        "allowed: a window one too wide (|i − j| ≤ W+1)")


def softmax_rows(s, allow):
    """Row softmax over the True entries of ``allow``; rows with none give 0. Traceable by
    autograd (the max shift is held constant: it cancels)."""
    m = np.max(np.where(allow, getval(s), -1e300), axis=-1, keepdims=True)
    m = np.where(np.any(allow, axis=-1, keepdims=True), m, 0.0)
    p = anp.where(allow, anp.exp(anp.where(allow, s, m) - m), 0.0)
    z = anp.sum(p, axis=-1, keepdims=True)
    return p / anp.where(z > 0, z, 1.0)


def local_port(q, k, v, neighbors, causal=False, mask=None, compat=None, extra=0):
    """The post's local attention (|i − j| ≤ W, j ≤ i when causal, padded keys removed and
    padded queries zeroed) from dense scores; ``extra`` widens the window (a bug). Ignores
    ``compat``: a port of the post, not of the Keras code."""
    B, _, T, D = q.shape
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allow = np.abs(i - j) <= neighbors + extra
    if causal:
        allow = allow & (j <= i)
    valid = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    p = softmax_rows(anp.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(D), allow & valid[:, None, None, :])
    return anp.einsum("bhij,bhje->bhie", p, v) * valid[:, None, :, None]


def local_wide(q, k, v, neighbors, causal=False, mask=None, compat=None):
    """The off-by-one window: |i − j| ≤ W + 1."""
    return local_port(q, k, v, neighbors, causal, mask, compat, extra=1)


# --- a structural bug: no convention, the errors placed -----------------------------------

def test_off_by_one_window_is_localised_when_no_convention_explains_it():
    report = check(local_wide, LOCAL)
    n = len(report.failures)
    assert n == 3                                   # the three quick cases of the post
    d = diagnose(local_wide, LOCAL, report=report)
    assert d.matches == []
    lines = d.lines()
    assert lines[0] == (f"diagnosis: no registered convention of {LOCAL} explains the failures "
                        "(tried: compat='keras'; causal flipped)")
    assert lines[1] == f"diagnosis: where: value out: {WIDE} [3/3 failing cases]"
    # a quirk tried and not matched is listed as tried, never offered
    assert not any("compat='keras'" in ln for ln in lines[1:])


def test_diagnosis_localises_itself_without_check_and_with_gradients():
    report = check(local_wide, LOCAL, grads="autograd", diagnose=False)
    d = diagnose(local_wide, LOCAL, grads="autograd", report=report)
    # the window bug moves every gradient too: one line names the four members
    assert d.lines()[1] == f"diagnosis: where: value out, grad q, grad k, grad v: {WIDE} [3/3 failing cases]"
    assert {w.what for w in d.where} == {"value out", "grad q", "grad k", "grad v"}
    off = diagnose(local_wide, LOCAL, report=report, localise=False)
    assert off.where == [] and not any("where:" in ln for ln in off.lines())


def test_a_candidate_that_raises_has_nothing_to_localise():
    def broken(q, k, v, neighbors, **kw):
        raise RuntimeError("not implemented")

    d = diagnose(broken, LOCAL)
    assert d.where == [] and len(d.lines()) == 1 and "no registered convention" in d.lines()[0]


# --- quirk cases: a faithful port is told so --------------------------------------------------

def test_faithful_port_failing_only_the_keras_cases_is_told_it_follows_the_post():
    report = check(local_port, LOCAL, quirks=True)
    failed = [r.case_id for r in report.failures]
    assert failed == [f"{LOCAL}[keras-T10-neighbors2]"]          # the only quick quirk case
    d = diagnose(local_port, LOCAL, report=report)
    assert d.faithful_quirk_cases == failed
    assert d.lines() == ["diagnosis: 1 failing case(s) reproduce a peer's quirk (compat='keras'); "
                         "on them the candidate matches the post's semantics, as a faithful port "
                         "should (quirk cases run only when asked for)"]


def test_a_wrong_port_is_not_called_faithful_on_the_quirk_cases():
    report = check(local_wide, LOCAL, quirks=True)
    d = diagnose(local_wide, LOCAL, report=report)
    assert d.faithful_quirk_cases == []
    assert [q.post_match for q in d.quirk_cases] == [False]
    assert d.lines()[0].startswith(f"diagnosis: no registered convention of {LOCAL}")
    assert not any("faithful" in ln for ln in d.lines())


# --- a quirk that explains everything is named as a quirk ------------------------------------

def test_a_complete_quirk_match_is_labelled_as_a_quirk():
    def keras_gumbel(u, *, mode="exact", eps=None):
        # Su's code: -log(-log(u + 1e-7) + 1e-7), whatever the mode
        return -np.log(-np.log(u + 1e-7) + 1e-7)

    report = check(keras_gumbel, "reparam.gumbel_from_uniform")
    d = diagnose(keras_gumbel, "reparam.gumbel_from_uniform", report=report)
    (m,) = d.matches
    assert m.convention.label == "mode='keras'" and m.quirk == "mode='keras'"
    assert d.lines()[0].endswith("; that is a peer's quirk (mode='keras'), not the post's semantics")


def test_nan_on_fully_masked_rows_is_placed_not_blamed_on_the_fill_quirk():
    def minus_inf(q, k, v, allowed=None, key_mask=None, query_mask=None, causal=False, fill=None):
        allow = np.asarray(allowed, bool)
        if causal:
            allow = allow & np.tri(q.shape[2], dtype=bool)
        if key_mask is not None:
            allow = allow & np.asarray(key_mask, bool)[:, None, None, :]
        s = np.where(allow, np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(q.shape[-1]), -np.inf)
        with np.errstate(invalid="ignore"):
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            return np.einsum("bhij,bhje->bhie", p / p.sum(axis=-1, keepdims=True), v)

    d = diagnose(minus_inf, "sparse_attention.attention")
    lines = d.lines()
    assert d.matches == [] and "(tried: causal flipped; fill=-1e9)" in lines[0]
    # batch 0 of the case has no valid key: 5 of its B·H·T = 10 rows are fully masked
    assert lines[1].startswith("diagnosis: where: value out: only fully masked rows (5 of 10 "
                               "query rows); the candidate returns NaN there")
    assert not any("fill" in ln for ln in lines[1:])


# --- the line rules, on hand-built results ----------------------------------------------------

def _match(label, matched, tried, quirk=""):
    return Match(Convention(label), matched, tried, [], quirk=quirk)


def test_partial_quirk_matches_are_never_offered_but_post_conventions_are():
    ids = ["op.f[a]", "op.f[b]"]
    d = Diagnosis("op.f", ids, [_match("compat='keras'", ids[:1], ids, quirk="compat='keras'"),
                                _match("base=1", ids[:1], ids)],
                  where=[Where(ids[0], "value out", ["only the last time step (time step 6 = T−1)"]),
                         Where(ids[1], "value out", ["only the last time step (time step 6 = T−1)"])])
    lines = d.lines()
    assert lines[0] == ("diagnosis: no registered convention of op.f explains the failures "
                        "(tried: compat='keras'; base=1)")
    assert lines[1] == "diagnosis: partial match with base=1 on 1/2 failing cases (not on b)"
    assert lines[2] == "diagnosis: where: value out: only the last time step (time step 6 = T−1) [2/2 failing cases]"
    assert len(lines) == 3


def test_where_lines_are_ranked_merged_and_bounded():
    ids = ["op.f[a]", "op.f[b]", "op.f[c]"]
    where = [Where(ids[0], "value out", ["rare"]),
             Where(ids[0], "grad x", ["common", "third"]),
             Where(ids[1], "value out", ["common"]),
             Where(ids[2], "value out", ["common"])]
    lines = Diagnosis("op.f", ids, [], where=where).lines()
    assert lines[0].startswith("diagnosis: op.f has no registered convention options")
    # "common" is found in 3 cases, for two members; then the first-seen of the 1-case ones
    assert lines[1:] == ["diagnosis: where: grad x, value out: common [3/3 failing cases]",
                         "diagnosis: where: value out: rare [1/3 failing cases]",
                         "diagnosis: where: 1 more finding(s) in Diagnosis.where"]


def test_faithful_quirk_cases_and_a_complete_match_leave_no_unexplained_case():
    ids = ["op.f[a]", "op.f[keras]"]
    d = Diagnosis("op.f", ids, [_match("base=1", ids[:1], ids[:1])],
                  quirk_cases=[QuirkCase(ids[1], "compat='keras'", True)],
                  where=[Where(ids[0], "value out", ["all entries (4/4): no structure along axis 0"])])
    lines = d.lines()
    assert lines[0].startswith("diagnosis: the candidate matches the oracle called with base=1 on 1/1")
    assert "faithful port" in lines[1] and len(lines) == 2


@pytest.mark.parametrize("op", ["sparse_attention.local_attention", "dgcnn.dgcnn_block"])
def test_the_registered_conventions_name_no_private_note(op):
    # the notes are shown to users: they cite pages of docs/ that exist or peers' code, never
    # a working document (those go by all-capitals names, which no note uses)
    root = pathlib.Path(__file__).resolve().parents[1]
    for conv in dg.conventions_for(op):
        for page in re.findall(r"docs/[\w./-]+\.md", conv.note):
            assert (root / page).exists(), (conv.label, page)
        assert not re.search(r"\b[A-Z]{4,}\b", conv.note), (conv.label, conv.note)
