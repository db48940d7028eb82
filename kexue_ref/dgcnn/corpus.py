r"""A deterministic synthetic corpus for the extractor, with planted (s, p, o) triples.

The post (https://kexue.fm/archives/6671, "task analysis") lists five properties of the LIC2019
data that shaped the model. Every one is planted here, so a trained model is tested on each:

1. s and o need not be words of the segmenter: the given segmentation (which chooses the word
   vectors) sometimes splits an entity or glues it to its neighbour, and two-word entities exist;
2. one s with several (p, o): "QXZ wrote BRT and sang KLM";
3. several s sharing one (p, o): "QXZ and DEF sang KLM";
4. several p for one (s, o): "QXZ wrote and composed BRT";
5. overlapping s and o: "QXZ fans founded BRT" gives (QXZ fans, fan club of, QXZ), o inside s.

Sentences are ASCII text read character by character (no word boundaries are needed by the
model); entities are 2–4 capital letters; a sentence has one or two clauses and sometimes a
distractor entity that is in no triple ("... in PLO"). The generator takes a
``numpy.random.Generator`` (D2), so a seed gives the same corpus on every machine.
"""
import dataclasses
import zlib

import numpy as onp

from kexue_ref._validate import check_int, check_range

__all__ = ["PREDICATES", "ALPHABET", "Sentence", "synthetic_corpus", "char_ids", "word_vector_table",
           "make_batch"]

