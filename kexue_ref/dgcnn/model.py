r"""The whole extractor of the post: embeddings → DGCNN → attention → subject and object heads.

Post: https://kexue.fm/archives/6671; exact sizes and wiring from ``bojone/kg-2019``
``kg_without_ds.py`` (the model without distant-supervision features).

Pipeline (one sentence of T characters, batch-first, D = ``dim``)::

    tokens (B, T) ─ char emb ─┐
    word vectors (B, T, Dw) ─ Dense, no bias ─┼─ + position emb ─ ×mask ─ DGCNN stack ─ H (B, T, D)
    H ─ pn1, pn2 = global gates (B, T);  pc = global gate of maxpool(H) (B, P)
    H ─ attention₁ ─ [H | A₁] ─ Conv3 relu ─ ps1, ps2 = sigmoid · pn            (subject heads)
    (k1, k2) ─ 6 rows of H ─ BiGRU / BiLSTM ─ + [E|t−k1| | E|t−k2|] ─ S (B, T, 2D)
    H ─ attention₂ ─ [H | A₂ | S] ─ Conv3 relu ─ po1, po2 = po · sigmoid · pc · pn  (object heads)

Parameters live in a plain dict of arrays (:func:`init_params`), so ``autograd.grad`` of a loss
of the dict returns a dict of gradients. Randomness (initialisation, dropout masks) is explicit.
"""
import dataclasses

import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import check_choice, check_float_array, check_ndim, value_of
from kexue_ref.dgcnn.attention import _attention
from kexue_ref.dgcnn.conv import STACK_12, _check_bool, _stack
from kexue_ref.dgcnn.decode import decode_objects, decode_subjects, spans_to_triples
from kexue_ref.dgcnn.features import _check_span, _subject_features
from kexue_ref.dgcnn.heads import _global_gate, _object_heads, _seq_maxpool, _subject_heads

__all__ = ["DGCNNConfig", "init_params", "encode", "subject_probs", "object_probs", "forward",
           "extract_triples"]


@dataclasses.dataclass(frozen=True)
class DGCNNConfig:
    """Sizes and switches of the extractor (defaults: the author's code, 12 blocks).

    ``n_chars`` counts the character ids including 0 (padding) and 1 (unknown); ``word_dim`` is
    the width of the given (frozen) word vectors; ``dim`` is the code's ``char_size`` (128), the
    width of every hidden layer; attention has ``heads`` × ``head_size`` (8 × 16); ``gate``
    picks the block form (both are equivalent up to :func:`~kexue_ref.dgcnn.flip_gate`);
    ``cell`` the subject encoder ("gru" as the code, "lstm" as the post); ``compat="keras"``
    keeps the attention's padding leak.
    """
    n_chars: int
    word_dim: int
    n_predicates: int = 50
    dim: int = 128
    dilations: tuple = STACK_12
    heads: int = 8
    head_size: int = 16
    maxlen: int = 512
    gate: str = "post"
    cell: str = "gru"
    compat: str | None = None
    embed_dropout: float = 0.25
    gate_dropout: float = 0.1

    def __post_init__(self):
        for name in ("n_chars", "word_dim", "n_predicates", "dim", "heads", "head_size", "maxlen"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"DGCNNConfig.{name} must be a positive int, got {v!r}")
        if self.n_chars < 3:
            raise ValueError(f"DGCNNConfig.n_chars must be >= 3 (0 = padding, 1 = unknown), got {self.n_chars}")
        check_choice(self.gate, "gate", ("post", "keras"))
        check_choice(self.cell, "cell", ("gru", "lstm"))
        check_choice(self.compat, "compat", (None, "keras"))
        object.__setattr__(self, "dilations", tuple(int(r) for r in self.dilations))


