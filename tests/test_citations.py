"""Every citation in the repository resolves from the repository.

Shipped code, tests, docs, benchmarks and packaging may cite the posts, papers, peers'
repositories and files, and pages of ``docs/``; they must never cite a document that is not in
the repository (a team's working notes: a specification, an anchors file, performance notes, a
style guide, or anything under the team's notes folder). Relative links between pages, and every
``docs/<page>.md`` mentioned in code or docs, must name a file that exists, and an ``#anchor``
on such a link must name a heading of that page.

The scanner is judged first (``test_scanner_*``): synthetic citations it must catch, and words
such as "spectral" and "inspect" (in any case) it must leave alone.
"""
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The forbidden document names are assembled from pieces below, so this file never spells a
# citation itself; it is still the one file not scanned (its synthetic examples contain them).
SELF = Path(__file__).resolve()
_S, _A, _P, _ST, _SH = "SP" + "EC", "ANCH" + "ORS", "PERF" + "-NOTES", "STY" + "LE", "sha" + "red"

# A line carrying this marker is skipped (for a test that asserts a string is *absent*).
ALLOW = "citations: allow"

# Citation forms of unshipped documents. Case-sensitive where the document name is an
# uppercase word, so longer words ("spectral" in capitals), "inspect" and "OpSpec" are not matched.
FORBIDDEN = [
    # the names in upper case as words: "§x", ".md", "'s" or bare
    (_S, re.compile(rf"(?<![\w-]){_S}(?![\w-])")),
    (f"{_S.lower()} §", re.compile(rf"(?i)(?<![\w-]){_S}(?:\.md)?\s*§")),
    (f"{_S}.md", re.compile(rf"(?i)(?<![\w-]){_S}\.md\b")),
    (_A, re.compile(rf"(?<![\w-]){_A}(?![\w-])")),
    (f"{_A.lower()} §", re.compile(rf"(?i)(?<![\w-]){_A}(?:\.md)?\s*§")),
    (f"{_A}.md", re.compile(rf"(?i)(?<![\w-]){_A}\.md\b")),
    (_P, re.compile(r"(?i)(?<![\w-])perf[-_ ]" + "no" + r"tes\b")),
    (f"{_ST}.md", re.compile(rf"(?i)(?<![\w-]){_ST}\.md\b")),
    (f"{_ST} §", re.compile(rf"(?<![\w-]){_ST}(?:\s*§|'s\b)")),
    # a path into the team's folder of notes: ../<folder>…, or <folder>/<file or folder>
    (f"{_SH}/", re.compile(rf"\.\./{_SH}\b|(?<![\w.-]){_SH}/[\w.-]*(?:\.\w+\b|/)")),
]


def find_citations(text):
    """``[(line number, form, line)]`` for every citation of an unshipped document."""
    hits = []
    for n, line in enumerate(text.splitlines(), 1):
        if ALLOW in line:
            continue
        for form, rx in FORBIDDEN:
            if rx.search(line):
                hits.append((n, form, line.strip()))
                break
    return hits


def _files(pattern_dirs):
    out = []
    for base, globs in pattern_dirs:
        d = ROOT / base
        for g in globs:
            out.extend(p for p in d.glob(g) if p.is_file())
    return out


def scanned_files():
    """The shipped or committed text files whose citations must resolve (relative paths)."""
    files = _files([
        ("kexue_ref", ["**/*.py", "**/*.json"]),
        ("tests", ["**/*.py", "**/*.json", "**/*.md", "**/*.txt"]),
        ("docs", ["**/*.md", "figures/*.py"]),
        ("benchmarks", ["**/*.py", "**/*.json", "**/*.md", "**/*.txt"]),
        (".ci", ["*"]),
    ])
    for name in ("README.md", "setup.py", "setup.cfg", "pyproject.toml", "CHANGELOG.md", "LICENSE",
                 "tables/README.md", "tables/MANIFEST.json"):
        if (ROOT / name).is_file():
            files.append(ROOT / name)
    files = sorted({f.resolve() for f in files} - {SELF})
    return [f for f in files if "__pycache__" not in f.parts and ".egg-info" not in str(f)]


_FILES = [str(f.relative_to(ROOT)) for f in scanned_files()]


# --------------------------------------------------------------------------------------------
# the judge is judged
# --------------------------------------------------------------------------------------------
def _fill(texts):
    """Synthetic lines with {S}/{A}/{P}/{ST}/{SH} standing for the assembled names."""
    return [t.format(S=_S, A=_A, P=_P, ST=_ST, SH=_SH) for t in texts]


@pytest.mark.parametrize("text", _fill([
    "formula: {S} §3.2, ``decision``.",
    "the {S}'s running example",
    "see {S}.md for the maths",
    "{S}: u = 0 gives −log(−log(1e-7) + 1e-7)",
    '{S} = "{S} §2.2"',
    "({S} §6.2/§6.5)",
    "spec §7.2 says so",
    "Spec.md",
    "{A} §4.5 (torch vs Keras)",
    "FlashAttention-style rule ({A}",
    "anchors.md",
    "see {P}: freed memory",
    "perf notes say",
    "({ST} §7.2, decision D7)",
    "{ST}.md section 4",
    "../{SH}/{S}.md",
    "read {SH}/{A}.md first",
    "the notes in ../{SH}",
    "{SH}/hooks/pre-commit",
]))
def test_scanner_catches_citations(text):
    assert find_citations(text), text


