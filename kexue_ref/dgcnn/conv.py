r"""Dilated 1-D convolution, the gated (DGCNN) block in the post's and the code's forms, the stack.

Post: https://kexue.fm/archives/6671 (the encoder), block derived in https://kexue.fm/archives/5409.
Author code: ``bojone/kg-2019`` ``kg_without_ds.py`` (``dilated_gated_conv1d``).

Notation: X the input sequence (B, T, D); Conv₁ the value convolution, Conv₂ the gate
convolution, σ = sigmoid(Conv₂(X)); r the dilation. A *fused kernel* is the Keras layout
(k, D, 2D) whose output columns are ``[gate | value]`` (the author's split order).
Nothing here mutates its inputs; every function is traceable by autograd and keeps float32.
"""
import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive

from kexue_ref._numerics import _sigmoid
from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, check_ndim, value_of

__all__ = ["dilated_conv1d", "dgcnn_block", "dgcnn_stack", "flip_gate", "fuse_gate_kernels",
           "split_gate_kernel", "receptive_field", "STACK_12", "STACK_6"]

POST = "https://kexue.fm/archives/6671"

#: Dilations of the post's 12-block encoder and of its 6-block light variant.
STACK_12 = (1, 2, 5, 1, 2, 5, 1, 2, 5, 1, 1, 1)
STACK_6 = (1, 2, 5, 1, 2, 5)

GATES = ("post", "keras")


def dilated_conv1d(x, w, b=None, dilation=1):
    r"""Dilated 1-D convolution with 'same' zero padding (a cross-correlation, as in Keras).

    .. math:: y_{t} = b + \sum_{j=0}^{k-1} x_{t + j r - \ell}\, W_j, \qquad
              \ell = \lfloor (k - 1) r / 2 \rfloor, \quad x_{s} = 0 \text{ outside } [0, T)

    For k = 3 the taps are x_{t−r}, x_t, x_{t+r}: kernel row 0 multiplies x_{t−r}. For even k
    the left padding ℓ depends on r: k = 2, r = 3 reads x_{t−1}, x_{t+2}.

    Parameters
    ----------
    x : array (B, T, D_in).
    w : array (k, D_in, D_out), the Keras ``Conv1D`` kernel layout (PyTorch's is (D_out, D_in, k),
        see :func:`kexue_ref.dgcnn.conv1d_keras_to_torch`).
    b : array (D_out,) or None (no bias).
    dilation : int r ≥ 1.

    Returns
    -------
    array (B, T, D_out).

    Notes
    -----
    Source: https://kexue.fm/archives/5409 (dilated convolution), author code ``Conv1D(...,
    padding='same', dilation_rate=r)``. 'same' pads (k − 1)·r zeros in total, ⌊·/2⌋ on the left
    and the rest on the right, as TensorFlow does; that is symmetric for odd k and puts the
    extra zero on the right for even k (a PyTorch port with ``padding=(k // 2)·r`` matches only
    for odd k).

    Examples
    --------
    >>> x = onp.arange(1.0, 6.0).reshape(1, 5, 1)           # 1 2 3 4 5
    >>> w = onp.array([1.0, 0.0, 0.0]).reshape(3, 1, 1)     # picks x_{t - r}
    >>> dilated_conv1d(x, w, dilation=2)[0, :, 0].tolist()
    [0.0, 0.0, 1.0, 2.0, 3.0]
    """
    x, w, b = _check_conv(x, w, b)
    r = check_int(dilation, "dilation", min_value=1)
    return _conv(x, w, b, r)


