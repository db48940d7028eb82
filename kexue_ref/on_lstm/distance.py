r"""Soft levels and the syntactic distance read off the master gates.

Post: https://kexue.fm/archives/6621, the part that turns the master forget gate back into a
level: with p_f = softmax(a_f), the expected level d_f = Σ_k k p_f(k) = L(1 − mean f̃) + 1
(1-based), and the remark that the paper's eq. (15) is the 0-based value. Both public codes
(``bojone/on-lstm`` ``on_lstm_keras.py``, ``yikangshen/Ordered-Neurons`` ``ON_LSTM.py``) expose
``distance = 1 − mean f̃`` and ``distance_in = mean ĩ``, which the parser of
:mod:`kexue_ref.on_lstm.trees` consumes. See ``docs/on_lstm.md``, "Soft level and distance".
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import check_choice, value_of
from kexue_ref.on_lstm._checks import _check_ends_at_one, _checked


def soft_level(f_master, base=0):
    r"""Soft level of the master forget gate: the expected level under p_f = softmax(a_f).

    .. math:: d_f = \sum_{k} (k + \mathrm{base})\, p_f(k), \qquad p_f(k) = \tilde f_k -
              \tilde f_{k-1}, \qquad d_f = L\,(1 - \overline{\tilde f}) + \mathrm{base}

    Parameters
    ----------
    f_master : array (..., L), a master forget gate at level granularity (last entry 1).
    base : 0 (default) or 1 (the post's 1-based form, D6).

    Returns
    -------
    array (...), in [base, L − 1 + base].

    Notes
    -----
    Source: https://kexue.fm/archives/6621: d_f = Σ_{k=1}^{L} k p_f(k) = L(1 − mean f̃) + 1
    (1-based). The paper's eq. (15), D_m − Σ_k f̃_k, is the 0-based value (the post calls it
    off by one; the difference is the base only). :func:`distance` is d_f / L for base 0.

    Examples
    --------
    >>> from kexue_ref.on_lstm import cumax
    >>> f = cumax(onp.log(onp.array([0.25, 0.25, 0.5])))
    >>> round(float(soft_level(f)), 6), round(float(soft_level(f, base=1)), 6)
    (1.25, 2.25)
    """
    f_master = _checked(f_master, "f_master", min_ndim=1)
    L = value_of(f_master).shape[-1]
    check_choice(base, "base", (0, 1))
    _check_ends_at_one(f_master)
    # p_f(k) = f̃_k − f̃_{k−1}, with f̃_{−1} = 0
    p = f_master - np.concatenate([np.zeros_like(f_master[..., :1]), f_master[..., :-1]], axis=-1)
    k = (onp.arange(L) + base).astype(value_of(f_master).dtype)
    # d_f = Σ_k (k + base) p_f(k)
    return np.sum(k * p, axis=-1)


def distance(f_master):
    r"""The codes' syntactic distance: one minus the mean of the master forget gate.

    .. math:: d = 1 - \frac{1}{L}\sum_{k} \tilde f_k = \frac{d_f^{(0)}}{L}

    Parameters
    ----------
    f_master : array (..., L).

    Returns
    -------
    array (...), in [0, 1 − 1/L] for a cumax.

    Notes
    -----
    Source: ``on_lstm_keras.py`` (``self.distance``) and ``ON_LSTM.py`` (``distance_cforget``);
    the post explains why d_f, not d_i, decides where a constituent starts.
    """
    return _distance(_checked(f_master, "f_master", min_ndim=1))


def distance_in(i_master):
    r"""The codes' second statistic: the mean of the master input gate.

    .. math:: d^{\,in} = \frac{1}{L}\sum_k \tilde i_k

    Parameters
    ----------
    i_master : array (..., L).

    Returns
    -------
    array (...).

    Notes
    -----
    Source: ``on_lstm_keras.py`` (``self.distance_in``), ``ON_LSTM.py`` (``distance_cin``).
    """
    return _distance_in(_checked(i_master, "i_master", min_ndim=1))


# ---------------------------------------------------------------------------
# Private helpers (no validation)
# ---------------------------------------------------------------------------


def _distance(f_master):
    # d = 1 − mean_k f̃_k
    return 1.0 - np.mean(f_master, axis=-1)


def _distance_in(i_master):
    # d_in = mean_k ĩ_k
    return np.mean(i_master, axis=-1)
