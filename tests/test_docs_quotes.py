"""Code quoted from the library in ``docs/*.md`` is the library's code, verbatim.

The pages show the lines that implement each equation. So that a change of the code cannot leave
a page describing old code, every quoted line must still exist, verbatim after stripping the
indentation, in ``kexue_ref/``.

Which fenced blocks are quotes:

* **Marked blocks.** A fenced block whose first line is a marker comment naming a file or package
  of the library, ``# kexue_ref/<path>[, <what>]`` (e.g. ``# kexue_ref/reparam/gumbel.py,
  gumbel_softmax``), quotes that path: the path must exist (a ``.py`` file, or a package folder
  whose files are searched), and every other line must be found in it.
  A later marker line inside the block switches to the next quoted place.
* **Unmarked blocks.** A fenced ``python`` block without a marker and without ``>>>`` (doctest
  blocks are run by the doctests instead) counts as a quote when a strict majority of its
  substantive code lines (not comments, imports, ``def``/``class`` lines or decorators, which
  ports and usage examples share with the library) are found verbatim anywhere in
  ``kexue_ref/``; then all of its lines must be, except a leading comment line (a caption such
  as ``# _fwd_block``). A usage example or a port (``import torch`` …) is left alone.

Lines compared: every non-blank line of a quote except markers and captions, comments included
(the equations above the lines are part of what a page quotes), and except elisions (``...``,
``# ...``, ``…``). A source line matches with or without its trailing ``# comment``. Prefer
markers: they say where the lines are, and a quote of a file that moved fails.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "kexue_ref"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_MARKER = re.compile(r"^\s*#\s*(kexue_ref/[\w./-]*?)(?:\.py)?(?=[,\s(]|$)")
_ELISION = {"...", "…", "# ...", "# …", "pass  # ..."}


def fenced_blocks(text):
    """``[(first line number of the body, language, body lines)]`` of a Markdown text."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, j = m.group(1), m.group(2), i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        blocks.append((i + 2, lang, lines[i + 1:j]))
        i = j + 1
    return blocks


def _strip_comment(line):
    """``line`` without a trailing ``# comment`` (a ``#`` inside a string literal is kept)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:k].rstrip()
    return line.rstrip()


def source_lines(paths):
    """The set of stripped lines (and of stripped lines without their trailing comment)."""
    out = set()
    for p in paths:
        for line in p.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if s:
                out.add(s)
                code = _strip_comment(s)
                if code:
                    out.add(code)
    return out


_ALL_SOURCE = None


def all_source():
    global _ALL_SOURCE
    if _ALL_SOURCE is None:
        _ALL_SOURCE = source_lines(sorted(PKG.rglob("*.py")))
    return _ALL_SOURCE


def marker_path(body):
    """The library path a block's marker names, or None when the block has no marker."""
    first = next((ln for ln in body if ln.strip()), "")
    m = _MARKER.match(first)
    return m.group(1).rstrip("/") if m else None


def quoted_lines(body, skip_marker):
    """``[(index, stripped line)]`` of the lines a quote claims; markers and elisions left out
    (with ``skip_marker`` False, a leading comment line is a caption and left out too)."""
    out = []
    for k, line in enumerate(body):
        s = line.strip()
        if not s or s in _ELISION:
            continue
        if skip_marker and _MARKER.match(line):
            continue
        if not skip_marker and not out and s.startswith("#") and k == _first(body):
            continue
        out.append((k, s))
    return out


def _first(body):
    return next((k for k, ln in enumerate(body) if ln.strip()), -1)


def _files_of(path, root):
    """The source files a marker path names ([] when it names nothing)."""
    if (root / (path + ".py")).is_file():
        return [root / (path + ".py")]
    if (root / path).is_dir():
        return sorted((root / path).rglob("*.py"))
    return []


_SIGNATURE = re.compile(r"^(import |from \S+ import |def |class |@)")


