r"""Decoding start/end probabilities into spans and triples, and the set-based P/R/F1.

Post: https://kexue.fm/archives/6671 (decoding thresholds, the reported F1); author code
``bojone/kg-2019`` ``extract_items`` and ``Evaluate.evaluate``.

Spans are (start, inclusive end) pairs of 0-based character positions (D6). A triple is
(subject, predicate, object); the metric compares *sets* of triples.
"""
import numpy as onp

from kexue_ref._validate import as_float, check_float_array, check_ndim, check_range, value_of

__all__ = ["decode_subjects", "decode_objects", "set_prf", "corpus_prf", "f1_score", "spans_to_triples"]


def decode_subjects(ps1, ps2, start=0.5, end=0.4):
    r"""Subject spans: each start above ``start`` paired with the nearest end at or after it.

    .. math:: \mathcal S = \{(i, j):\ p^{s1}_i > \theta_1,\ j = \min\{j' \ge i : p^{s2}_{j'} > \theta_2\}\}

    Parameters
    ----------
    ps1, ps2 : arrays (T,), subject start / end probabilities of one sentence.
    start : float θ₁ in (0, 1), the start threshold (the code: 0.5).
    end : float θ₂ in (0, 1), the end threshold (the code: 0.4).

    Returns
    -------
    int array (N, 2), rows (i, j) in increasing i. A start with no end after it is dropped.
    Two starts can share one end (nested subjects); a span may be a single character (i = j).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``extract_items`` (``_k2[_k2 >= i][0]``: the nearest end).

    Examples
    --------
    >>> ps1 = onp.array([0.9, 0.1, 0.8, 0.1, 0.1]); ps2 = onp.array([0.1, 0.1, 0.1, 0.5, 0.1])
    >>> decode_subjects(ps1, ps2).tolist()        # both starts take the end at 3
    [[0, 3], [2, 3]]
    """
    p1, p2 = _probs(ps1, "ps1", 1, "(T,)"), _probs(ps2, "ps2", 1, "(T,)")
    if p1.shape != p2.shape:
        raise ValueError(f"ps1 and ps2 must have the same shape (T,), got {p1.shape} and {p2.shape}")
    th1 = check_range(start, "start", 0.0, 1.0)
    th2 = check_range(end, "end", 0.0, 1.0)
    ends = onp.flatnonzero(p2 > th2)
    spans = []
    for i in onp.flatnonzero(p1 > th1):
        after = ends[ends >= i]
        if after.size:
            # j = the nearest end at or after the start i
            spans.append((i, after[0]))
    return onp.array(spans, dtype=onp.int64).reshape(-1, 2)


def decode_objects(po1, po2, start=0.5, end=0.4):
    r"""Object spans per predicate: each (start, class) paired with the first end of that class.

    .. math:: \mathcal O = \{(i, j, c):\ p^{o1}_{ic} > \theta_1,\
              j = \min\{j' \ge i : p^{o2}_{j'c} > \theta_2\}\}

    Parameters
    ----------
    po1, po2 : arrays (T, P), object start / end probabilities for one (sentence, subject).
    start, end : floats in (0, 1), the thresholds (the code: 0.5 and 0.4).

    Returns
    -------
    int array (N, 3), rows (i, j, c) in the code's order (by i, then c).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``extract_items`` (the double loop over ``np.where(o1 > 0.5)`` and
    ``np.where(o2 > 0.4)`` that breaks at the first end with j ≥ i and the same class). Several
    classes at one (i, j) give several predicates for one (s, o).
    """
    p1, p2 = _probs(po1, "po1", 2, "(T, P)"), _probs(po2, "po2", 2, "(T, P)")
    if p1.shape != p2.shape:
        raise ValueError(f"po1 and po2 must have the same shape (T, P), got {p1.shape} and {p2.shape}")
    th1 = check_range(start, "start", 0.0, 1.0)
    th2 = check_range(end, "end", 0.0, 1.0)
    out = []
    for i, c in zip(*onp.nonzero(p1 > th1)):
        after = onp.flatnonzero(p2[i:, c] > th2)
        if after.size:
            # j = the first end of class c at or after i
            out.append((i, i + after[0], c))
    return onp.array(out, dtype=onp.int64).reshape(-1, 3)


def spans_to_triples(text, subject, objects, predicates=None):
    r"""Turn one subject span and its decoded object rows into (s, p, o) triples of text.

    .. math:: (s, p, o) = (\text{text}[k_1..k_2],\ \text{predicates}[c],\ \text{text}[i..j])

    Parameters
    ----------
    text : str or sequence (T,), the sentence (spans index it).
    subject : (k1, k2), the subject span (inclusive end).
    objects : int array (N, 3) from :func:`decode_objects`.
    predicates : sequence of P names, or None (the class index is the predicate).

    Returns
    -------
    list of tuples (s, p, o); ``s``/``o`` are slices of ``text`` (tuples for non-str input).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``extract_items`` (``text_in[i: j+1]``).
    """
    def cut(i, j):
        piece = text[int(i): int(j) + 1]
        return piece if isinstance(piece, str) else tuple(piece)
    k1, k2 = subject
    return [(cut(k1, k2), int(c) if predicates is None else predicates[int(c)], cut(i, j))
            for i, j, c in onp.asarray(objects).reshape(-1, 3)]


