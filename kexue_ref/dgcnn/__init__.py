r"""DGCNN + probabilistic-graph triple extraction (https://kexue.fm/archives/6671).

Post: Su Jianlin, "A lightweight information-extraction model based on DGCNN and a probabilistic
graph", 2019-06-03 (English translation in ``rohin-garg/kexue-en``); the DGCNN block is derived in
https://kexue.fm/archives/5409; the model was later published as CasRel (arXiv 1909.03227).
Author code: ``bojone/kg-2019`` (``kg_without_ds.py``).

Modules (one idea each):

* :mod:`~kexue_ref.dgcnn.conv` – dilated 1-D convolution, the gated block (post and code forms),
  the 12/6-block stacks, receptive field;
* :mod:`~kexue_ref.dgcnn.attention` – multi-head self-attention with key mask (D4);
* :mod:`~kexue_ref.dgcnn.rnn` – GRU (the code) and LSTM (the post), bidirectional;
* :mod:`~kexue_ref.dgcnn.heads` – subject/object heads, global gates;
* :mod:`~kexue_ref.dgcnn.features` – subject encoding: span positions, relative distances, BiRNN;
* :mod:`~kexue_ref.dgcnn.losses` – clipped BCE weighted as the code;
* :mod:`~kexue_ref.dgcnn.decode` – thresholds, nearest end, object pairing, set P/R/F1;
* :mod:`~kexue_ref.dgcnn.layouts` – Keras ↔ PyTorch weight layouts;
* :mod:`~kexue_ref.dgcnn.model` – the whole pipeline on a parameter dict;
* :mod:`~kexue_ref.dgcnn.train` – targets, Adam, warm-up, EMA;
* :mod:`~kexue_ref.dgcnn.corpus` – the shipped synthetic corpus.

Shapes (D5): B batch, T characters, D width, P predicates; masks are boolean, True = valid.
Positions are 0-based with inclusive span ends (D6). Nothing mutates its inputs.
"""
from kexue_ref.dgcnn.attention import multihead_attention
from kexue_ref.dgcnn.conv import (STACK_6, STACK_12, dgcnn_block, dgcnn_stack, dilated_conv1d, flip_gate,
                                  fuse_gate_kernels, receptive_field, split_gate_kernel)
from kexue_ref.dgcnn.decode import corpus_prf, decode_objects, decode_subjects, f1_score, set_prf, spans_to_triples
from kexue_ref.dgcnn.features import relative_distances, span_positions, subject_features
from kexue_ref.dgcnn.heads import global_gate, object_heads, seq_maxpool, subject_heads
from kexue_ref.dgcnn.layouts import (conv1d_keras_to_torch, conv1d_torch, conv1d_torch_to_keras,
                                     dense_keras_to_torch, dense_torch_to_keras, gru_keras_to_torch)
from kexue_ref.dgcnn.losses import extraction_loss, masked_bce
from kexue_ref.dgcnn.model import (DGCNNConfig, encode, extract_triples, forward, init_params, object_probs,
                                   subject_probs)
from kexue_ref.dgcnn.rnn import birnn, gru, lstm

__all__ = [
    "dilated_conv1d", "dgcnn_block", "dgcnn_stack", "flip_gate", "fuse_gate_kernels", "split_gate_kernel",
    "receptive_field", "STACK_12", "STACK_6", "multihead_attention", "gru", "lstm", "birnn",
    "span_positions", "relative_distances", "global_gate", "seq_maxpool", "subject_heads", "subject_features",
    "object_heads", "masked_bce", "extraction_loss", "decode_subjects", "decode_objects", "spans_to_triples",
    "set_prf", "corpus_prf", "f1_score", "conv1d_keras_to_torch", "conv1d_torch_to_keras",
    "dense_keras_to_torch", "dense_torch_to_keras", "gru_keras_to_torch", "conv1d_torch", "DGCNNConfig",
    "init_params", "encode", "subject_probs", "object_probs", "forward", "extract_triples",
]
