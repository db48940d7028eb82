"""Registry rows, one module per topic, each with a list ``OPS`` of ``OpSpec``.

``TOPICS`` is the explicit, ordered list the registry reads (no scanning of globals): adding
a topic is adding its module here.
"""
TOPICS = [
    "numerics",
    "smoothing",
    "on_lstm",
    "orthogonality",
    "sparse_attention",
    "reparam",
    "dgcnn",
]
