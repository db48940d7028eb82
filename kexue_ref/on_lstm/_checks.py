"""Argument checks shared by the sections of the ON-LSTM package (https://kexue.fm/archives/6621).

No mathematics here: each helper validates and returns its arguments (float arrays of the
right shapes, integer levels in range, a chunk size C dividing N = L·C, states (B, N)) with
messages that name the argument and the post's shape letters (D5, ``docs/conventions.md``).
"""
import autograd.numpy as np
import numpy as onp

from kexue_ref._validate import as_float, check_choice, check_float_array, check_int, value_of


def _checked(x, name, min_ndim=0):
    x = as_float(x, name)
    check_float_array(x, name, min_ndim=min_ndim)
    return x


def _same_shape_2d(*named):
    """Check 2-d float arrays of one shape (that of the first); return them as floats."""
    out = []
    for name, x in named:
        x = _checked(x, name)
        shape = value_of(x).shape
        if len(shape) != 2:
            raise ValueError(f"{name} must have shape (B, N), got shape {shape}")
        if out and shape != value_of(out[0]).shape:
            raise ValueError(f"{name} must have the shape of {named[0][0]} "
                             f"{value_of(out[0]).shape}, got {shape}")
        out.append(x)
    return out


def _check_levels(d_f, d_i, L, base):
    check_choice(base, "base", (0, 1))
    out = []
    for name, d in (("d_f", d_f), ("d_i", d_i)):
        arr = onp.asarray(d)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer levels, got dtype {arr.dtype}")
        if arr.size and (arr.min() < base or arr.max() > L - 1 + base):
            raise ValueError(f"{name} must hold levels in [{base}, {L - 1 + base}] (L={L}, "
                             f"base={base}), got values in [{arr.min()}, {arr.max()}]")
        out.append(arr.astype(onp.int64) - base)
    if out[0].shape != out[1].shape:
        raise ValueError(f"d_f and d_i must have the same shape, got {out[0].shape} and {out[1].shape}")
    return out


def _check_chunk(chunk, N):
    C = check_int(chunk, "chunk", min_value=1)
    if N % C:
        raise ValueError(f"chunk={C} does not divide the hidden size N={N} (N = L·C)")
    return C


def _chunk_of(N, levels=None, chunk=None):
    """C (and L) from exactly one of levels / chunk, checking that it divides N."""
    if (levels is None) == (chunk is None):
        raise ValueError("give exactly one of levels= (L, as in the Keras code) or chunk= "
                         "(C, the official chunk_size)")
    if levels is not None:
        L = check_int(levels, "levels", min_value=1)
        if N % L:
            raise ValueError(f"levels={L} does not divide the hidden size N={N} (N = L·C)")
        return N // L
    C = check_int(chunk, "chunk", min_value=1)
    if N % C:
        raise ValueError(f"chunk={C} does not divide the hidden size N={N} (N = L·C)")
    return C


def _check_states(h, c, B, N, like=None):
    out = []
    for name, s in (("h0" if like is not None else "h", h), ("c0" if like is not None else "c", c)):
        if s is None and like is not None:
            s = np.zeros((B, N), dtype=value_of(like).dtype)
        elif s is None:
            raise ValueError(f"{name} must be an array (B, N) = ({B}, {N})")
        s = _checked(s, name)
        if value_of(s).shape != (B, N):
            raise ValueError(f"{name} must have shape (B, N) = ({B}, {N}), got shape {value_of(s).shape}")
        out.append(s)
    return out


def _check_ends_at_one(f_master):
    last = value_of(f_master)[..., -1]
    if last.size and onp.max(onp.abs(last - 1.0)) > 1e-3:
        raise ValueError("f_master must end at 1 along its last axis (a master forget gate over "
                         f"levels, as cumax gives); got last entries up to {onp.max(onp.abs(last - 1)):.3g} away")
