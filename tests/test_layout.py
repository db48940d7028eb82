"""The layout promise: one package per post with files of at most 400 lines, and no other
module of ``kexue_ref/`` over 500 lines without a one-line reason at its top."""
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "kexue_ref"
#: the packages of the six posts (``kexue_ref/<post>/``)
POSTS = ("smoothing", "on_lstm", "dgcnn", "orthogonality", "reparam", "sparse_attention")


def _lines(path):
    return len(path.read_text(encoding="utf-8").splitlines())


def oversized(root, posts=POSTS, post_limit=400, other_limit=500):
    """Files that break the layout rule, as ``(path, lines, limit)``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        n = _lines(path)
        if rel.parts[0] in posts:
            if n > post_limit:
                bad.append((rel.as_posix(), n, post_limit))
        elif n > other_limit:
            first = path.read_text(encoding="utf-8").splitlines()[0]
            # a reason is a comment on the first line that says why the file is long
            if not (first.startswith("# ") and "500 lines" in first and ":" in first):
                bad.append((rel.as_posix(), n, other_limit))
    return bad


def test_every_post_is_a_package():
    for post in POSTS:
        assert (PKG / post / "__init__.py").is_file(), f"kexue_ref/{post}/ is not a package"
        assert not (PKG / f"{post}.py").exists(), f"kexue_ref/{post}.py shadows the package"


def test_no_file_is_over_its_limit():
    assert oversized(PKG) == []


def test_the_rule_can_fail(tmp_path):
    (tmp_path / "smoothing").mkdir()
    (tmp_path / "smoothing" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "other.py").write_text("x = 1\n" * 501)
    (tmp_path / "table.py").write_text("# Over 500 lines: a case table.\n" + "x = 1\n" * 600)
    assert [b[0] for b in oversized(tmp_path)] == ["other.py", "smoothing/big.py"]
