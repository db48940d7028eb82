r"""Kernel orthogonality: the Self-Orthogonality Module (SOM) and the classic penalties.

Post: Su Jianlin, "Self-Orthogonality Module: a plug-and-play kernel orthogonalisation module",
2020-01-12, https://kexue.fm/archives/7169. Paper: Z. Zhang, W. Ma, Y. Wu, G. Wang,
"Self-Orthogonality Module: A Network Architecture Plug-in for Learning Orthogonal Filters",
WACV 2020, arXiv 2001.01275. Baselines: BigGAN's ``ortho`` / ``default_ortho``
(``ajbrock/BigGAN-PyTorch`` ``utils.py``) and SRIP (``VITA-Group/Orthogonality-in-CNNs``).

Modules (in the order of the post):

* :mod:`~kexue_ref.orthogonality.penalties` – the classic penalties the post starts from:
  ‖WᵀW − I‖² (Frobenius, spectral, SRIP's power iteration), the off-diagonal penalty, BigGAN's
  gradient;
* :mod:`~kexue_ref.orthogonality.lemma` – the lemma E[sgn·sgn] = 1 − 2θ/π: the exact angle
  statistic ϑ and its sign estimator;
* :mod:`~kexue_ref.orthogonality.som` – the module: the tanh estimate Θ and the penalty R_ϑ;
* :mod:`~kexue_ref.orthogonality.convolutions` – convolutions as matrices (im2col, kernel
  layouts), which the post leaves to the reader.

Notation. The post writes column vectors, :math:`y^\top = x^\top W` with
:math:`W = (w_1, \dots, w_k) \in \mathbb{R}^{d \times k}`; this package is batch-first
(``docs/conventions.md`` D5): ``x`` is (B, D), ``w`` is (D, M) and ``Y = X W`` is (B, M), so the
post's d is D and its k is M. Each column :math:`w_i` is one filter ("view"); :math:`\theta_{ij}`
is the angle between :math:`w_i` and :math:`w_j`; :math:`\vartheta_{ij} = 1 - 2\theta_{ij}/\pi`;
Θ is the SOM's estimate of ϑ from a batch. The classic penalties take ``filters="columns"``
(filters along the last axis, the Keras layout) or ``filters="rows"`` (along the first axis, the
PyTorch and BigGAN layout). Convolutions become matrices through :func:`im2col` (each patch is a
sample) and :func:`kernel_matrix` (each output channel is a column, flattened in (taps, C_in)
order).

Nothing here mutates its inputs; every function but :func:`sign_gram` is traceable by autograd
(the sign estimator is piecewise constant, a diagnostic for the tanh one). NaN and ±inf inputs
are refused.
"""
from kexue_ref.orthogonality.convolutions import im2col, keras_to_torch_kernel, kernel_matrix, torch_to_keras_kernel
from kexue_ref.orthogonality.lemma import angle_gram, sign_gram
from kexue_ref.orthogonality.penalties import biggan_ortho_grad, offdiag_penalty, orthonormal_penalty
from kexue_ref.orthogonality.som import som_gram, som_penalty

__all__ = ["angle_gram", "sign_gram", "som_gram", "som_penalty", "im2col", "torch_to_keras_kernel",
           "keras_to_torch_kernel", "kernel_matrix", "orthonormal_penalty", "offdiag_penalty",
           "biggan_ortho_grad"]

#: The post's URL (read as ``og.POST`` by the registry rows, ``kexue_ref/cases/orthogonality.py``).
POST = "https://kexue.fm/archives/7169"