def check_block(body, lang, root=ROOT):
    """``(is_quote, problems)`` for one fenced block; problems name the lines not found."""
    if any(ln.lstrip().startswith(">>>") for ln in body):
        return False, []
    if marker_path(body) is not None:
        # a marked block; a later marker line switches to the next quoted place
        problems, path, known = [], None, set()
        for k, line in enumerate(body):
            s = line.strip()
            m = _MARKER.match(line)
            if m:
                path = m.group(1).rstrip("/")
                files = _files_of(path, root)
                if not files:
                    problems.append(f"line {k + 1}: the marker names {path}(.py), which does not exist")
                known = source_lines(files)
                continue
            if s and s not in _ELISION and files and s not in known:
                problems.append(f"line {k + 1} not in {path}: {s}")
        return True, problems
    if lang not in ("python", "py"):
        return False, []
    known = all_source() if root == ROOT else source_lines(sorted((root / "kexue_ref").rglob("*.py")))
    lines = quoted_lines(body, skip_marker=False)
    # a strict majority of the substantive code lines (imports and signatures coincide with
    # ports and usage examples, so they do not count) must come from the library
    substantive = [s for _, s in lines if not s.startswith("#") and not _SIGNATURE.match(s)]
    if not substantive or 2 * sum(s in known for s in substantive) <= len(substantive):
        return False, []
    return True, [f"line {k + 1} not in kexue_ref/: {s}" for k, s in lines if s not in known]


def page_problems(page, root=ROOT):
    """``(number of quote blocks, number of quoted lines, problems)`` of one page."""
    n_blocks, n_lines, problems = 0, 0, []
    for start, lang, body in fenced_blocks(page.read_text(encoding="utf-8")):
        is_quote, probs = check_block(body, lang, root)
        if is_quote:
            n_blocks += 1
            n_lines += len(quoted_lines(body, skip_marker=marker_path(body) is not None))
            problems += [f"{page.name}:{start}: {p}" for p in probs]
    return n_blocks, n_lines, problems


PAGES = sorted(DOCS.glob("*.md"))


# --------------------------------------------------------------------------------------------
# the judge is judged on a synthetic package and page
# --------------------------------------------------------------------------------------------
def _synthetic(tmp_path):
    pkg = tmp_path / "kexue_ref" / "topic"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(
        "def f(x):\n"
        "    # y = 2x + 1\n"
        "    y = 2 * x + 1  # the affine map\n"
        "    return np.tanh(y)\n")
    return tmp_path


def _page(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page_problems(page, root=tmp_path)


def test_judge_accepts_verbatim_quotes(tmp_path):
    root = _synthetic(tmp_path)
    n, lines, probs = _page(root, "```python\n# kexue_ref/topic/core.py, f\n# y = 2x + 1\n"
                                  "y = 2 * x + 1\n...\nreturn np.tanh(y)\n```\n"
                                  "```python\n# kexue_ref/topic, f\ny = 2 * x + 1  # the affine map\n```\n")
    assert (n, lines, probs) == (2, 4, [])


def test_judge_catches_a_changed_line(tmp_path):
    root = _synthetic(tmp_path)
    n, _, probs = _page(root, "```python\n# kexue_ref/topic/core.py, f\ny = 2 * x + 1\n"
                              "return _tanh(y)\n```\n")
    assert n == 1 and len(probs) == 1 and "_tanh(y)" in probs[0]


def test_judge_catches_a_changed_comment_and_a_missing_file(tmp_path):
    root = _synthetic(tmp_path)
    _, _, probs = _page(root, "```python\n# kexue_ref/topic/core.py, f\n# y = 3x + 1\n```\n"
                              "```python\n# kexue_ref/topic/gone.py, f\ny = 2 * x + 1\n```\n")
    assert len(probs) == 2 and "y = 3x" in probs[0] and "does not exist" in probs[1]


def test_judge_unmarked_blocks(tmp_path):
    root = _synthetic(tmp_path)
    # mostly library lines: a quote, so the one stale line is reported
    n, _, probs = _page(root, "```python\ny = 2 * x + 1\nreturn np.tanh(y)\nreturn _tanh(y)\n```\n")
    assert n == 1 and len(probs) == 1 and "_tanh" in probs[0]
    # a usage example and a doctest are not quotes
    n, _, probs = _page(root, "```python\nimport torch\nout = f(torch.ones(3))\ny = 2 * x + 1\n```\n"
                              "```python\n>>> y = 2 * x + 1\n>>> z = 4\n```\n"
                              "```text\ny = 2 * x + 1\n```\n")
    assert (n, probs) == (0, [])


# --------------------------------------------------------------------------------------------
# the pages
# --------------------------------------------------------------------------------------------
def test_pages_quote_the_library():
    total = sum(page_problems(p)[0] for p in PAGES)
    assert total >= 30, f"only {total} quoted blocks found: has the marker convention changed?"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_quoted_code_exists_verbatim(page):
    _, _, problems = page_problems(page)
    assert not problems, "quoted lines that are not in the code:\n" + "\n".join(problems)