@pytest.mark.parametrize("text", _fill([
    "{S}TRAL norm", "the spectral norm ‖A‖₂", "inspect.signature(fn)", "IN{S}T",
    "OpSpec(name, fn)", "_{S}_CACHE = {{}}", "CASE_{S}", "the ONNX spec wins over its code",
    "specification", "respectively", "anchors of the tree", "{SH}_memory", "a {SH}/un{SH} flag",
    "docs/references.md#kernel-performance-facts", "the style of the post",
    'assert "{S}" not in note  # citations: allow',
]))
def test_scanner_leaves_words_alone(text):
    assert not find_citations(text), text


def test_scanner_sees_the_repository():
    # the scan covers the kinds of files the brief names (a guard against an empty glob)
    for must in ("kexue_ref/__init__.py", "setup.py", "README.md", "docs/conventions.md",
                 "tests/conftest.py"):
        assert must in _FILES, must
    assert any(f.startswith("benchmarks/") for f in _FILES)
    assert any(f.startswith("docs/figures/") for f in _FILES)
    assert any(f.endswith(".json") and f.startswith("kexue_ref/") for f in _FILES)


# --------------------------------------------------------------------------------------------
# no citation of an unshipped document
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rel", _FILES)
def test_no_citation_of_unshipped_documents(rel):
    text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
    hits = find_citations(text)
    assert not hits, f"{rel} cites documents that are not in the repository:\n" + "\n".join(
        f"  {rel}:{n}: [{form}] {line[:160]}" for n, form, line in hits)


# --------------------------------------------------------------------------------------------
# links and page mentions resolve
# --------------------------------------------------------------------------------------------
_MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_DOCS_MENTION = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(#[\w-]+)?")
_FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading):
    """GitHub's anchor for a heading: markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)       # links keep their text
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LN" or cat == "Mn":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path):
    """The anchors of a Markdown page (headings outside code fences; repeats get -1, -2, …)."""
    seen, out, fenced = {}, set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            k = seen.get(s, 0)
            out.add(s if k == 0 else f"{s}-{k}")
            seen[s] = k + 1
    return out


def _check_target(target_path, anchor, where, problems):
    if not target_path.exists():
        problems.append(f"{where}: {target_path.relative_to(ROOT) if ROOT in target_path.parents else target_path} does not exist")
        return
    if anchor and target_path.suffix == ".md" and anchor not in anchors(target_path):
        problems.append(f"{where}: no heading with anchor #{anchor} in "
                        f"{target_path.relative_to(ROOT)}")


def link_problems(rel):
    """Broken relative Markdown links and ``docs/<page>.md`` mentions of one file."""
    path = ROOT / rel
    text = path.read_text(encoding="utf-8", errors="replace")
    problems = []
    if path.suffix == ".md":
        fenced = False
        for n, line in enumerate(text.splitlines(), 1):
            if _FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:
                continue
            # inline code (`jax.vjp(f, x)[1](u)`) is not a link
            for target in _MD_LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):     # http:, mailto:, …
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                _check_target(dest, anchor, f"{rel}:{n} [..]({target})", problems)
    for n, line in enumerate(text.splitlines(), 1):
        for page, anchor in _DOCS_MENTION.findall(line):
            page = page.rstrip(".")
            _check_target(ROOT / page, anchor.lstrip("#"), f"{rel}:{n} {page}{anchor}", problems)
    return problems


def test_slug_matches_github():
    assert slug("Kernel performance facts") == "kernel-performance-facts"
    assert slug("`compat=\"keras\"`: the author's code as implemented") == \
        "compatkeras-the-authors-code-as-implemented"
    assert slug("max → logsumexp") == "max--logsumexp"
    assert slug("3. Dilated convolution and the gated block") == \
        "3-dilated-convolution-and-the-gated-block"


def test_link_checker_catches_a_broken_link(tmp_path, monkeypatch):
    page = ROOT / "docs" / "conventions.md"
    assert not [p for p in link_problems("docs/conventions.md") if "nope" in p]
    fake = tmp_path / "page.md"
    fake.write_text("# Title\n\n[ok](#title) [bad](missing.md) [anchor](#nope)\n"
                    "see docs/not_a_page.md and docs/conventions.md#shape-letters\n"
                    "```\n[in code](ignored.md)\n```\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "conventions.md").write_text(page.read_text(encoding="utf-8"),
                                                      encoding="utf-8")
    problems = link_problems("page.md")
    assert any("missing.md" in p for p in problems)
    assert any("#nope" in p for p in problems)
    assert any("docs/not_a_page.md" in p for p in problems)
    assert not any("ignored.md" in p or "#title" in p or "shape-letters" in p for p in problems)
    assert len(problems) == 3, problems


@pytest.mark.parametrize("rel", _FILES)
def test_links_and_page_mentions_resolve(rel):
    problems = link_problems(rel)
    assert not problems, "\n".join(problems)