def dgcnn_block(x, mask, w, b, gate_keep=None, *, dilation=1, gate="post", rate=0.1):
    r"""One gated dilated residual block (DGCNN), in the post's form or the author's code form.

    .. math:: \text{post:}\quad Y = X \odot (1 - \sigma) + \mathrm{Conv}_1(X) \odot \sigma,
              \qquad \sigma = \mathrm{sigmoid}(\mathrm{Conv}_2(X))

    .. math:: \text{keras:}\quad Y = G \odot X + (1 - G) \odot c, \qquad
              [g \,|\, c] = \mathrm{Conv}(X), \quad G = \mathrm{sigmoid}(g)

    then ``Y ← Y ⊙ mask``. The two forms agree when the gate logits are negated (G = 1 − σ
    ⇔ g = −Conv₂(X)); :func:`flip_gate` converts a fused kernel between them.

    Parameters
    ----------
    x : array (B, T, D).
    mask : bool array (B, T), True at valid tokens, or None (all valid).
    w : array (k, D, 2D), the fused kernel, output columns ``[gate | value]``: in the post form
        the gate part is Conv₂ and the value part Conv₁; in the keras form they are g and c.
    b : array (2D,), the fused bias, same split.
    gate_keep : bool array (B, T, D) or None. The code's training-time dropout on the *gate
        logits*: kept logits are divided by 1 − rate, dropped ones become 0 (gate 0.5).
        None means inference (no dropout). The randomness is this explicit mask (D2).
    dilation : int r ≥ 1 (keyword-only, like ``gate`` and ``rate``).
    gate : "post" (default, the post's formula, D1) or "keras" (the author's code: the gate
        multiplies the identity branch).
    rate : float in [0, 1), the dropout rate that sets the 1/(1 − rate) rescaling (code: 0.1).

    Returns
    -------
    array (B, T, D), zero at padded positions.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 ("DGCNN"), https://kexue.fm/archives/5409 (the block
    and its residual reading Y = X + (Conv₁(X) − X) ⊙ σ); ``bojone/kg-2019``
    ``dilated_gated_conv1d`` for the keras form, the [gate, value] split and the gate dropout.
    The block multiplies its *output* by the mask; :func:`dgcnn_stack` also masks its input, as
    the code masks the embedding before the first block.

    Examples
    --------
    >>> x = onp.ones((1, 2, 1)); w = onp.zeros((3, 1, 2)); b = onp.array([0.0, 3.0])
    >>> dgcnn_block(x, None, w, b)[0, :, 0].tolist()       # σ = 0.5: (1 + 3) / 2
    [2.0, 2.0]
    """
    B, T, D = value_of(_check_x(x)).shape
    if value_of(w).ndim != 3 or value_of(w).shape[1:] != (D, 2 * D):
        raise ValueError(f"w must have shape (k, D, 2D) = (k, {D}, {2 * D}) for x with D = {D}, "
                         f"got {value_of(w).shape}")
    x, w, b = _check_conv(x, w, b, bias_required=True)
    r = check_int(dilation, "dilation", min_value=1)
    check_choice(gate, "gate", GATES)
    mask = _check_mask(mask, B, T)
    rate = _check_rate(rate)
    if gate_keep is not None:
        gate_keep = _check_bool(gate_keep, "gate_keep", (B, T, D), "(B, T, D)")
    return _block(x, mask, w, b, r, gate, gate_keep, rate)


def dgcnn_stack(x, mask, w, b, gate_keep=None, *, dilations=STACK_12, gate="post", rate=0.1):
    r"""The DGCNN encoder: masked input, then one gated block per dilation, masking after each.

    .. math:: H^{(0)} = X \odot \mathrm{mask}, \qquad
              H^{(l)} = \mathrm{Block}_{r_l}(H^{(l-1)}) \odot \mathrm{mask}, \quad l = 1..L

    Parameters
    ----------
    x : array (B, T, D).
    mask : bool array (B, T) or None.
    w : array (L, k, D, 2D), the fused kernels of the L blocks (see :func:`dgcnn_block`).
    b : array (L, 2D).
    gate_keep : bool array (L, B, T, D) or None, one gate-dropout mask per block.
    dilations : sequence of L ints; :data:`STACK_12` = (1,2,5,1,2,5,1,2,5,1,1,1) (the post) or
        :data:`STACK_6` = (1,2,5,1,2,5) (the light variant).
    gate : "post" or "keras", as in :func:`dgcnn_block`.
    rate : float, the gate dropout rate.

    Returns
    -------
    array (B, T, D). Valid positions do not depend on right-padding (inputs or length).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (12 blocks, light variant 6 blocks); the receptive
    field is 1 + (k − 1)·Σr = 55 (33 for the light variant), :func:`receptive_field`.
    """
    x = _check_x(x)
    B, T, D = value_of(x).shape
    dilations = tuple(check_int(r, "dilations[i]", min_value=1) for r in dilations)
    L = len(dilations)
    if L == 0:
        raise ValueError("dilations must name at least one block")
    w = as_float(w, "w")
    check_float_array(w, "w")
    b = as_float(b, "b")
    check_float_array(b, "b")
    if value_of(w).ndim != 4 or value_of(w).shape[0] != L or value_of(w).shape[2:] != (D, 2 * D):
        raise ValueError(f"w must have shape (L, k, D, 2D) = ({L}, k, {D}, {2 * D}), got {value_of(w).shape}")
    if value_of(b).shape != (L, 2 * D):
        raise ValueError(f"b must have shape (L, 2D) = ({L}, {2 * D}), got {value_of(b).shape}")
    check_choice(gate, "gate", GATES)
    mask = _check_mask(mask, B, T)
    rate = _check_rate(rate)
    if gate_keep is not None:
        gate_keep = _check_bool(gate_keep, "gate_keep", (L, B, T, D), "(L, B, T, D)")
    return _stack(x, mask, w, b, dilations, gate, gate_keep, rate)