def init_params(config, rng, dtype=onp.float64):
    r"""Random initial weights, Keras-style: Glorot for kernels, orthogonal recurrences, zero biases.

    .. math:: W \sim U\Big(\pm\sqrt{6 / (\mathrm{fan_{in}} + \mathrm{fan_{out}})}\Big), \qquad
              E_{\text{char}} \sim U(\pm 0.05), \qquad E_{\text{pos}} = 0

    Parameters
    ----------
    config : DGCNNConfig.
    rng : numpy.random.Generator (the only source of randomness, D2).
    dtype : float dtype of every array.

    Returns
    -------
    dict name → array (see the module docstring for the wiring; shapes in the legend letters).

    Notes
    -----
    Source: ``bojone/kg-2019`` (layer sizes; the position embedding is zero-initialised; the
    attention kernels use ``glorot_normal``); Keras defaults otherwise.
    """
    c = config
    D, P, Dw = c.dim, c.n_predicates, c.word_dim
    HD = c.heads * c.head_size
    L, g = len(c.dilations), 3 if c.cell == "gru" else 4

    def glorot(*shape, k=1):
        fan_in, fan_out = k * shape[-2], k * shape[-1]
        lim = onp.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, size=shape)

    def glorot_normal(n_in, n_out):
        return rng.normal(0.0, onp.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))

    def orthogonal(n, m):
        q, _ = onp.linalg.qr(rng.normal(size=(max(n, m), min(n, m))))
        return q if n >= m else q.T                   # (n, m) with orthonormal rows or columns

    def rnn_bias():
        return onp.zeros((2, 3 * D)) if c.cell == "gru" else onp.concatenate(
            [onp.zeros(D), onp.ones(D), onp.zeros(2 * D)])    # Keras unit_forget_bias

    p = {
        "char_emb": rng.uniform(-0.05, 0.05, size=(c.n_chars, D)),
        "word_proj": glorot(Dw, D),
        "pos_emb": onp.zeros((c.maxlen, D)),
        "enc_w": glorot(L, 3, D, 2 * D, k=3),
        "enc_b": onp.zeros((L, 2 * D)),
    }
    for name in ("pn1", "pn2"):
        p.update({f"{name}_w1": glorot(D, D), f"{name}_b1": onp.zeros(D),
                  f"{name}_w2": glorot(D, 1), f"{name}_b2": onp.zeros(1)})
    p.update({"pc_w1": glorot(D, D), "pc_b1": onp.zeros(D), "pc_w2": glorot(D, P), "pc_b2": onp.zeros(P)})
    for name in ("att1", "att2"):
        p.update({f"{name}_{q}": glorot_normal(D, HD) for q in "qkv"})
    p.update({"s_wc": glorot(3, D + HD, D, k=3), "s_bc": onp.zeros(D),
              "s_w1": glorot(D, 1), "s_b1": onp.zeros(1), "s_w2": glorot(D, 1), "s_b2": onp.zeros(1)})
    for d in "fb":
        p.update({f"rnn_w{d}": glorot(D, g * D), f"rnn_u{d}": onp.concatenate(
            [orthogonal(D, D) for _ in range(g)], axis=1), f"rnn_b{d}": rnn_bias()})
    p.update({"o_wc": glorot(3, D + HD + 2 * D, D, k=3), "o_bc": onp.zeros(D),
              "o_wo": glorot(D, 1), "o_bo": onp.zeros(1), "o_w1": glorot(D, P), "o_b1": onp.zeros(P),
              "o_w2": glorot(D, P), "o_b2": onp.zeros(P)})
    return {k: onp.asarray(v, dtype=dtype) for k, v in p.items()}


