r"""The hard partitioned update, its unified form with master gates, and the general cell update.

Post: https://kexue.fm/archives/6621, the part on the partitioned update: two integer levels
d_f (below it the history is forgotten) and d_i (above it the input is not written) split the
neurons into ranges, with the two cases d_f ≤ d_i and d_f > d_i; the post then writes both
cases as one formula with f̃ = cs→(onehot(d_f)), ĩ = cs←(onehot(d_i)) and ω = f̃ ⊙ ĩ, which
stays the update once the one-hots become softmaxes (:mod:`kexue_ref.on_lstm.gates`).

Shapes (D5, ``docs/conventions.md``): c, ĉ, f, i (B, N); master gates (B, L) or (B, N); neuron n
in level ``n // C``. Levels are 0-based unless ``base=1`` (D6). See ``docs/on_lstm.md``,
"The hard partitioned update".
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import check_int, value_of
from kexue_ref.on_lstm._checks import _check_chunk, _check_levels, _same_shape_2d
from kexue_ref.on_lstm.gates import _expand


def hard_master_gates(d_f, d_i, levels, base=0):
    r"""Hard master gates: cumsums of the one-hot levels d_f (history) and d_i (input).

    .. math:: \tilde f = \overrightarrow{\mathrm{cs}}(\mathrm{onehot}(d_f)) = [k \ge d_f],
              \qquad \tilde i = \overleftarrow{\mathrm{cs}}(\mathrm{onehot}(d_i)) = [k \le d_i]

    Parameters
    ----------
    d_f, d_i : int arrays of the same shape (...) (or ints), levels in [base, L − 1 + base].
    levels : int L ≥ 1.
    base : 0 (default) or 1 (the post's 1-based levels, D6).

    Returns
    -------
    (f_master, i_master), float64 arrays (..., L) of 0s and 1s.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified form of the partitioned update).
    """
    L = check_int(levels, "levels", min_value=1)
    df, di = _check_levels(d_f, d_i, L, base)
    k = onp.arange(L)
    # onehot(d) over positions k = 0..L−1
    onehot_f = (k == df[..., None]).astype(onp.float64)  # (..., L)
    onehot_i = (k == di[..., None]).astype(onp.float64)  # (..., L)
    # f̃ = cs→(onehot(d_f)), ĩ = cs←(onehot(d_i))
    return onp.cumsum(onehot_f, axis=-1), onp.cumsum(onehot_i[..., ::-1], axis=-1)[..., ::-1]


def partitioned_update(c_prev, c_hat, f, i, d_f, d_i, *, chunk=1, base=0):
    r"""The post's hard update, case by case, with integer levels d_f and d_i.

    Case d_f ≤ d_i:

    .. math:: c_k = \begin{cases} \hat c_k & k < d_f \\ f_k c_{t-1,k} + i_k \hat c_k &
              d_f \le k \le d_i \\ c_{t-1,k} & k > d_i \end{cases}

    Case d_f > d_i:

    .. math:: c_k = \begin{cases} \hat c_k & k \le d_i \\ 0 & d_i < k < d_f \\
              c_{t-1,k} & k \ge d_f \end{cases}

    Parameters
    ----------
    c_prev, c_hat, f, i : arrays (B, N) of the same shape: c_{t−1}, ĉ_t and the LSTM gates.
    d_f, d_i : int arrays (B,), levels in [base, L − 1 + base] with L = N / C.
    chunk : int C ≥ 1 dividing N (level of neuron n is n // C).
    base : 0 or 1 (D6).

    Returns
    -------
    array (B, N), c_t. It equals :func:`cell_update` with :func:`hard_master_gates`.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the two cases of the partitioned update; in the
    second, the levels strictly between d_i and d_f are left empty, 0).
    """
    c_prev, c_hat, f, i = _same_shape_2d(("c_prev", c_prev), ("c_hat", c_hat), ("f", f), ("i", i))
    B, N = value_of(c_prev).shape
    C = _check_chunk(chunk, N)
    df, di = _check_levels(d_f, d_i, N // C, base)
    if df.shape != (B,):
        raise ValueError(f"d_f and d_i must have shape (B,) = ({B},), got {df.shape}")
    k = onp.arange(N) // C                       # level of each neuron, (N,)
    df, di = df[:, None], di[:, None]            # (B, 1)
    zero = np.zeros_like(c_prev)
    # d_f ≤ d_i: ĉ below d_f, the LSTM update on [d_f, d_i], the history above d_i
    lstm = f * c_prev + i * c_hat
    case1 = np.where(k < df, c_hat, np.where(k <= di, lstm, c_prev))
    # d_f > d_i: ĉ up to d_i, the empty middle (d_i, d_f) is 0, the history from d_f on
    case2 = np.where(k <= di, c_hat, np.where(k < df, zero, c_prev))
    return np.where(df <= di, case1, case2)


def cell_update(c_prev, c_hat, f, i, f_master, i_master, *, chunk=1):
    r"""The unified ON-LSTM cell update with master gates (hard or soft).

    .. math:: \omega = \tilde f \odot \tilde i, \qquad
              c_t = \omega \odot (f_t \odot c_{t-1} + i_t \odot \hat c_t)
              + (\tilde f - \omega) \odot c_{t-1} + (\tilde i - \omega) \odot \hat c_t

    Parameters
    ----------
    c_prev, c_hat, f, i : arrays (B, N) of the same shape.
    f_master, i_master : arrays (B, N), or (B, L) with ``chunk`` = C = N / L.
    chunk : int C ≥ 1; the master gates are expanded by it (1: they are already N wide).

    Returns
    -------
    array (B, N), c_t. With f̃ = ĩ = 1 it is the plain LSTM update f ⊙ c_{t−1} + i ⊙ ĉ.

    Notes
    -----
    Source: https://kexue.fm/archives/6621 (the unified formula, written as in the Keras code);
    the official code writes the same thing as (f ω + f̃ − ω) c_{t−1} + (i ω + ĩ − ω) ĉ.
    """
    c_prev, c_hat, f, i = _same_shape_2d(("c_prev", c_prev), ("c_hat", c_hat), ("f", f), ("i", i))
    B, N = value_of(c_prev).shape
    C = check_int(chunk, "chunk", min_value=1)
    f_master, i_master = _same_shape_2d(("f_master", f_master), ("i_master", i_master))
    if value_of(f_master).shape != (B, N // C) or N % C:
        raise ValueError(f"f_master and i_master must have shape (B, N / C) = ({B}, {N // C}) "
                         f"for c of shape {(B, N)} and chunk={C}, got {value_of(f_master).shape}")
    return _update(c_prev, c_hat, f, i, _expand(f_master, C), _expand(i_master, C))


# ---------------------------------------------------------------------------
# Private helper (no validation)
# ---------------------------------------------------------------------------


def _update(c_prev, c_hat, f, i, f_master, i_master):
    # ω = f̃ ⊙ ĩ
    omega = f_master * i_master
    # c_t = ω ⊙ (f ⊙ c_{t−1} + i ⊙ ĉ) + (f̃ − ω) ⊙ c_{t−1} + (ĩ − ω) ⊙ ĉ
    return omega * (f * c_prev + i * c_hat) + (f_master - omega) * c_prev + (i_master - omega) * c_hat