def flip_gate(w, b):
    r"""Convert a fused kernel between the post form and the keras form (negate the gate logits).

    .. math:: G = \mathrm{sigmoid}(g) = 1 - \mathrm{sigmoid}(-g) = 1 - \sigma
              \quad\Longrightarrow\quad W_{\text{gate}} \mapsto -W_{\text{gate}},\;
              b_{\text{gate}} \mapsto -b_{\text{gate}}

    Parameters
    ----------
    w : array (..., k, D, 2D), fused kernel(s), output columns ``[gate | value]``.
    b : array (..., 2D), fused bias(es).

    Returns
    -------
    (w', b'), the same shapes, gate half negated, value half unchanged. The map is its own
    inverse; ``dgcnn_block(x, m, w, b, gate="post") == dgcnn_block(x, m, *flip_gate(w, b),
    gate="keras")``, also under the same ``gate_keep`` mask (dropout commutes with negation).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (the post's gate σ on the convolution branch) against
    ``bojone/kg-2019`` ``dilated_gated_conv1d`` (its gate G on the identity branch, so G = 1 − σ);
    ``docs/dgcnn.md`` §3.
    """
    w = as_float(w, "w")
    b = as_float(b, "b")
    D2 = value_of(w).shape[-1]
    if D2 % 2 or value_of(b).shape[-1] != D2:
        raise ValueError(f"w and b must end in an even fused axis 2D of equal length, got {value_of(w).shape} "
                         f"and {value_of(b).shape}")
    # s = (−1, …, −1 | +1, …, +1): negate the gate columns only
    s = onp.concatenate([-onp.ones(D2 // 2), onp.ones(D2 // 2)]).astype(value_of(w).dtype)
    return w * s, b * s


def fuse_gate_kernels(w_gate, b_gate, w_value, b_value):
    r"""Fuse separate gate and value convolutions into the (k, D, 2D) ``[gate | value]`` kernel.

    .. math:: W = [\,W_{\text{gate}} \,|\, W_{\text{value}}\,], \qquad b = [\,b_{\text{gate}} \,|\, b_{\text{value}}\,]

    Parameters
    ----------
    w_gate, w_value : arrays (k, D, D) (Conv₂ and Conv₁ of the post form).
    b_gate, b_value : arrays (D,).

    Returns
    -------
    (w, b) with shapes (k, D, 2D) and (2D,).

    Notes
    -----
    Source: ``bojone/kg-2019`` (one ``Conv1D(2D)`` split as ``h[..., :D]``, ``h[..., D:]``).
    A port that splits [value, gate] needs its halves swapped first.
    """
    return (np.concatenate([as_float(w_gate, "w_gate"), as_float(w_value, "w_value")], axis=-1),
            np.concatenate([as_float(b_gate, "b_gate"), as_float(b_value, "b_value")], axis=-1))


def split_gate_kernel(w, b):
    r"""Split a fused ``[gate | value]`` kernel: the inverse of :func:`fuse_gate_kernels`.

    .. math:: W_{\text{gate}} = W_{:, :, :D}, \qquad W_{\text{value}} = W_{:, :, D:}

    Parameters
    ----------
    w : array (k, D, 2D).
    b : array (2D,).

    Returns
    -------
    (w_gate, b_gate, w_value, b_value).

    Notes
    -----
    Source: ``bojone/kg-2019`` ``dilated_gated_conv1d`` (the split order).
    """
    w = as_float(w, "w")
    b = as_float(b, "b")
    D = value_of(w).shape[-1] // 2
    return w[..., :D], b[..., :D], w[..., D:], b[..., D:]


def receptive_field(dilations=STACK_12, kernel_size=3):
    r"""Receptive field of a stack of dilated convolutions (characters seen by one output).

    .. math:: F = 1 + (k - 1) \sum_l r_l

    Parameters
    ----------
    dilations : sequence of ints r_l ≥ 1.
    kernel_size : int k ≥ 1.

    Returns
    -------
    int. 55 for :data:`STACK_12`, 33 for :data:`STACK_6` (k = 3).

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (the 12-block stack), receptive field derived here.

    Examples
    --------
    >>> receptive_field(STACK_12), receptive_field(STACK_6)
    (55, 33)
    """
    k = check_int(kernel_size, "kernel_size", min_value=1)
    return 1 + (k - 1) * sum(check_int(r, "dilations[i]", min_value=1) for r in dilations)


# ---------------------------------------------------------------------------
# Private kernels: no validation (called on checked input, also by the pipeline)
# ---------------------------------------------------------------------------

@primitive
def _shift_time(x, s):
    """y_t = x_{t+s} along axis 1, zero where t + s falls outside [0, T) (a linear map)."""
    out = onp.zeros_like(x)
    T = x.shape[1]
    if abs(s) < T:
        if s >= 0:
            out[:, :T - s] = x[:, s:]
        else:
            out[:, -s:] = x[:, :T + s]
    return out


# The adjoint of a shift by s is the shift by −s (itself a primitive: any order is traceable).
defvjp(_shift_time, lambda ans, x, s: lambda g: _shift_time(g, -s))


def _conv(x, w, b, r):
    Din = value_of(x).shape[-1]
    k, _, Dout = value_of(w).shape
    # 'same': (k − 1)·r zeros in total, ℓ = ⌊(k − 1) r / 2⌋ on the left, the rest on the right
    left = (k - 1) * r // 2
    # tap j reads x_{t + j·r − ℓ} (zero outside the sequence); stacked taps: (B, T, k·D_in)
    taps = np.concatenate([_shift_time(x, j * r - left) for j in range(k)], axis=-1)
    # y_t = Σ_j x_{t + j·r − ℓ} W_j (+ b), one matmul over the stacked taps
    y = np.matmul(taps, np.reshape(w, (k * Din, Dout)))                          # (B, T, D_out)
    return y if b is None else y + b


def _block(x, mask, w, b, r, gate, gate_keep, rate):
    D = value_of(x).shape[-1]
    h = _conv(x, w, b, r)                                                     # (B, T, 2D)
    g, c = h[..., :D], h[..., D:]                                             # (B, T, D) each
    if gate_keep is not None:
        # inverted dropout on the gate logits: g ← g·keep / (1 − rate)
        g = np.where(gate_keep, g / onp.asarray(1.0 - rate, value_of(x).dtype), onp.asarray(0.0, value_of(x).dtype))
    # σ(g) and 1 − σ(g) = σ(−g), each with full relative precision (1 − σ(g) would lose the
    # digits of a gate near 1)
    s, s_neg = _sigmoid(g), _sigmoid(-g)
    if gate == "post":
        # Y = X ⊙ (1 − σ) + Conv₁(X) ⊙ σ
        y = x * s_neg + c * s
    else:
        # Y = G ⊙ X + (1 − G) ⊙ c
        y = s * x + s_neg * c
    # Y ← Y ⊙ mask
    return y if mask is None else y * mask[..., None]


def _stack(x, mask, w, b, dilations, gate, gate_keep, rate):
    # H⁰ = X ⊙ mask
    h = x if mask is None else x * mask[..., None]
    for l, r in enumerate(dilations):
        # Hˡ = Block_{r_l}(Hˡ⁻¹) ⊙ mask
        h = _block(h, mask, w[l], b[l], r, gate, None if gate_keep is None else gate_keep[l], rate)
    return h


def _check_x(x, name="x"):
    x = as_float(x, name)
    check_float_array(x, name)
    check_ndim(x, name, 3, "(B, T, D)")
    return x


def _check_conv(x, w, b, bias_required=False):
    x = _check_x(x)
    w = as_float(w, "w")
    check_float_array(w, "w")
    check_ndim(w, "w", 3, "(k, D_in, D_out)")
    Din = value_of(x).shape[-1]
    if value_of(w).shape[1] != Din or value_of(w).shape[0] < 1:
        raise ValueError(f"w must have shape (k, D_in, D_out) with D_in = {Din} (the last axis of x), "
                         f"got {value_of(w).shape}")
    if b is None:
        if bias_required:
            raise ValueError("b must be an array (2D,), got None")
        return x, w, None
    b = as_float(b, "b")
    check_float_array(b, "b")
    if value_of(b).shape != (value_of(w).shape[-1],):
        raise ValueError(f"b must have shape (D_out,) = ({value_of(w).shape[-1]},), got {value_of(b).shape}")
    return x, w, b


def _check_mask(mask, B, T):
    """A (B, T) boolean sequence mask, or None."""
    if mask is None:
        return None
    return _check_bool(mask, "mask", (B, T), "(B, T)")


def _check_bool(m, name, shape, legend):
    arr = onp.asarray(m)
    if arr.dtype != onp.bool_:
        raise TypeError(f"{name} must be a boolean array (True = keep / valid), got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {legend} = {tuple(shape)}, got {arr.shape}")
    return arr


def _check_rate(rate):
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must lie in [0, 1), got {rate}")
    return rate