def encode(params, tokens, word_vecs, config, embed_keep=None, gate_keep=None):
    r"""Embeddings, the DGCNN encoder, both attentions and the global gates of a batch.

    .. math:: X = \big(E_{\text{char}}[\text{tokens}] + V_{\text{word}} W_{\text{word}} +
              E_{\text{pos}}[t]\big) \odot \mathrm{mask}, \qquad H = \mathrm{DGCNN}(X)

    .. math:: pn^{1,2} = \mathrm{gate}(H), \quad pc = \mathrm{gate}(\max_t H), \quad
              A_{1,2} = \mathrm{Attention}_{1,2}(H)

    Parameters
    ----------
    params : dict from :func:`init_params`.
    tokens : int array (B, T), character ids in [0, n_chars); 0 is padding (mask = tokens > 0).
    word_vecs : array (B, T, Dw), the frozen word vector of the word each character belongs to.
    config : DGCNNConfig.
    embed_keep : bool array (B, T, D) or None, the Dropout(0.25) keep mask of the embedding.
    gate_keep : bool array (L, B, T, D) or None, the gate-logit dropout masks of the blocks.

    Returns
    -------
    dict with "h" (B, T, D), "mask" (B, T), "a1", "a2" (B, T, H·D_h), "pn1", "pn2" (B, T) and
    "pc" (B, P).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (mixed char/word embedding, position embedding, 12
    DGCNN blocks, self attention); ``bojone/kg-2019`` for the sizes and the order of operations.
    """
    c = config
    B, T = _check_tokens(tokens, word_vecs, c)
    mask = onp.asarray(tokens) > 0                                            # (B, T)
    dt = value_of(params["char_emb"]).dtype
    if T > c.maxlen:
        raise ValueError(f"tokens has T = {T} positions, more than maxlen = {c.maxlen}")
    # X = E_char[tokens] + V W_word + E_pos[t]
    # (the word vectors are frozen inputs: plain arrays in the parameters' dtype)
    wv = onp.asarray(value_of(word_vecs), dtype=dt)
    x = (params["char_emb"][onp.asarray(tokens)] + np.matmul(wv, params["word_proj"])
         + params["pos_emb"][:T][None])                                     # (B, T, D)
    if embed_keep is not None:
        keep = _check_bool(embed_keep, "embed_keep", (B, T, c.dim), "(B, T, D)")
        # inverted dropout: x ← x·keep / (1 − rate)
        x = np.where(keep, x / onp.asarray(1 - c.embed_dropout, dt), onp.asarray(0.0, dt))
    if gate_keep is not None:
        gate_keep = _check_bool(gate_keep, "gate_keep", (len(c.dilations), B, T, c.dim), "(L, B, T, D)")
    # H = DGCNN(X ⊙ mask), masked after every block
    h = _stack(x, mask, params["enc_w"], params["enc_b"], c.dilations, c.gate, gate_keep, c.gate_dropout)
    enc = {"h": h, "mask": mask}
    for name in ("pn1", "pn2"):
        # pn = sigmoid(relu(H W₁ + b₁) W₂ + b₂), one value per position
        enc[name] = _global_gate(h, *[params[f"{name}_{k}"] for k in ("w1", "b1", "w2", "b2")])[..., 0]
    # pc = sigmoid(relu(max_t H W₁ + b₁) W₂ + b₂), one value per predicate
    enc["pc"] = _global_gate(_seq_maxpool(h, mask), *[params[f"pc_{k}"] for k in ("w1", "b1", "w2", "b2")])
    for name in ("att1", "att2"):
        enc[name.replace("att", "a")] = _attention(h, mask, params[f"{name}_q"], params[f"{name}_k"],
                                                   params[f"{name}_v"], c.heads, c.compat)
    return enc


def subject_probs(params, enc):
    r"""Subject start/end probabilities (B, T) from an :func:`encode` result.

    .. math:: p^{s1,2}_t = \mathrm{sigmoid}\big(U_t w_{1,2} + b_{1,2}\big)\; pn^{1,2}_t, \qquad
              U = \mathrm{relu}(\mathrm{Conv}_3([H | A_1]))

    Parameters
    ----------
    params : dict from :func:`init_params`.
    enc : dict from :func:`encode`.

    Returns
    -------
    (ps1, ps2), arrays (B, T).

    Notes
    -----
    Source: https://kexue.fm/archives/6671; :func:`kexue_ref.dgcnn.subject_heads`.
    """
    return _subject_heads(enc["h"], enc["a1"], params["s_wc"], params["s_bc"], params["s_w1"], params["s_b1"],
                          params["s_w2"], params["s_b2"], enc["pn1"], enc["pn2"])


def object_probs(params, enc, k1, k2, config):
    r"""Object start/end probabilities (B, T, P) given one subject span per sample.

    .. math:: S = \mathrm{BiRNN}(H_{\mathrm{pos}(k_1, k_2)}) + [E_{|t-k_1|} | E_{|t-k_2|}], \qquad
              p^{o1,2} = po \cdot \mathrm{sigmoid}(\cdot) \cdot pc \cdot pn^{1,2}

    Parameters
    ----------
    params : dict from :func:`init_params`.
    enc : dict from :func:`encode`.
    k1, k2 : int arrays (B,), the subject span of each sample (start, inclusive end).
    config : DGCNNConfig.

    Returns
    -------
    (po1, po2), arrays (B, T, P).

    Notes
    -----
    Source: https://kexue.fm/archives/6671; :func:`kexue_ref.dgcnn.subject_features`,
    :func:`kexue_ref.dgcnn.object_heads`. The code adds the subject vector and the relative
    position embeddings at *every* position, padding included, and the kernel-3 conv of the
    object heads reads the first padded position from the last valid character: a second
    padding leak besides the attention's. By default (``compat=None``) the subject features are
    multiplied by the mask, so a sentence gives the same probabilities alone or in a padded
    batch; ``compat="keras"`` keeps both leaks.
    """
    B, T = enc["mask"].shape
    k1, k2 = _check_span(k1, k2, T, B)
    s = _subject_features(enc["h"], k1, k2, (params["rnn_wf"], params["rnn_uf"], params["rnn_bf"]),
                          (params["rnn_wb"], params["rnn_ub"], params["rnn_bb"]), params["pos_emb"], config.cell)
    if config.compat is None:
        # zero the subject features at padding, like every other input of the conv (see Notes)
        s = s * enc["mask"][..., None]
    return _object_heads(enc["h"], enc["a2"], s, params["o_wc"], params["o_bc"], params["o_wo"], params["o_bo"],
                         params["o_w1"], params["o_b1"], params["o_w2"], params["o_b2"], enc["pc"],
                         enc["pn1"], enc["pn2"])


