r"""The soft master gates: cumax, the master forget and input gates, and chunks of levels.

Post: https://kexue.fm/archives/6621, the part that replaces the one-hot levels of the
partitioned update by softmaxes: f̃ = cs→(softmax(·)) (the "cumax" of the paper), ĩ =
cs←(softmax(·)), and the simplification that shares each level among C neurons (N = L·C).
Paper: Shen et al., "Ordered Neurons", ICLR 2019 (arXiv 1810.09536), the cumax activation and
the master gates; official code ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py`` (``cumsoftmax``).

Notation: ``a_f, a_i`` the master-gate logits (..., L); p = softmax(a); cs→ / cs← the
left-to-right / right-to-left cumulative sums. Conventions: the master input gate follows the
post by default (``master_input="su"``) and the paper on request (``"paper"``) (D1,
``docs/conventions.md``); ``docs/on_lstm.md`` ("The soft master gates: cumax") explains the
two-sided cumulative sums that keep the gates accurate near 1, and "Chunks" the order of neurons.
"""
import autograd.numpy as np
import numpy as onp  # noqa: F401 (the examples use it)

from kexue_ref import _numerics as nx
from kexue_ref._validate import check_axis, check_choice, check_int, value_of
from kexue_ref.on_lstm._checks import _checked

MASTER_INPUTS = ("su", "paper")


def cumax(a, axis=-1):
    r"""Cumulative softmax: the left-to-right cumsum of the softmax (the soft master forget gate).

    .. math:: \mathrm{cumax}(a) = \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a)), \qquad
              \mathrm{cumax}(a)_k = \sum_{j \le k} \mathrm{softmax}(a)_j

    Parameters
    ----------
    a : array (..., L, ...), finite logits over the levels.
    axis : int, the level axis.

    Returns
    -------
    array, the shape of ``a``: non-decreasing along ``axis`` (to rounding), in [0, 1], last
    entry exactly 1. Entries whose partial sum is below 1/2 are the prefix sums, the others
    1 − Σ_{j > k} softmax(a)_j: a plain cumsum of many terms drifts by several ulp near 1
    (docs/on_lstm.md, "Master gates").

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (f̃ = cs→(softmax(·)), the soft version of
    cs→(onehot(d_f))); the paper's cumax, ``cumsoftmax`` in the official code.

    Examples
    --------
    >>> cumax(onp.log(onp.array([0.25, 0.25, 0.5]))).round(6).tolist()
    [0.25, 0.5, 1.0]
    """
    a = _checked(a, "a")
    axis = check_axis(a, axis, "a")
    # f̃ = cs→(softmax(a)), each entry from the side whose partial sum is below 1/2
    p = np.moveaxis(nx._softmax(a, axis), axis, -1)
    return np.moveaxis(_cumulative(p), -1, axis)


def master_gates(a_f, a_i, *, master_input="su", chunk=1):
    r"""The master forget gate f̃ and the master input gate ĩ from their logits.

    .. math:: \tilde f = \overrightarrow{\mathrm{cs}}(\mathrm{softmax}(a_f)), \qquad
              \tilde i^{\,\mathrm{su}}_k = \sum_{j \ge k} \mathrm{softmax}(a_i)_j, \qquad
              \tilde i^{\,\mathrm{paper}}_k = \sum_{j > k} \mathrm{softmax}(a_i)_j
              = 1 - \mathrm{cumax}(a_i)_k

    Parameters
    ----------
    a_f, a_i : arrays (..., L) of the same shape, the master-gate logits.
    master_input : "su" (default, the post: the inclusive right-to-left cumsum, ĩ_0 = 1, as in
        the Keras code) or "paper" (the paper and the official code: 1 − cumax, ĩ_{L−1} = 0).
    chunk : int C ≥ 1; with C > 1 each level is repeated C times (:func:`expand_levels`).

    Returns
    -------
    (f_master, i_master), arrays (..., L·C).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("ĩ = cs←(softmax(·))", chosen "for symmetry"; the
    post says the two forms usually make no difference); the paper's master gates. The two master
    input gates differ by p_k at every level: paper ĩ_k = su ĩ_{k+1}. ``"paper"`` is computed
    as the exclusive suffix sum itself, not as 1 − cumsum, so high levels keep their precision
    and the last entry is exactly 0 (``1 − cumsum`` can leave 1e-16 there;
    ``docs/on_lstm.md``, "The soft master gates: cumax").

    Examples
    --------
    >>> a = onp.log(onp.array([0.5, 0.25, 0.25]))
    >>> [g.round(6).tolist() for g in master_gates(a, a)]
    [[0.5, 0.75, 1.0], [1.0, 0.5, 0.25]]
    >>> master_gates(a, a, master_input="paper")[1].round(6).tolist()
    [0.5, 0.25, 0.0]
    """
    a_f = _checked(a_f, "a_f", min_ndim=1)
    a_i = _checked(a_i, "a_i", min_ndim=1)
    if value_of(a_f).shape != value_of(a_i).shape or value_of(a_f).shape[-1] == 0:
        raise ValueError(f"a_f and a_i must have the same shape (..., L) with L >= 1, got "
                         f"{value_of(a_f).shape} and {value_of(a_i).shape}")
    check_choice(master_input, "master_input", MASTER_INPUTS)
    chunk = check_int(chunk, "chunk", min_value=1)
    f_master, i_master = _master_gates(a_f, a_i, master_input)
    return _expand(f_master, chunk), _expand(i_master, chunk)


