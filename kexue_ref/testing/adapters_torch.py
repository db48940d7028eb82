"""The PyTorch adapter: run registry cases through a torch function, values and gradients.

>>> import pytest
>>> torch = pytest.importorskip("torch")
>>> from kexue_ref.testing import check
>>> def torch_smooth_max(x, scale=1.0, axis=-1):
...     return torch.logsumexp(scale * x, dim=axis) / scale
>>> check(torch_smooth_max, "smoothing.smooth_max", adapter="torch", grads=True).passed
True

How a case reaches the candidate:

* floating inputs become tensors of the candidate dtype (``"float64"``, ``"float32"``,
  ``"float16"``, ``"bfloat16"``) on the adapter's device (CPU unless ``device=`` says
  otherwise); integer inputs become ``torch.int64`` and boolean inputs ``torch.bool``
  tensors; the parameters are passed unchanged as keyword arguments;
* outputs and gradients come back as NumPy arrays (16-bit floats widened to float32, which
  is exact), and are compared with the float64 oracle by ``check``.

Gradients use torch's own autodiff with the oracle's cotangent ``u`` (the seeded one the
tables store): ``torch.autograd.grad(outputs, inputs, grad_outputs=u)``, i.e. the gradient
of :math:`\\sum_k \\langle u_k, \\mathrm{out}_k \\rangle` with respect to the op's
differentiable inputs. An input that the outputs do not depend on gets a zero gradient.

torch is imported when the adapter is created, never by ``import kexue_ref``.
"""
import numpy as onp

from kexue_ref.testing.adapters import ResultMismatch, call_user_grads

__all__ = ["TorchAdapter"]

#: kexue_ref dtype names -> torch dtype attribute names
_DTYPES = {"float64": "float64", "float32": "float32", "float16": "float16",
           "bfloat16": "bfloat16"}


class TorchAdapter:
    """Hand NumPy case inputs to a PyTorch candidate and take its values and VJP back.

    Parameters
    ----------
    device : str or torch.device, where the input tensors are created ("cpu" by default;
        e.g. "cuda" or "cuda:1" on a GPU machine).

    Notes
    -----
    ``grads`` (the argument of :func:`kexue_ref.testing.check`) may be ``True`` (or
    ``"torch"``, ``"framework"``, ``"autograd"``) for torch's autodiff, or a callable
    ``grads(cotangent, *tensors, **params)`` returning the gradients itself (a hand-written
    backward); the cotangent is then a tensor of the output's dtype, or a tuple with None for
    the outputs that carry no gradient.
    """

    name = "torch"

    def __init__(self, device="cpu"):
        import torch

        self.torch = torch
        try:
            self.device = torch.device(device)
            # a CPU-only build knows "cuda" as a name but cannot place a tensor there
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError, TypeError, ValueError) as exc:
            cuda = getattr(torch.version, "cuda", None)
            build = f"torch {torch.__version__}" + ("" if cuda else ", a build without CUDA")
            raise ValueError(f"torch cannot use device {str(device)!r} ({build}): "
                             f"{' '.join(str(exc).split())}") from None

    def __repr__(self):
        return f"TorchAdapter(device={str(self.device)!r})"

    # -- conversions -------------------------------------------------------------------

    def torch_dtype(self, dtype):
        """The torch dtype for a kexue_ref dtype name (or a torch dtype)."""
        if isinstance(dtype, self.torch.dtype):
            return dtype
        name = str(dtype).replace("torch.", "")
        if name not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)} for the torch adapter, "
                             f"got {dtype!r}")
        return getattr(self.torch, _DTYPES[name])

    def to_candidate(self, array, dtype):
        """A tensor on the adapter's device: floats in ``dtype``, integers int64, bools bool."""
        torch = self.torch
        a = onp.asarray(array)
        if a.dtype.kind == "f":
            # float64 first, then one rounding to the candidate dtype
            t = torch.tensor(onp.array(a, dtype=onp.float64))
            return t.to(device=self.device, dtype=self.torch_dtype(dtype))
        if a.dtype.kind in "iu":
            return torch.tensor(onp.array(a, dtype=onp.int64), device=self.device)
        if a.dtype.kind == "b":
            return torch.tensor(onp.array(a), device=self.device)
        raise TypeError(f"the torch adapter passes float, integer and boolean arrays; "
                        f"got dtype {a.dtype}")

    def to_numpy(self, x):
        """A NumPy array from a tensor (detached, on the CPU; 16-bit floats as float32)."""
        torch = self.torch
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype in (torch.bfloat16, torch.float16):
                x = x.to(torch.float32)
            return x.numpy()
        return onp.asarray(x)

    def dtype_of(self, x):
        """The dtype name of a candidate output: ``"bfloat16"`` for a bfloat16 tensor."""
        if isinstance(x, self.torch.Tensor):
            return str(x.dtype).replace("torch.", "")
        return onp.asarray(x).dtype.name

    # -- gradients ---------------------------------------------------------------------

    def vjp(self, candidate, spec, case, dtype, cotangents, grads):
        """The candidate's gradients w.r.t. ``spec.diff`` for the oracle's cotangents."""
        torch = self.torch
        inputs = {n: self.to_candidate(case.inputs[n], dtype) for n in spec.inputs}
        if callable(grads):
            return self._user_grads(grads, spec, case, inputs, cotangents, dtype)
        if grads not in (True, "torch", "framework", "autograd"):
            raise TypeError("grads must be None, True (torch autodiff) or a callable "
                            "grads(cotangent, *tensors, **params)")
        leaves = []
        for n in spec.diff:
            if not inputs[n].is_floating_point():
                raise TypeError(f"differentiable input {n!r} of {spec.name} is not floating")
            inputs[n].requires_grad_(True)
            leaves.append(inputs[n])
        try:
            outs = spec.as_outputs(candidate(*[inputs[n] for n in spec.inputs], **case.params))
        except ValueError as exc:
            if "should return" in str(exc):  # the wrong number of outputs: the result's form
                raise ResultMismatch(str(exc)) from None
            raise
        heads, head_cots = [], []
        for name, o, u in zip(spec.outputs, outs, cotangents):
            if u is None:
                continue
            if not isinstance(o, torch.Tensor):
                raise ResultMismatch(f"output {name!r} is a {type(o).__name__}, not a torch tensor")
            if not o.requires_grad:
                continue  # a constant output: its contribution to every gradient is 0
            # grad_outputs = u, in the output's dtype and device
            heads.append(o)
            head_cots.append(torch.tensor(onp.asarray(u, dtype=onp.float64)).to(o.device, o.dtype))
        if not heads:
            return tuple(torch.zeros_like(x) for x in leaves)
        # ∇_x Σ_k <u_k, out_k>
        g = torch.autograd.grad(heads, leaves, grad_outputs=head_cots, allow_unused=True)
        return tuple(torch.zeros_like(x) if gi is None else gi for x, gi in zip(leaves, g))

    def _user_grads(self, grads, spec, case, inputs, cotangents, dtype):
        cot = tuple(None if u is None else self.to_candidate(u, dtype) for u in cotangents)
        return call_user_grads(grads, spec, case, inputs, cot)