def set_prf(pred, gold):
    r"""Precision, recall and F1 of a predicted set of triples against the gold set.

    .. math:: P = \frac{|\hat S \cap S|}{|\hat S|}, \quad R = \frac{|\hat S \cap S|}{|S|}, \quad
              F_1 = \frac{2 |\hat S \cap S|}{|\hat S| + |S|}

    Parameters
    ----------
    pred, gold : iterables of hashable items (e.g. (s, p, o) tuples), or 2-D arrays whose rows
        are the items. Duplicates count once (sets).

    Returns
    -------
    (precision, recall, f1) as 0-d float64 arrays. An empty prediction has precision 1, an empty
    gold set recall 1, and empty/empty gives F1 = 1 (the code's limits of its 1e-10 counts).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``Evaluate.evaluate`` (counts A = |Ŝ∩S|, B = |Ŝ|, C = |S|, started
    at 1e-10, F1 = 2A/(B + C)). Exact counts here; they differ from the code by O(1e-10).

    Examples
    --------
    >>> p, r, f = set_prf({("a", 0, "b"), ("a", 1, "c")}, {("a", 0, "b"), ("d", 0, "e"), ("f", 2, "g")})
    >>> round(float(p), 4), round(float(r), 4), round(float(f), 4)
    (0.5, 0.3333, 0.4)
    """
    a, b, c = _counts(pred, gold)
    return _prf(a, b, c)


def corpus_prf(preds, golds):
    r"""Micro P/R/F1 over a corpus: the per-sentence set counts summed, then :func:`set_prf`'s formulas.

    .. math:: A = \sum_n |\hat S_n \cap S_n|, \quad B = \sum_n |\hat S_n|, \quad C = \sum_n |S_n|;
              \qquad P = A/B,\ R = A/C,\ F_1 = 2A/(B + C)

    Parameters
    ----------
    preds, golds : sequences of the same length N, one set (or iterable) of triples per sentence.

    Returns
    -------
    (precision, recall, f1), 0-d float64 arrays.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``Evaluate.evaluate`` (the sum over the dev sentences).
    """
    preds, golds = list(preds), list(golds)
    if len(preds) != len(golds):
        raise ValueError(f"preds and golds must have one entry per sentence, got {len(preds)} and {len(golds)}")
    a = b = c = 0
    for p, g in zip(preds, golds):
        ai, bi, ci = _counts(p, g)
        a, b, c = a + ai, b + bi, c + ci
    return _prf(a, b, c)


def f1_score(precision, recall):
    r"""F1 from precision and recall: their harmonic mean.

    .. math:: F_1 = \frac{2 P R}{P + R}

    Parameters
    ----------
    precision, recall : floats (or arrays) in [0, 1], not both 0.

    Returns
    -------
    array of the broadcast shape (0-d for scalars), in the inputs' float dtype.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (test P 0.8939, R 0.8679, F1 0.8807).

    Examples
    --------
    >>> round(float(f1_score(0.8939, 0.8679)), 6)      # the post's numbers: 0.8807
    0.880708
    """
    p, r = as_float(precision, "precision"), as_float(recall, "recall")
    for name, v in (("precision", p), ("recall", r)):
        arr = check_float_array(v, name)
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    if onp.any(value_of(p) + value_of(r) == 0):
        raise ValueError("precision and recall are both 0: F1 is undefined")
    # F1 = 2PR / (P + R)
    return 2 * p * r / (p + r)


def _counts(pred, gold):
    sp, sg = _as_set(pred, "pred"), _as_set(gold, "gold")
    return len(sp & sg), len(sp), len(sg)


def _prf(a, b, c):
    # P = A/B (1 when nothing is predicted), R = A/C (1 when there is no gold), F1 = 2A/(B + C)
    p = a / b if b else 1.0
    r = a / c if c else 1.0
    f = 2 * a / (b + c) if b + c else 1.0
    return onp.asarray(p, onp.float64), onp.asarray(r, onp.float64), onp.asarray(f, onp.float64)


def _as_set(items, name):
    if isinstance(items, onp.ndarray):
        if items.ndim != 2:
            raise ValueError(f"{name} as an array must have shape (N, K) (one row per triple), got {items.shape}")
        return {tuple(row.tolist()) for row in items}
    try:
        return set(items)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of hashable triples (e.g. tuples), "
                        f"got {type(items).__name__} of unhashable items") from None


def _probs(p, name, ndim, legend):
    arr = check_float_array(value_of(p), name)
    check_ndim(arr, name, ndim, legend)
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    return arr
