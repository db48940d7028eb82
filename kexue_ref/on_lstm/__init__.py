r"""ON-LSTM: ordered neurons, master gates, the cell, layers and stacks, and tree induction.

Post: Su Jianlin, "ON-LSTM: expressing hierarchical structure with ordered neurons",
2019-05-28, https://kexue.fm/archives/6621. Paper: Y. Shen, S. Tan, A. Sordoni, A. Courville,
"Ordered Neurons: Integrating Tree Structures into Recurrent Neural Networks", ICLR 2019,
arXiv 1810.09536. Codes: the author's Keras layer ``bojone/on-lstm`` (``on_lstm_keras.py``)
and the official PyTorch code ``yikangshen/Ordered-Neurons`` (``ON_LSTM.py``).

Modules, in the order of the post:

* :mod:`~kexue_ref.on_lstm.update` – the hard partitioned update (two integer levels, two
  cases) and its unified form with master gates;
* :mod:`~kexue_ref.on_lstm.gates` – cumax, the soft master forget and input gates ("su" and
  "paper"), chunks of C neurons per level;
* :mod:`~kexue_ref.on_lstm.cell` – the cell, the layer over time, the stack, DropConnect and
  dropout;
* :mod:`~kexue_ref.on_lstm.layouts` – canonical ("su" = Keras) parameters and the official
  PyTorch layout;
* :mod:`~kexue_ref.on_lstm.distance` – the soft level and the codes' distances;
* :mod:`~kexue_ref.on_lstm.trees` – greedy tree induction, brackets, spans and bracket F1.

Notation (the post's): ``f, i, o`` the LSTM gates, ``c_hat`` the candidate ĉ, ``f_master`` the
master forget gate f̃, ``i_master`` the master input gate ĩ, ``omega`` their overlap ω = f̃ ⊙ ĩ,
``d_f, d_i`` the (hard or soft) levels. Shapes (D5, shape letters in ``docs/conventions.md``):
B batch, T time, D input features, N hidden units, L levels, C chunk size, with N = L·C; neuron
n belongs to level ``n // C`` (each level is C consecutive neurons, as in both public codes).

Conventions: positions and levels are 0-based unless ``base=1`` (D6); a low level is a fine
grain, a high level a coarse one; the master input gate follows the post by default
(``master_input="su"``, the inclusive right-to-left cumsum) and the paper on request
(``master_input="paper"``, the exclusive suffix sum) (D1); dropout and DropConnect masks are
boolean keep-masks given by the caller (D2). Parameters are explicit arrays: the canonical
layout is the post's / Keras code's ("su"): ``{"W": (D, 2L + 4N), "U": (N, 2L + 4N),
"b": (2L + 4N,)}`` with columns ``[f̃ (L) | ĩ (L) | f (N) | i (N) | o (N) | ĉ (N)]``; converters
read and write the official PyTorch layout. Nothing here mutates its inputs; the scans build
lists and ``np.stack`` them, so every differentiable function is traceable by autograd.
"""
# The private helpers are re-exported too: tests and tools reach them as
# ``kexue_ref.on_lstm._step`` etc., as when the post was one module.
from kexue_ref.on_lstm._checks import (  # noqa: F401
    _check_chunk, _check_ends_at_one, _check_levels, _check_states, _checked, _chunk_of, _same_shape_2d,
)
from kexue_ref.on_lstm.cell import (  # noqa: F401
    DROPCONNECT, ONLSTMOutput, ONLSTMStackOutput, _check_dropout_mask, _dropconnect, _per_layer, _prepare, _step,
    on_lstm, on_lstm_cell, on_lstm_stack,
)
from kexue_ref.on_lstm.distance import _distance, _distance_in, distance, distance_in, soft_level  # noqa: F401
from kexue_ref.on_lstm.gates import (  # noqa: F401
    MASTER_INPUTS, _cumulative, _expand, _master_gates, cumax, expand_levels, master_gates,
)
from kexue_ref.on_lstm.layouts import (  # noqa: F401
    GATE_ORDER, LAYOUTS, OFFICIAL_KEYS, _check_shapes, _legend, _levels_from_su, _su_arrays, from_keras,
    from_official, permute_gates, random_params, to_keras, to_official,
)
from kexue_ref.on_lstm.trees import (  # noqa: F401
    _build, _collect_spans, _n_leaves, bracket_f1, build_tree, tree_spans, tree_to_brackets,
)
from kexue_ref.on_lstm.update import _update, cell_update, hard_master_gates, partitioned_update  # noqa: F401

__all__ = [
    "cumax", "master_gates", "expand_levels", "hard_master_gates", "partitioned_update",
    "cell_update", "on_lstm_cell", "on_lstm", "on_lstm_stack", "ONLSTMOutput",
    "ONLSTMStackOutput", "random_params", "permute_gates", "to_official", "from_official",
    "to_keras", "from_keras", "soft_level", "distance", "distance_in", "build_tree",
    "tree_to_brackets", "tree_spans", "bracket_f1",
]

POST = "https://kexue.fm/archives/6621"