def forward(params, tokens, word_vecs, k1, k2, config, embed_keep=None, gate_keep=None):
    r"""The training graph: all four probability maps for one sampled subject span per sentence.

    .. math:: (p^{s1}, p^{s2}, p^{o1}, p^{o2}) = f_\theta(\text{tokens}, V, k_1, k_2)

    Parameters
    ----------
    params, tokens, word_vecs, config, embed_keep, gate_keep : as in :func:`encode`.
    k1, k2 : int arrays (B,), the sampled subject span (an explicit input, D2).

    Returns
    -------
    (ps1, ps2, po1, po2, mask): arrays (B, T), (B, T), (B, T, P), (B, T, P) and the bool
    sequence mask (B, T) that the loss needs.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``train_model``.
    """
    enc = encode(params, tokens, word_vecs, config, embed_keep, gate_keep)
    ps1, ps2 = subject_probs(params, enc)
    po1, po2 = object_probs(params, enc, k1, k2, config)
    return ps1, ps2, po1, po2, enc["mask"]


def extract_triples(params, tokens, word_vecs, texts, config, start=0.5, end=0.4, predicates=None):
    r"""Decode every sentence of a batch into a set of (subject, predicate, object) triples.

    .. math:: \hat S = \{(s, p, o):\ s \in \mathrm{decode}(p^{s1}, p^{s2}),\
              (o, p) \in \mathrm{decode}(p^{o1}(s), p^{o2}(s))\}

    Parameters
    ----------
    params, tokens, word_vecs, config : as in :func:`encode` (no dropout).
    texts : sequence of B strings (or sequences), the sentences the spans index.
    start, end : decoding thresholds in (0, 1) (the code: 0.5 and 0.4).
    predicates : sequence of P names, or None (class indices).

    Returns
    -------
    list of B sets of triples.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``extract_items`` (subjects first, then one object pass per
    subject, batched here over all subjects of all sentences); the rule-based repairs of
    ``post_repair.py`` are not part of the model and are left out.
    """
    enc = encode(params, tokens, word_vecs, config)
    ps1, ps2 = subject_probs(params, enc)
    lengths = enc["mask"].sum(axis=1)
    rows, k1, k2 = [], [], []
    for b in range(len(texts)):
        for i, j in decode_subjects(ps1[b, :lengths[b]], ps2[b, :lengths[b]], start, end):
            rows.append(b), k1.append(i), k2.append(j)
    out = [set() for _ in texts]
    if not rows:
        return out
    rows = onp.array(rows)
    # the encoder outputs of each subject's sentence, one row per subject
    sub = {k: v[rows] for k, v in enc.items()}
    po1, po2 = object_probs(params, sub, onp.array(k1), onp.array(k2), config)
    for n, b in enumerate(rows):
        objs = decode_objects(po1[n, :lengths[b]], po2[n, :lengths[b]], start, end)
        out[b].update(spans_to_triples(texts[b], (k1[n], k2[n]), objs, predicates))
    return out


def _check_tokens(tokens, word_vecs, config):
    tok = onp.asarray(tokens)
    if tok.dtype.kind not in "iu":
        raise TypeError(f"tokens must hold integer character ids, got dtype {tok.dtype}")
    B, T = check_ndim(tok, "tokens", 2, "(B, T)")
    if tok.size and (tok.min() < 0 or tok.max() >= config.n_chars):
        raise ValueError(f"tokens must hold ids in [0, n_chars) = [0, {config.n_chars}), "
                         f"got values in [{tok.min()}, {tok.max()}]")
    wv = check_float_array(value_of(word_vecs), "word_vecs")
    if wv.shape != (B, T, config.word_dim):
        raise ValueError(f"word_vecs must have shape (B, T, Dw) = ({B}, {T}, {config.word_dim}), got {wv.shape}")
    return B, T