#: The predicate names; index c is the class c of the object heads.
PREDICATES = ("wrote", "sang", "directed", "founded", "composed", "produced", "fan club of")
#: Trigger words of the verb predicates (the last predicate is signalled by " fans").
_TRIGGERS = PREDICATES[:6]
_FANS = len(PREDICATES) - 1
#: The characters of the synthetic language; id 0 is padding and id 1 unknown (the code's ids).
ALPHABET = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,.;"
_CHAR_ID = {ch: i + 2 for i, ch in enumerate(ALPHABET)}
N_CHARS = len(ALPHABET) + 2


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence: its text, the segmenter's words, and the gold triples with their spans.

    ``spans`` holds ((k1, k2), c, (i, j)): subject span, predicate class and object span, all
    0-based with inclusive ends; ``triples`` the same as text, (s, PREDICATES[c], o);
    ``properties`` names the planted properties (1–5 of the module docstring) it exercises.
    """
    text: str
    words: tuple
    spans: tuple
    properties: frozenset

    @property
    def triples(self):
        return {(self.text[k1:k2 + 1], PREDICATES[c], self.text[i:j + 1]) for (k1, k2), c, (i, j) in self.spans}

    @property
    def subjects(self):
        """The distinct subject spans, sorted."""
        return sorted({s for s, _, _ in self.spans})


def char_ids(text):
    r"""Character ids of a text: the position in :data:`ALPHABET` plus 2 (0 = padding, 1 = unknown).

    .. math:: \mathrm{id}(c) = 2 + \mathrm{ALPHABET.index}(c), \qquad 1 \text{ if } c \notin \mathrm{ALPHABET}

    Parameters
    ----------
    text : str of T characters.

    Returns
    -------
    int64 array (T,), values in [1, N_CHARS).

    Notes
    -----
    Source: ``bojone/kg-2019`` (``char2id.get(c, 1)``, "1 is unk, 0 is padding").

    Examples
    --------
    >>> char_ids(" aB~").tolist()
    [2, 3, 30, 1]
    """
    return onp.array([_CHAR_ID.get(ch, 1) for ch in text], dtype=onp.int64)


def synthetic_corpus(n, rng, two_clauses=0.35, distractor=0.25, resegment=0.3):
    r"""Generate n sentences with planted triples (deterministic given the Generator).

    .. math:: \text{sentence} = \text{clause}\ (\text{"; "}\ \text{clause})^{?}\ \text{"."}, \qquad
              \text{clause} \in \{A, B, C, D, E\}

    with A "S p O", B "S p₁ O₁ and p₂ O₂", C "S₁ and S₂ p O", D "S p₁ and p₂ O", E "X fans p O".

    Parameters
    ----------
    n : int ≥ 1, the number of sentences.
    rng : numpy.random.Generator.
    two_clauses : float in [0, 1], the probability of a second clause (object predictions then
        depend on which subject is asked about).
    distractor : float in [0, 1], the probability that a clause ends with " in X", X an entity
        in no triple.
    resegment : float in [0, 1], the probability that the segmenter merges or splits a word.

    Returns
    -------
    list of :class:`Sentence`.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (the five properties of the data); the corpus itself
    is this library's (the LIC2019 data cannot be shipped).
    """
    n = check_int(n, "n", min_value=1)
    for name, v in (("two_clauses", two_clauses), ("distractor", distractor), ("resegment", resegment)):
        check_range(v, name, 0.0, 1.0, low_open=False, high_open=False)
    return [_sentence(rng, two_clauses, distractor, resegment) for _ in range(n)]


def word_vector_table(rng, n_buckets=256, dim=16):
    r"""A frozen random stand-in for the code's word2vec table; row 0 is the padding word.

    .. math:: V_w \sim \mathcal N(0, I / \mathrm{dim}), \quad w = 1..n_{\text{buckets}}, \qquad V_0 = 0

    Parameters
    ----------
    rng : numpy.random.Generator.
    n_buckets : int, the number of hashed word buckets.
    dim : int Dw, the width of the word vectors.

    Returns
    -------
    float64 array (n_buckets + 1, Dw).

    Notes
    -----
    Source: ``bojone/kg-2019`` (pre-trained Baidu-Baike word2vec, frozen, row 0 zero for padding);
    random here: the words of the synthetic language carry no meaning beyond their identity.
    """
    n_buckets = check_int(n_buckets, "n_buckets", min_value=1)
    dim = check_int(dim, "dim", min_value=1)
    table = rng.normal(0.0, 1.0 / onp.sqrt(dim), size=(n_buckets + 1, dim))
    table[0] = 0.0
    return table


def make_batch(sentences, table):
    r"""Token ids and per-character word vectors of a batch, right-padded with id 0.

    .. math:: V_{bt} = \text{table}[\mathrm{bucket}(\text{word containing character } t)]

    Parameters
    ----------
    sentences : sequence of B :class:`Sentence`.
    table : array (n_buckets + 1, Dw) from :func:`word_vector_table`.

    Returns
    -------
    tokens : int array (B, T), T the longest sentence.
    word_vecs : array (B, T, Dw), zero at padding.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``sent2vec`` (each word's vector repeated once per character).
    Words are hashed into buckets with CRC-32, the same on every machine.
    """
    B = len(sentences)
    T = max(len(s.text) for s in sentences)
    tokens = onp.zeros((B, T), dtype=onp.int64)
    word_vecs = onp.zeros((B, T, table.shape[1]))
    n_buckets = table.shape[0] - 1
    for b, s in enumerate(sentences):
        tokens[b, :len(s.text)] = char_ids(s.text)
        ids = onp.concatenate([[1 + zlib.crc32(w.encode()) % n_buckets] * len(w) for w in s.words])
        word_vecs[b, :len(s.text)] = table[ids]
    return tokens, word_vecs


# ---------------------------------------------------------------------------
# Private: clause templates
# ---------------------------------------------------------------------------

class _Builder:
    """Appends text pieces and records the spans of the entities it writes."""

    def __init__(self, rng, used):
        self.rng, self.used, self.text = rng, used, ""

    def put(self, piece):
        self.text += piece

    def entity(self):
        while True:
            e = "".join(self.rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), size=int(self.rng.integers(2, 5))))
            if e not in self.used:
                self.used.add(e)
                break
        start = len(self.text)
        self.text += e
        return start, len(self.text) - 1


def _two_predicates(rng):
    p1, p2 = rng.choice(len(_TRIGGERS), size=2, replace=False)
    return int(p1), int(p2)


def _clause(b, rng, distractor):
    """Write one clause into the builder; return its (subject, class, object) spans and property tags."""
    kind = rng.choice(["A", "B", "C", "D", "E"], p=[0.25, 0.2, 0.2, 0.2, 0.15])
    spans, props = [], set()
    if kind == "A":                                       # S p O
        p = int(rng.integers(len(_TRIGGERS)))
        s = b.entity(); b.put(f" {_TRIGGERS[p]} "); o = b.entity()
        spans.append((s, p, o))
    elif kind == "B":                                     # S p1 O1 and p2 O2: one s, many (p, o)
        p1, p2 = _two_predicates(rng)
        s = b.entity(); b.put(f" {_TRIGGERS[p1]} "); o1 = b.entity()
        b.put(f" and {_TRIGGERS[p2]} "); o2 = b.entity()
        spans += [(s, p1, o1), (s, p2, o2)]
        props.add(2)
    elif kind == "C":                                     # S1 and S2 p O: shared (p, o)
        p = int(rng.integers(len(_TRIGGERS)))
        s1 = b.entity(); b.put(" and "); s2 = b.entity(); b.put(f" {_TRIGGERS[p]} "); o = b.entity()
        spans += [(s1, p, o), (s2, p, o)]
        props.add(3)
    elif kind == "D":                                     # S p1 and p2 O: several p for one (s, o)
        p1, p2 = _two_predicates(rng)
        s = b.entity(); b.put(f" {_TRIGGERS[p1]} and {_TRIGGERS[p2]} "); o = b.entity()
        spans += [(s, p1, o), (s, p2, o)]
        props.add(4)
    else:                                                 # X fans p O: o = X overlaps s = "X fans"
        p = int(rng.integers(len(_TRIGGERS)))
        x = b.entity(); b.put(" fans")
        s = (x[0], len(b.text) - 1)
        b.put(f" {_TRIGGERS[p]} "); o = b.entity()
        spans += [(s, _FANS, x), (s, p, o)]
        props.update({1, 5})                              # "X fans" is two words
    if rng.random() < distractor:
        b.put(" in "); b.entity()
    return spans, props


def _sentence(rng, two_clauses, distractor, resegment):
    b = _Builder(rng, set())
    spans, props = _clause(b, rng, distractor)
    if rng.random() < two_clauses:
        b.put("; ")
        more, more_props = _clause(b, rng, distractor)
        spans += more
        props |= more_props
    b.put(".")
    words, split_entity = _segment(b.text, spans, rng, resegment)
    if split_entity:
        props.add(1)
    return Sentence(b.text, tuple(words), tuple(spans), frozenset(props))


def _segment(text, spans, rng, resegment):
    """A noisy segmenter: words at spaces and punctuation, then random merges and splits.

    Returns the words (concatenating to ``text``) and whether some entity span is no longer a
    single word.
    """
    words = []
    for ch in text:
        if words and ch.isalpha() and words[-1][-1:].isalpha():
            words[-1] += ch
        else:
            words.append(ch)
    out = []
    for w in words:
        r = rng.random()
        if len(w) >= 3 and r < resegment / 2:
            cut = int(rng.integers(1, len(w)))            # split a word in two
            out += [w[:cut], w[cut:]]
        elif out and out[-1] != " " and w == " " and r < resegment:
            out[-1] += w                                  # glue the space to the previous word
        else:
            out.append(w)
    bounds, pos = set(), 0
    for w in out:
        bounds.add(pos)
        pos += len(w)
    bounds.add(pos)
    ents = {e for s, _, o in spans for e in (s, o)}
    split = any(not (i in bounds and j + 1 in bounds and
                     not any(i < q <= j for q in bounds)) for i, j in ents)
    return out, split
