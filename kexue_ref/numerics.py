"""Public face of the stable primitives (the implementation lives in ``kexue_ref._numerics``).

``from kexue_ref.numerics import logsumexp, softmax, masked_softmax`` gives the functions whose
conventions every topic shares: per-axis max shift, all ``-inf`` slices with no mass (value
``-inf`` / probabilities 0, gradient 0), ``+inf`` and NaN refused. See ``docs/conventions.md``.
"""
from kexue_ref._numerics import (  # noqa: F401
    log_sigmoid,
    log_softmax,
    logsumexp,
    masked_softmax,
    sigmoid,
    softmax,
    softplus,
    stop_gradient,
    tanh,
)

__all__ = ["logsumexp", "softmax", "log_softmax", "sigmoid", "log_sigmoid", "softplus", "tanh",
           "masked_softmax", "stop_gradient"]
