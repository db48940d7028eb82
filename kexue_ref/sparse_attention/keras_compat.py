r"""``compat="keras"``: the author's Keras layers of ``attention_keras.py`` as implemented.

Post: https://kexue.fm/archives/6853, the code that accompanies it: ``bojone/attention``
``attention_keras.py`` (``AtrousSelfAttention``, ``LocalSelfAttention``, ``SparseSelfAttention``
on top of ``Attention``). Where that code departs from the post (attended zero padding, additive
−1e10 masks, the always-true ``mask_right`` branch, the dilated "local" branch and the doubly
counted keys of ``SparseSelfAttention``) the functions here reproduce the code; each departure is
listed in ``docs/sparse_attention.md`` ("compat='keras'"). They are reached through
``compat="keras"`` of the pattern functions of :mod:`kexue_ref.sparse_attention.patterns`.

Shapes (D5): q, k (B, H, T, D), v (B, H, T, Dv), already projected; ``m`` (B, T) or None.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

from kexue_ref import _numerics as nx
from kexue_ref._validate import value_of
from kexue_ref.sparse_attention.blocked import _from_groups, _pad_time, _to_groups, _valid_tokens
from kexue_ref.sparse_attention.dense import _zero_queries

__all__ = []

KERAS_CONSTANT = 1e10          # the additive mask constant of attention_keras.py


# ---------------------------------------------------------------------------
# compat="keras": the author's attention_keras.py as implemented (docs/sparse_attention.md)
# ---------------------------------------------------------------------------
# Our q, k, v stand for the outputs of the layers' bias-free Dense projections, so the zero
# tokens the layers pad with become q = k = v = 0 (score 0, value 0). Masks are additive:
# S − (1 − mask)·1e10. Departure 3, the always-true condition
# ``(mask_right is not False) or (mask_right is not None)`` of ``Attention``, subtracts 1e10
# from every score when mask_right=False (causal=False); this step is done in float32, as in
# the layer's float32 graph, so that its effect shows in float64 tables too. Its derivative is
# that of the casts it is written with (TensorFlow's and PyTorch's cast gradient): the
# cotangent of the scores is rounded to float32 on the way back (docs/sparse_attention.md,
# "compat='keras'", item 3).

def _keras_additive(S, keep):
    """to_mask(a, mask, 'add'): S − (1 − keep)·1e10, in the dtype of S."""
    return S - nx._const(KERAS_CONSTANT, S) * (1.0 - keep.astype(value_of(S).dtype))


@primitive
def _keras_minus_1e10_float32(S):
    r"""The always-true ``mask_right`` branch with mask_right=False: cast(cast32(S) − 1e10).

    .. math:: \tilde S = \mathrm{fl}_{32}\big(\mathrm{fl}_{32}(S) - 10^{10}\big), \qquad
              \frac{\partial L}{\partial S} = \mathrm{fl}_{32}\Big(\frac{\partial L}
              {\partial \tilde S}\Big)

    The float32 spacing at 1e10 is 1024, so every |S| < 512 rounds to −1e10 exactly and the
    softmax becomes uniform over the keys not removed by an additive mask. The step is a cast
    to float32, a float32 subtraction and a cast back to the working dtype; its VJP is that of
    those casts in TensorFlow (``Cast``'s gradient casts the cotangent to the source dtype) and
    in autograd or PyTorch: the subtraction passes the cotangent unchanged and the casts round
    it to float32 (:func:`_keras_float32_cotangent`). In float32 both roundings are no-ops.

    Parameters
    ----------
    S : array (…), the scores after the additive masks.

    Returns
    -------
    array (…) in the dtype of S.

    Notes
    -----
    Source: ``attention_keras.py`` of ``bojone/attention`` (``Attention.call``, the
    ``mask_right`` branch), https://kexue.fm/archives/6853; the choice of derivative is
    explained in ``docs/sparse_attention.md`` ("compat='keras'", item 3).
    """
    dtype = S.dtype
    # fl32(fl32(S) − 1e10), then back to the working dtype (1e10 is exact in float32)
    return (S.astype(onp.float32) - onp.float32(KERAS_CONSTANT)).astype(dtype)


def _keras_float32_cotangent(g):
    """The cotangent (or tangent) g rounded to float32 and returned in its own dtype."""
    dtype = value_of(g).dtype
    # cast64(cast32(g)): the gradient of cast32 followed by that of cast64
    return g.astype(onp.float32).astype(dtype)


defvjp(_keras_minus_1e10_float32, lambda ans, S: _keras_float32_cotangent)
defjvp(_keras_minus_1e10_float32, lambda t, ans, S: _keras_float32_cotangent(t))


def _atrous_keras(q, k, v, R, causal, m):
    """``AtrousSelfAttention(rate=R, mask_right=causal)`` on projected q, k, v (B, H, T, ·).

    Pads R − T mod R zero tokens (1..R, a whole group when R divides T), regroups by residue,
    runs ``Attention`` in each group and crops. Without ``mask`` the padding is attended.
    """
    B, H, T, D = value_of(q).shape
    pad = R - T % R                                               # 1..R, never 0
    N = (T + pad) // R
    qg, kg, vg = (_to_groups(_pad_time(x, 0, pad), R) for x in (q, k, v))   # (B, H, R, N, ·)
    S = np.einsum("bhrnd,bhrmd->bhrnm", qg, kg) / nx._const(onp.sqrt(D), q)  # (B, H, R, N, N)
    if m is not None:
        valid = _to_groups(_valid_tokens(m, B, T, 0, pad)[:, None, :, None], R)[:, 0, :, :, 0]
        # a − (1 − x_mask)·1e10 on keys
        S = _keras_additive(S, valid[:, None, :, None, :])
    if causal:
        n = onp.arange(N)
        # mask_right=True: a − 1e10 above the diagonal of each group
        S = _keras_additive(S, n[None, :] <= n[:, None])
    else:
        S = _keras_minus_1e10_float32(S)
    # plain softmax: nothing is excluded, masked scores are merely very negative
    O = _from_groups(np.einsum("bhrnm,bhrme->bhrne", nx._softmax(S, -1), vg), T)
    return _zero_queries(O, m)                                    # to_mask(o, q_mask, 'mul')


def _local_keras(q, k, v, W, causal, m):
    """``LocalSelfAttention(neighbors=W, rate=1, mask_right=causal)`` on projected q, k, v.

    Every query reads the 2W + 1 slots i − W .. i + W, zero-padded at the edges; without
    ``mask`` the padding slots (score 0, value 0) take part in the softmax.
    """
    B, H, T, D = value_of(q).shape
    K = 2 * W + 1
    kp, vp = (_pad_time(x, W, W) for x in (k, v))                 # temporal_padding (W, W)
    idx = onp.arange(T)[:, None] + onp.arange(K)[None, :]          # slot u ↔ key i + u − W
    kw, vw = kp[:, :, idx, :], vp[:, :, idx, :]                   # (B, H, T, K, ·)
    S = np.einsum("bhid,bhiud->bhiu", q, kw) / nx._const(onp.sqrt(D), q)     # (B, H, T, K)
    if m is not None:
        # xp_mask: the mask's own windows, zero-padded
        S = _keras_additive(S, _valid_tokens(m, B, T, W, W)[:, idx][:, None])
    if causal:
        # mask_right becomes a (1, K) array whose last W entries are 0: a − 1e10 there
        S = _keras_additive(S, onp.arange(K) <= W)
    else:
        S = _keras_minus_1e10_float32(S)
    O = np.einsum("bhiu,bhiue->bhie", nx._softmax(S, -1), vw)     # (B, H, T, Dv)
    return _zero_queries(O, m)


def _sparse_keras(q, k, v, R, causal, m):
    """``SparseSelfAttention(rate=R, mask_right=causal)`` on projected q, k, v.

    Two score blocks per query t = nR + r (after padding R − T mod R zero tokens):
    (1) the atrous group {n'R + r}; (2) ``extract_seq_patches(kw, 2R − 1, R)``, the *dilated*
    window {t + uR : |u| ≤ R − 1}, zero-padded. They are concatenated into one softmax (shared
    keys, always including t itself, count twice) and the two outputs are added.
    """
    if R < 2:
        raise ValueError("compat='keras' needs rate >= 2: SparseSelfAttention asserts rate != 1 "
                         f"(use SelfAttention), got rate={R}")
    B, H, T, D = value_of(q).shape
    pad = R - T % R
    Tp, N, K = T + pad, (T + pad) // R, 2 * R - 1
    scale = nx._const(onp.sqrt(D), q)
    qp, kp, vp = (_pad_time(x, 0, pad) for x in (q, k, v))        # (B, H, Tp, ·)
    valid = _valid_tokens(m, B, T, 0, pad)                        # (B, Tp)
    # (1) atrous block: S_nn' inside group r
    qg, kg, vg = (_to_groups(x, R) for x in (qp, kp, vp))         # (B, H, R, N, ·)
    a = np.einsum("bhrnd,bhrmd->bhrnm", qg, kg) / scale           # (B, H, R, N, N)
    if m is not None:
        a = _keras_additive(a, _to_groups(valid[:, None, :, None], R)[:, 0, :, :, 0][:, None, :, None, :])
    if causal:
        n = onp.arange(N)
        a = _keras_additive(a, n[None, :] <= n[:, None])
    # (2) dilated window: slot u ↔ key t + (u − (R − 1))·R, edge padding R(R − 1) on each side
    edge = R * (R - 1)
    kpp, vpp = (_pad_time(x, edge, edge) for x in (kp, vp))
    idx = onp.arange(Tp)[:, None] + R * onp.arange(K)[None, :]     # (Tp, K)
    kw, vw = kpp[:, :, idx, :], vpp[:, :, idx, :]                  # (B, H, Tp, K, ·)
    ap = np.einsum("bhtd,bhtud->bhtu", qp, kw) / scale             # (B, H, Tp, K)
    if m is not None:
        ap = _keras_additive(ap, _valid_tokens(valid, B, Tp, edge, edge)[:, idx][:, None])
    if causal:
        # the last R − 1 slots (positive offsets) get − 1e10
        ap = _keras_additive(ap, onp.arange(K) <= R - 1)
    apg = _to_groups(ap, R)                                        # (B, H, R, N, K)
    vwg = np.transpose(np.reshape(vw, (B, H, N, R, K, -1)), (0, 1, 3, 2, 4, 5))  # (B, H, R, N, K, Dv)
    # one softmax over the concatenation [a, ap] (N + 2R − 1 entries per query)
    A = nx._softmax(np.concatenate([a, apg], axis=-1), -1)
    o1 = np.einsum("bhrnm,bhrme->bhrne", A[..., :N], vg)
    o2 = np.einsum("bhrnu,bhrnue->bhrne", A[..., N:], vwg)
    return _zero_queries(_from_groups(o1 + o2, T), m)
