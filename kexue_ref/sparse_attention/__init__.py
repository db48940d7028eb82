r"""Sparse attention: the dense masked oracle, the post's patterns, its blocked forms, the Keras quirks.

Post: Su Jianlin, "Born to save: from standard attention to sparse attention" (为节约而生：从标准
Attention到稀疏Attention), 2019-07-27, https://kexue.fm/archives/6853. Author's code:
``bojone/attention`` ``attention_keras.py``. Paper: Child, Gray, Radford, Sutskever,
"Generating Long Sequences with Sparse Transformers", arXiv 1904.10509.

Notation: Q, K, V the query, key and value tensors; S = QKᵀ/√D the scores; A the boolean
allowed-mask (True = may attend, decision D4); P the attention weights; O = PV the output.
The post's k (rate and window) is R for the atrous/sparse rate and W for the local half-window.

Shapes (D5): q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), output (B, H, Tq, Dv);
the patterns are self-attention, Tq = Tk = T. A sequence mask ``mask`` (B, T) is True for valid
tokens: it removes padded keys *and* sets padded query rows to 0.

Modules (one section of the post each):

* :mod:`~kexue_ref.sparse_attention.dense` – "Attention": :func:`attention`, the specification
  (a dense T × T computation with a boolean mask) and the checks every form shares;
* :mod:`~kexue_ref.sparse_attention.patterns` – "Atrous / Local / Sparse Self Attention":
  :func:`atrous_attention`, :func:`local_attention`, :func:`sparse_attention`, the oracle called
  with a predicate mask from :mod:`kexue_ref._masks`;
* :mod:`~kexue_ref.sparse_attention.blocked` – the post's second, memory-saving forms
  (regrouping, window extraction, the sparse union merged by log-sum-exps; no T × T array),
  tested equal to the oracle;
* :mod:`~kexue_ref.sparse_attention.keras_compat` – ``compat="keras"``: the author's Keras code
  where it departs from the post (``docs/sparse_attention.md``, "compat='keras'");
* :mod:`~kexue_ref.sparse_attention.indexed` – :func:`indexed_attention`, any pattern given as
  per-query key lists.

Levels: the dense oracle is the specification, the blocked forms are
the post's readable second forms, and the fast numba twins are separate
(``kexue_ref.kernels.sparse_attention``). Nothing here mutates its inputs; every function is
traceable by autograd, keeps float32 as float32 and never returns NaN for valid input.
"""
from kexue_ref._masks import (  # noqa: F401  (the pattern predicates, re-exported)
    atrous_mask, causal_mask, key_index_from_mask, layout_to_mask, local_mask, mask_to_layout,
    openai_fixed_layout, openai_local_mask, sparse_mask, strided_mask,
)
from kexue_ref.sparse_attention.blocked import (atrous_attention_blocked, local_attention_blocked,
                                                sparse_attention_blocked)
from kexue_ref.sparse_attention.dense import attention
# _check_key_index: the key-list checks, also imported by the numba twin (kexue_ref.kernels)
from kexue_ref.sparse_attention.indexed import _check_key_index, indexed_attention  # noqa: F401
from kexue_ref.sparse_attention.keras_compat import KERAS_CONSTANT  # noqa: F401
from kexue_ref.sparse_attention.patterns import atrous_attention, local_attention, sparse_attention

__all__ = ["attention", "atrous_attention", "local_attention", "sparse_attention",
           "indexed_attention", "atrous_attention_blocked", "local_attention_blocked",
           "sparse_attention_blocked",
           # pattern predicates (kexue_ref._masks)
           "causal_mask", "atrous_mask", "local_mask", "sparse_mask", "strided_mask",
           "openai_local_mask", "openai_fixed_layout", "mask_to_layout", "layout_to_mask",
           "key_index_from_mask"]

POST = "https://kexue.fm/archives/6853"
