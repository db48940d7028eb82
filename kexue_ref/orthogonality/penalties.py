r"""The classic penalties on the kernel alone: orthonormal (Frobenius, spectral, SRIP), off-diagonal, BigGAN.

Post: https://kexue.fm/archives/7169, its opening section: the usual way to orthogonalise a
kernel is a penalty ‖WᵀW − I‖² (spectral or Frobenius norm), or ‖WᵀW ⊙ (1 − I)‖² when only
orthogonality and not unit norm is wanted; the module of the post is set against these.
Baselines: SRIP (Bansal, Chen & Wang, NeurIPS 2018; ``VITA-Group/Orthogonality-in-CNNs``), the
power-iteration estimate of the spectral norm; BigGAN's ``ortho`` / ``default_ortho`` (Brock,
Donahue & Simonyan, ICLR 2019; ``ajbrock/BigGAN-PyTorch`` ``utils.py``), which add a gradient
to ``.grad`` instead of computing a loss.

Filters are the columns of (D, M) (``filters="columns"``, the post and Keras) or the rows of
(M, D) (``filters="rows"``, PyTorch and BigGAN); kernels of any rank are flattened to that matrix.
Nothing here mutates its inputs; everything is traceable by autograd.
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import check_choice, check_float_array, check_int, value_of
from kexue_ref.orthogonality._common import _array, _const, _nonneg, _sqrt0

__all__ = ["orthonormal_penalty", "offdiag_penalty", "biggan_ortho_grad"]


def orthonormal_penalty(w, norm="fro", *, v0=None, n_iter=1, filters="columns", squared=True):
    r"""The orthonormality penalty :math:`\|W^\top W - I\|^2` (Frobenius or spectral norm).

    .. math:: A = W^\top W - I_M, \qquad
              \|A\|_F^2 = \sum_{ij} A_{ij}^2, \qquad \|A\|_2 = \max_k |\lambda_k(A)|,

    and with a start vector :math:`v_0` (SRIP), ``n_iter`` power-iteration steps
    :math:`v \leftarrow A v / \|A v\|` from :math:`v = v_0`, then :math:`\hat\sigma = \|A v\|`.

    Parameters
    ----------
    w : array of the filters: (D, M), or a Keras kernel (…, C_out), with ``filters="columns"``
        (filters along the last axis); (M, D), or a PyTorch weight (C_out, …), with "rows".
    norm : "fro" (default) or "spectral".
    v0 : None, or array (M,), the power-iteration start vector (non-zero; spectral only). None
        with "spectral" gives the exact norm from the eigenvalues of the symmetric A.
    n_iter : int ≥ 1, power-iteration steps (SRIP uses 1).
    filters : "columns" (default) or "rows".
    squared : bool, True (default, the post's ‖·‖²) or False (the norm itself, as SRIP's Keras
        code for the spectral estimate).

    Returns
    -------
    0-d array, ≥ 0; 0 exactly when the filters are orthonormal. When M > D this is impossible:
    ‖A‖_F² ≥ M − D and ‖A‖₂ ≥ 1 (A has the eigenvalue −1 with multiplicity ≥ M − D), with
    equality for a tight frame (W Wᵀ = I_D).

    Notes
    -----
    Source: https://kexue.fm/archives/7169 ("‖WᵀW − I‖², spectral or Frobenius norm"); SRIP
    (Bansal, Chen & Wang, NeurIPS 2018; ``VITA-Group/Orthogonality-in-CNNs``): σ̂ = ‖A·(Av₀/‖Av₀‖)‖
    with one step from a U[0, 1) vector drawn once (Keras, not squared) or per call (PyTorch,
    squared). v₀ is an input here (D2). σ̂ ≤ ‖A‖₂ for every v₀. If an iterate A v is exactly 0
    the estimate is 0 and its gradient is taken as 0 (SRIP divides 0/0 there). The exact
    spectral norm is differentiable where its largest |λ| is simple (at a tie, autograd's eigh
    VJP returns one subgradient); second derivatives need all eigenvalues distinct.

    Examples
    --------
    >>> w = 2.0 * onp.eye(2)                                   # A = 3 I
    >>> float(orthonormal_penalty(w)), float(orthonormal_penalty(w, "spectral"))
    (18.0, 9.0)
    >>> float(orthonormal_penalty(w, "spectral", v0=onp.array([1.0, 0.0]), squared=False))
    3.0
    """
    check_choice(norm, "norm", ("fro", "spectral"))
    if not isinstance(squared, (bool, onp.bool_)):
        raise TypeError(f"squared must be True or False, got {squared!r}")
    n_iter = check_int(n_iter, "n_iter", min_value=1)
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    dtype = value_of(wm).dtype
    # A = WᵀW − I
    a = np.dot(wm.T, wm) - onp.eye(M, dtype=dtype)                       # (M, M)
    if norm == "fro":
        if v0 is not None:
            raise ValueError("v0 is the power-iteration start vector of norm='spectral'; "
                             "it must be None for norm='fro'")
        # ‖A‖_F² = Σ_ij A_ij²
        sq = np.sum(a ** 2)
        return sq if squared else _sqrt0(sq)
    if v0 is None:
        # ‖A‖₂ = max_k |λ_k(A)|, A symmetric
        lam = np.linalg.eigh(a)[0]                                       # (M,)
        top = lam[int(onp.argmax(onp.abs(value_of(lam))))]
        return top ** 2 if squared else np.abs(top)
    v = _start_vector(v0, M, dtype)                                      # (M,)
    for _ in range(n_iter):
        # v ← A v / ‖A v‖
        u = np.dot(a, v)                                                 # (M,)
        v = u / _nonzero(_sqrt0(np.sum(u ** 2)))
    # σ̂ = ‖A v‖
    sigma_sq = np.sum(np.dot(a, v) ** 2)
    return sigma_sq if squared else _sqrt0(sigma_sq)


def offdiag_penalty(w, filters="columns"):
    r"""The orthogonality-only penalty: squared Frobenius norm of the off-diagonal Gram entries.

    .. math:: R = \big\| W^\top W \odot (1 - I) \big\|_F^2 = \sum_{i \ne j} (w_i^\top w_j)^2

    Parameters
    ----------
    w : array of the filters, as in :func:`orthonormal_penalty`; M ≥ 2.
    filters : "columns" (default) or "rows" (BigGAN's layout, (C_out, …)).

    Returns
    -------
    0-d array, ≥ 0; 0 for any mutually orthogonal filters (of any norms). With M > D filters of
    unit norm it is ≥ M(M − D)/D (the Welch bound), with equality for a unit-norm tight frame.

    Notes
    -----
    Source: https://kexue.fm/archives/7169 (the post writes ⊗ for ⊙); BigGAN's ``ortho``
    (Brock, Donahue & Simonyan, ICLR 2019) is the gradient of (strength/2)·R, see
    :func:`biggan_ortho_grad`. Squares, not signed sums (``kevinzakka/pytorch-goodies`` issue
    #7 summed signed entries, which cancel). Its gradient is 4 W (WᵀW ⊙ (1 − I)) (columns).

    Examples
    --------
    >>> float(offdiag_penalty(onp.array([[1.0, 1.0], [0.0, 1.0]])))   # w_1ᵀw_2 = 1, twice
    2.0
    """
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    if M < 2:
        raise ValueError(f"w must have at least M = 2 filters: the off-diagonal penalty sums "
                         f"over pairs i != j, which are empty for M = {M}")
    # G = WᵀW with the diagonal removed: G ⊙ (1 − I)
    off = np.dot(wm.T, wm) * (1 - onp.eye(M, dtype=value_of(wm).dtype))  # (M, M)
    # ‖G ⊙ (1 − I)‖_F²
    return np.sum(off ** 2)


def biggan_ortho_grad(w, strength=1e-4, mode="ortho", *, filters="rows"):
    r"""The gradient BigGAN adds to ``.grad`` (``ortho`` / ``default_ortho``), with its factor 2.

    .. math:: \Delta = 2s\,\big(W W^\top \odot (1 - I)\big) W \;\; (\texttt{ortho}), \qquad
              \Delta = 2s\,\big(W W^\top - I\big) W \;\; (\texttt{default\_ortho}),

    for W the (M, D) matrix of filters as rows. The true gradients of the squared Frobenius
    norms carry a 4: :math:`\nabla_W \|WW^\top \odot (1-I)\|_F^2 = 4 (WW^\top \odot (1-I)) W`,
    so :math:`\Delta = \nabla_W \tfrac{s}{2}\,\|\cdot\|_F^2`: BigGAN's strength s is the
    coefficient of the loss (s/2)·:func:`offdiag_penalty` (or (s/2)·:func:`orthonormal_penalty`).

    Parameters
    ----------
    w : array, a parameter (C_out, …) with ``filters="rows"`` (default, BigGAN's
        ``w.view(w.shape[0], -1)``), or (D, M) with "columns"; at least 2-D.
    strength : float s ≥ 0 (BigGAN's default 1e-4).
    mode : "ortho" (default, off-diagonal only) or "default" (``default_ortho``, keeps −I).
    filters : "rows" (default) or "columns".

    Returns
    -------
    array, the shape of ``w``: the increment added to ``w.grad`` before the optimizer step.

    Notes
    -----
    Source: ``ajbrock/BigGAN-PyTorch`` ``utils.py`` (``ortho``, ``default_ortho``); Brock et al.,
    "Large Scale GAN Training", ICLR 2019, §3.1. BigGAN skips parameters with fewer than 2 axes;
    here they are refused. A single filter (M = 1) gives 0 for "ortho", as in BigGAN. The sign is
    right (BigGAN-PyTorch#90): the optimizer subtracts ``.grad``.

    Examples
    --------
    >>> biggan_ortho_grad(onp.array([[1.0, 1.0], [0.0, 1.0]]), strength=0.5).tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """
    check_choice(mode, "mode", ("ortho", "default"))
    strength = _nonneg(strength, "strength")
    wm = _filters_matrix(w, filters)                                     # (D, M)
    M = value_of(wm).shape[1]
    eye = onp.eye(M, dtype=value_of(wm).dtype)
    # G = WᵀW in the columns view (= W Wᵀ for BigGAN's rows)
    g = np.dot(wm.T, wm)                                                 # (M, M)
    # ortho: G ⊙ (1 − I); default_ortho: G − I
    a = g * (1 - eye) if mode == "ortho" else g - eye
    # Δ = 2s·A·W_rows, i.e. 2s·W_cols·A in the columns view (A is symmetric)
    delta = 2 * strength * np.dot(wm, a)                                 # (D, M)
    shape = value_of(w).shape
    return np.reshape(delta.T, shape) if filters == "rows" else np.reshape(delta, shape)


def _filters_matrix(w, filters):
    """The (D, M) matrix whose columns are the filters: last axis (columns) or first axis (rows)."""
    check_choice(filters, "filters", ("columns", "rows"))
    w = _array(w, "w")
    shape = value_of(w).shape
    if len(shape) < 2:
        legend = "(D, M) or (…, C_out)" if filters == "columns" else "(M, D) or (C_out, …)"
        raise ValueError(f"w must have at least 2 dimensions, {legend} with filters={filters!r}, "
                         f"got shape {shape}")
    if 0 in shape:
        raise ValueError(f"w must not be empty, got shape {shape}")
    if filters == "columns":
        # filters along the last axis (Keras): (…, M) → (D, M)
        return np.reshape(w, (-1, shape[-1]))
    # filters along the first axis (PyTorch, BigGAN's view(out, −1)): (M, …) → (M, D) → (D, M)
    return np.transpose(np.reshape(w, (shape[0], -1)))


def _start_vector(v0, M, dtype):
    """The power-iteration start vector: (M,), finite, non-zero; a constant in w's dtype."""
    v = value_of(v0)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"v0 must be a real array of shape (M,), got dtype {v.dtype}")
    check_float_array(v, "v0")
    if v.shape != (M,):
        raise ValueError(f"v0 must have shape (M,) = ({M},), one entry per filter, got shape {v.shape}")
    if not onp.any(v != 0):
        raise ValueError("v0 must not be the zero vector: the power iteration would stay at 0")
    return v.astype(dtype)


def _nonzero(n):
    """A divisor: n itself, or 1 where n = 0 (so a zero vector is divided into a zero vector)."""
    return np.where(value_of(n) == 0, _const(1.0, n), n)
