r"""Tree induction from distances, bracket strings, spans and unlabeled bracket F1.

Post: https://kexue.fm/archives/6621, the unsupervised parsing at its end: split a sentence at
the largest distance (a large d_f means the step keeps little history, so a new constituent
starts there) and recurse; its examples "苹果的颜色是什么" and "爱真的需要勇气". Codes: ``build_tree``
of ``bojone/on-lstm`` ``lm_model.py`` and of ``yikangshen/Ordered-Neurons``
``test_phrase_grammar.py`` (with ``get_brackets`` and the sentence-level F1 of the paper's
unsupervised-parsing evaluation, Shen et al., ICLR 2019). See ``docs/on_lstm.md``, "Tree induction".
"""
import numpy as onp

from kexue_ref._validate import as_float, check_float_array


def build_tree(tokens, d):
    r"""Greedy top-down parse from a distance sequence (the post's and the codes' rule).

    .. math:: k = \arg\max_t d_t \;(\text{first on ties}); \quad
              \mathrm{tree}(x) = \begin{cases}
              x_k & |x| = 1 \\
              [\mathrm{tree}(x_{<k}),\ [x_k, \mathrm{tree}(x_{>k})]] & \text{both sides non-empty} \\
              [\mathrm{tree}(x_{<k}),\ x_k] & x_{>k} \text{ empty} \\
              [x_k,\ \mathrm{tree}(x_{>k})] & x_{<k} \text{ empty}
              \end{cases}

    Parameters
    ----------
    tokens : sequence of T ≥ 1 tokens (strings, or any objects).
    d : array (T,), finite distances (e.g. :func:`distance` of one layer, one sentence).

    Returns
    -------
    a token (T = 1) or a nested list of tokens (binary except at the root).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("split at the largest d_f: a large d_f means the
    step uses little history, so a new constituent starts there"); ``build_tree`` of
    ``lm_model.py`` (copied there from ``test_phrase_grammar.py`` of the official code). The
    codes parse with one layer (Su: layer 0, the start token dropped; official: layer 1 of 3).

    Examples
    --------
    >>> build_tree(["苹果", "的", "颜色", "是", "什么"], onp.array([0.5, 0.1, 0.6, 0.2, 0.9]))
    [[['苹果', '的'], ['颜色', '是']], '什么']
    """
    tokens = [t.item() if isinstance(t, onp.generic) else t for t in tokens]
    d = check_float_array(as_float(d, "d"), "d")
    if d.ndim != 1 or d.shape[0] != len(tokens) or not tokens:
        raise ValueError(f"d must have shape (T,) with T = len(tokens) >= 1; got {len(tokens)} "
                         f"tokens and d of shape {d.shape}")
    return _build(tokens, d, 0, len(tokens))


def tree_to_brackets(tree):
    r"""A nested-list tree as a bracket string: ``(left right)`` for every list.

    .. math:: \mathrm{br}(x) = x, \qquad \mathrm{br}([t_1, \dots, t_m]) =
              (\mathrm{br}(t_1)\ \dots\ \mathrm{br}(t_m))

    Parameters
    ----------
    tree : a token or a nested list of tokens (from :func:`build_tree`).

    Returns
    -------
    str.

    Notes
    -----
    Source: library format, close to ``MRG`` of ``test_phrase_grammar.py`` (which pads with
    spaces).

    Examples
    --------
    >>> tree_to_brackets(['爱', ['真的', ['需要', '勇气']]])
    '(爱 (真的 (需要 勇气)))'
    """
    if isinstance(tree, (list, tuple)):
        return "(" + " ".join(tree_to_brackets(t) for t in tree) + ")"
    return str(tree)


def tree_spans(tree, trivial=False):
    r"""The spans [i, j) (0-based, half-open) of a tree's constituents.

    .. math:: \mathrm{spans}(t) = \{[i, j) : \text{a list node of } t \text{ covers tokens }
              i..j-1,\ j - i \ge 2,\ [i, j) \ne [0, T)\}

    Parameters
    ----------
    tree : a token or a nested list of tokens.
    trivial : False (default, the paper's evaluation) drops the trivial spans: single tokens
        and the whole sentence; True keeps both.

    Returns
    -------
    sorted list of (i, j) tuples (no duplicates: a unary chain gives one span).

    Notes
    -----
    Source: ``get_brackets`` of ``test_phrase_grammar.py`` (spans of length ≥ 2, the root span
    not added). A binary tree over T ≥ 2 tokens has T − 2 non-trivial spans.

    Examples
    --------
    >>> tree_spans([[['苹果', '的'], ['颜色', '是']], '什么'])
    [(0, 2), (0, 4), (2, 4)]
    """
    spans = set()
    n = _collect_spans(tree, 0, spans)
    if not trivial:
        spans = {s for s in spans if s[1] - s[0] >= 2 and s != (0, n)}
    return sorted(spans)


def bracket_f1(tree, gold, trivial=False):
    r"""Unlabeled bracket precision, recall and F1 of one tree against a gold tree.

    .. math:: P = \frac{|S \cap G|}{|S|}, \quad R = \frac{|S \cap G|}{|G|}, \quad
              F_1 = \frac{2PR}{P + R}

    with S, G the span sets of :func:`tree_spans`.

    Parameters
    ----------
    tree, gold : trees over the same number of tokens.
    trivial : bool, see :func:`tree_spans` (default False: as the paper).

    Returns
    -------
    (precision, recall, f1) floats. Empty sets follow the official code: G = ∅ gives R = 1,
    and S = G = ∅ gives P = 1 (so two-token sentences score 1); F_1 = 0 when P + R = 0.

    Notes
    -----
    Source: ``test`` of ``test_phrase_grammar.py`` (sentence-level F1, averaged over sentences
    for the paper's WSJ numbers); computed exactly here, without the code's 1e-8 in the
    denominators.

    Examples
    --------
    >>> bracket_f1([['a', 'b'], ['c', 'd']], ['a', ['b', ['c', 'd']]])
    (0.5, 0.5, 0.5)
    """
    s, g = tree_spans(tree, trivial), tree_spans(gold, trivial)
    n_s, n_g = _n_leaves(tree), _n_leaves(gold)
    if n_s != n_g:
        raise ValueError(f"tree and gold must cover the same tokens; got {n_s} and {n_g} leaves")
    overlap = len(set(s) & set(g))
    precision = overlap / len(s) if s else (1.0 if not g else 0.0)
    recall = overlap / len(g) if g else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


# ---------------------------------------------------------------------------
# Private helpers (no validation)
# ---------------------------------------------------------------------------


def _build(tokens, d, lo, hi):
    """The greedy tree of tokens[lo:hi]."""
    if hi - lo == 1:
        return tokens[lo]
    # k = argmax_t d_t over [lo, hi), the first index on ties
    k = lo + int(onp.argmax(d[lo:hi]))
    if k == lo:
        return [tokens[k], _build(tokens, d, k + 1, hi)]
    if k == hi - 1:
        return [_build(tokens, d, lo, k), tokens[k]]
    return [_build(tokens, d, lo, k), [tokens[k], _build(tokens, d, k + 1, hi)]]


def _collect_spans(tree, start, spans):
    """Add the span of every node of ``tree`` starting at token ``start``; return its end."""
    if isinstance(tree, (list, tuple)):
        end = start
        for child in tree:
            end = _collect_spans(child, end, spans)
        spans.add((start, end))
    else:
        end = start + 1
        spans.add((start, end))
    return end


def _n_leaves(tree):
    if isinstance(tree, (list, tuple)):
        return sum(_n_leaves(t) for t in tree)
    return 1