def expand_levels(g, chunk):
    r"""Expand a gate over L levels to N = L·C neurons: each entry repeated C times in a row.

    .. math:: g^{\mathrm{exp}}_{n} = g_{\lfloor n / C \rfloor}, \qquad n = 0, \dots, LC - 1

    Parameters
    ----------
    g : array (..., L).
    chunk : int C ≥ 1.

    Returns
    -------
    array (..., L·C), ``np.repeat(g, C, axis=-1)`` (not ``np.tile``).

    Notes
    -----
    Source: https://kexue.fm/archives/6621 ("repeat each level C times"); the Keras code
    broadcasts over a (B, L, C) view, the official code over (B, L, C) chunks; both put neuron
    ``level·C + j`` in level ``level``.

    Examples
    --------
    >>> expand_levels(onp.array([0.1, 0.9]), 3).tolist()
    [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]
    """
    g = _checked(g, "g", min_ndim=1)
    return _expand(g, check_int(chunk, "chunk", min_value=1))


# ---------------------------------------------------------------------------
# Private helpers (no validation)
# ---------------------------------------------------------------------------


def _expand(g, C):
    # each level repeated C times in a row: (..., L) → (..., L·C). The axis is passed as a
    # non-negative number: autograd 1.9.1's VJP of np.repeat is wrong for axis=-1.
    return g if C == 1 else np.repeat(g, C, axis=np.ndim(g) - 1)


def _cumulative(p, complement=False):
    r"""cs→(p)_k = Σ_{j ≤ k} p_j along the last axis of a probability vector p (Σ_j p_j = 1).

    Each entry comes from the side whose plain partial sum is below 1/2: the prefix sum as it
    is, or 1 − Σ_{j > k} p_j. A long cumsum that climbs to 1 gathers a rounding error of
    several ulp(1) (4 ulp at 115 levels in a table case); 1 − (a sum below 1/2) stays within
    about one. The last entry is exactly 1. Both branches have the same derivative on the
    simplex; their gradients in p differ by a constant vector, which the softmax's VJP removes.
    With ``complement=True`` it also returns 1 − cs→(p), from the same two sums (the suffix
    where it is the smaller side), without the cancellation of 1 − cs→(p) near 1.
    """
    zero = np.zeros_like(p[..., :1])
    # prefix_k = Σ_{j ≤ k} p_j and suffix_k = Σ_{j > k} p_j, each a plain partial sum
    prefix = np.cumsum(p, axis=-1)
    suffix = np.concatenate([np.cumsum(p[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], axis=-1)
    # the prefix where it is below 1/2, else 1 − the suffix
    low = prefix < 0.5
    cs = np.where(low, prefix, 1.0 - suffix)
    return (cs, np.where(low, 1.0 - prefix, suffix)) if complement else cs


def _master_gates(a_f, a_i, master_input, with_distance=False):
    # f̃ = cs→(softmax(a_f)), and 1 − f̃ without cancellation
    f_master, f_rest = _cumulative(nx._softmax(a_f, a_f.ndim - 1), complement=True)
    # ĩ_k = Σ_{j ≥ k} p_j: the cumulative sums of the reversed levels, reversed back (ĩ_0 = 1)
    suffix = _cumulative(nx._softmax(a_i, a_i.ndim - 1)[..., ::-1])[..., ::-1]
    if master_input == "paper":
        # paper: ĩ_k = Σ_{j > k} p_j = su ĩ_{k+1}, and ĩ_{L−1} = 0 exactly
        suffix = np.concatenate([suffix[..., 1:], np.zeros_like(suffix[..., :1])], axis=-1)
    if not with_distance:
        return f_master, suffix
    # d = 1 − mean_k f̃_k = mean_k (1 − f̃_k): no cancellation when f̃ is close to 1
    return f_master, suffix, np.mean(f_rest, axis=-1)
