r"""Losses of the extractor: clipped binary cross-entropy on probabilities, weighted as the code.

Post: https://kexue.fm/archives/6671 ("binary cross-entropy ... summed 1:1:1:1"); author code
``bojone/kg-2019`` ``kg_without_ds.py`` (``s1_loss``, ``o1_loss``, ...).

Notation: p a predicted probability, t its 0/1 target, m the (B, T) sequence mask. The subject
terms are per character; the object terms first **sum over the P predicate channels**, so with
equal per-channel losses the object term is P times a subject term.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_float_array, check_range, value_of
from kexue_ref.dgcnn.conv import _check_mask

__all__ = ["masked_bce", "extraction_loss"]

#: Keras' ``K.epsilon()``: probabilities are clipped to [ε, 1 − ε] before the log.
KERAS_EPSILON = 1e-7


def masked_bce(p, t, mask=None, clip=KERAS_EPSILON):
    r"""Binary cross-entropy on probabilities, summed over channels, averaged over valid tokens.

    .. math:: \ell(p, t) = -t \log \bar p - (1 - t) \log(1 - \bar p), \qquad
              \bar p = \mathrm{clip}(p, \varepsilon, 1 - \varepsilon)

    .. math:: L = \frac{\sum_{b,t} m_{bt} \sum_c \ell(p_{btc}, t_{btc})}{\sum_{b,t} m_{bt}}

    Parameters
    ----------
    p : array (B, T) (one channel: the subject heads) or (B, T, P) (the object heads).
    t : array of the same shape, targets in [0, 1].
    mask : bool array (B, T) or None (all valid); at least one valid token.
    clip : float ε in [0, 0.5), Keras' 1e-7 by default; the clip has zero gradient outside
        [ε, 1 − ε], as in Keras.

    Returns
    -------
    0-d array, the loss (the mean over valid tokens of the per-token channel sum).

    Notes
    -----
    Source: ``bojone/kg-2019`` (``K.binary_crossentropy`` then ``K.sum(loss * mask) / K.sum(mask)``;
    the object terms are ``K.sum(..., 2)`` first). The normaliser is the number of valid tokens
    of the whole batch, not a per-sentence mean.

    Examples
    --------
    >>> p = onp.array([[0.5, 0.5, 0.9]]); t = onp.array([[1.0, 0.0, 1.0]])
    >>> round(float(masked_bce(p, t, onp.array([[True, True, False]]))), 6) == round(float(onp.log(2)), 6)
    True
    """
    p = as_float(p, "p")
    pa = check_float_array(p, "p")
    t = as_float(t, "t")
    ta = check_float_array(t, "t")
    if pa.ndim not in (2, 3):
        raise ValueError(f"p must have shape (B, T) or (B, T, P), got {pa.shape}")
    if ta.shape != pa.shape:
        raise ValueError(f"p and t must have the same shape, got {pa.shape} and {ta.shape}")
    for name, arr in (("p", pa), ("t", ta)):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    mask = _check_mask(mask, *pa.shape[:2])
    eps = check_range(clip, "clip", 0.0, 0.5, low_open=False)
    if mask is not None and not mask.any():
        raise ValueError("mask has no valid position: the mean over valid tokens is undefined")
    return _masked_bce(p, t, mask, eps)


def extraction_loss(ps1, ps2, po1, po2, s1, s2, o1, o2, mask=None, clip=KERAS_EPSILON):
    r"""The training loss of the extractor: four masked BCE terms in the ratio 1:1:1:1.

    .. math:: \mathcal L = L(p^{s1}, s^1) + L(p^{s2}, s^2) + L(p^{o1}, o^1) + L(p^{o2}, o^2)

    with L the :func:`masked_bce` (the object terms sum over the P predicates before the mean).

    Parameters
    ----------
    ps1, ps2 : arrays (B, T), subject start/end probabilities.
    po1, po2 : arrays (B, T, P), object start/end probabilities per predicate.
    s1, s2 : arrays (B, T), 0/1 subject start/end targets (every gold subject).
    o1, o2 : arrays (B, T, P), 0/1 object targets for the sampled subject span.
    mask : bool array (B, T) or None.
    clip : float ε, as in :func:`masked_bce`.

    Returns
    -------
    0-d array.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (BCE everywhere, 1:1:1:1; the author found focal loss
    no better); ``bojone/kg-2019`` ``loss = (s1_loss + s2_loss) + (o1_loss + o2_loss)``. The object
    terms are about P times the subject terms: with equal BCE per channel the ratio is exactly P.
    """
    B, T = _shape2(ps1, "ps1")
    for name, arr in (("ps2", ps2), ("s1", s1), ("s2", s2)):
        if _shape2(arr, name) != (B, T):
            raise ValueError(f"{name} must have shape (B, T) = ({B}, {T}) like ps1, got {onp.shape(value_of(arr))}")
    for name, arr in (("po1", po1), ("po2", po2), ("o1", o1), ("o2", o2)):
        shp = onp.shape(value_of(arr))
        if len(shp) != 3 or shp[:2] != (B, T) or shp != onp.shape(value_of(po1)):
            raise ValueError(f"{name} must have shape (B, T, P) with (B, T) = ({B}, {T}) and the P of po1, "
                             f"got {shp}")
    # 𝓛 = L(s1) + L(s2) + L(o1) + L(o2)
    return (masked_bce(ps1, s1, mask, clip) + masked_bce(ps2, s2, mask, clip)
            + masked_bce(po1, o1, mask, clip) + masked_bce(po2, o2, mask, clip))


def _masked_bce(p, t, mask, eps):
    dt = value_of(p).dtype
    lp, lq = _clipped_logs(p, eps, dt)
    # ℓ = −t log p̄ − (1 − t) log(1 − p̄)
    ell = -(t * lp + (1 - t) * lq)
    if value_of(p).ndim == 3:
        # sum over the P predicate channels
        ell = np.sum(ell, axis=-1)                                            # (B, T)
    if mask is None:
        return np.mean(ell)
    m = mask.astype(dt)
    # L = Σ m ℓ / Σ m
    return np.sum(ell * m) / onp.sum(m)


def _clipped_logs(p, eps, dt):
    r"""log p̄ and log(1 − p̄) for p̄ = clip(p, ε, fl(1 − ε)), each from its exact side.

    The upper bound is 1 − ε *rounded to the input's dtype*, as ``K.clip``, ``torch.clamp`` and
    ``jnp.clip`` all compute it (for ε = 1e-7 in float64, 1 − fl(1 − ε) = ε·(1 + 5.8e-10)), so
    a port gets the same loss at p = 1. Writing ε' = 1 − fl(1 − ε) (exact by Sterbenz), each
    half works on the side where its argument is exact:

    * p < ½: log p̄ = log max(p, ε), log(1 − p̄) = log1p(−max(p, ε));
    * p ≥ ½: with q = 1 − p (exact by Sterbenz), 1 − p̄ = max(q, ε'), so
      log(1 − p̄) = log max(q, ε') and log p̄ = log1p(−max(q, ε')).

    The clip keeps Keras' zero gradient where it is active (and at its bounds). Each branch gets
    a harmless stand-in on the other side, so no infinity meets a zero cotangent in ``where``.
    """
    lo = value_of(p) < 0.5
    e, one = onp.asarray(eps, dt), onp.asarray(1.0, dt)
    # ε' = 1 − fl(1 − ε): the distance of the rounded upper bound from 1 (exact)
    e_hi = one - (one - e)
    # p on the low side (¼ elsewhere), q = 1 − p on the high side (¼ elsewhere)
    pl = np.where(lo, p, onp.asarray(0.25, dt))
    q = np.where(lo, onp.asarray(0.25, dt), 1 - p)
    # a = max(p, ε) for p < ½; c = max(1 − p, ε') for p ≥ ½ (the upper bounds never bind)
    a = np.clip(pl, e, one)
    c = np.clip(q, e_hi, one)
    # log p̄ and log(1 − p̄), each from its exact side
    lp = np.where(lo, np.log(a), np.log1p(-c))
    lq = np.where(lo, np.log1p(-a), np.log(c))
    return lp, lq


def _shape2(a, name):
    shp = onp.shape(value_of(a))
    if len(shp) != 2:
        raise ValueError(f"{name} must have shape (B, T), got {shp}")
    return shp
