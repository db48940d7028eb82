"""Small input generators shared by the case modules (each takes a numpy Generator)."""
import numpy as onp


def normal(rng, *shape, scale=1.0):
    """Standard normal draws times ``scale``."""
    return scale * rng.standard_normal(shape)


def distinct(rng, *shape, gap=1.0, axis=-1):
    """Scores whose entries along ``axis`` differ by at least ``gap``, so there are no ties
    (m tied maxima each get 1/m from a soft argmax, while a hard argmax takes the first;
    docs/smoothing.md, "softmax ≈ onehot(argmax)").

    Each slice is a random permutation of 0, gap, 2·gap, ... plus a common offset and a
    jitter in [−gap/8, gap/8], so neighbours stay at least 3·gap/4 apart.
    """
    base = onp.argsort(rng.random(shape), axis=axis).astype(float) * gap
    return base + rng.uniform(-gap / 8, gap / 8, size=shape) + rng.normal()


def probs(rng, *shape):
    """Probabilities in (0, 1) along the last axis summing to 1 (a softmax of normals)."""
    z = rng.standard_normal(shape)
    e = onp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def unit(rng, *shape, low=0.02, high=0.98):
    """Uniform values in [low, high], away from the ends of [0, 1]."""
    return rng.uniform(low, high, size=shape)


def binary(rng, *shape, p=0.5):
    """0/1 floats with P(1) = p."""
    return (rng.random(shape) < p).astype(float)
