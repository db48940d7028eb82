r"""Reparameterization: Normal, Gumbel-Max, Gumbel-Softmax, score-function and pathwise gradients.

Post: Su Jianlin, "漫谈重参数：从正态分布到Gumbel Softmax" (Random talk on
reparameterization: from the Normal distribution to Gumbel Softmax), 2019-06-10,
https://kexue.fm/archives/6705. Author code: ``bojone/vae`` ``vae_keras_cnn_gs.py``.
Papers: Jang, Gu & Poole, arXiv 1611.01144 (Gumbel-Softmax); Maddison, Mnih & Teh,
arXiv 1611.00712 (the Concrete distribution); Kusner & Hernández-Lobato, arXiv 1611.04051.

Modules (one section of the post each):

* :mod:`~kexue_ref.reparam.noise` – section "连续情形" (z = μ + σε) and the Gumbel noise of
  section "Gumbel Max" (g = −log(−log u), one mode per public convention, or −log E); the
  samplers;
* :mod:`~kexue_ref.reparam.gumbel` – sections "Gumbel Max" and "Gumbel Softmax" (with
  straight-through, an extension), and the accurate softmax they share;
* :mod:`~kexue_ref.reparam.concrete` – the Concrete density of the relaxed sample (an
  extension: the post gives none);
* :mod:`~kexue_ref.reparam.estimators` – the objective by enumeration and its exact gradient,
  the score-function estimators, the pathwise estimators;
* :mod:`~kexue_ref.reparam._common` – argument checks and one-hot vectors shared by the above.

Notation (the post's): the objective is :math:`L_\theta = \mathbb{E}_{z\sim p_\theta}[f(z)]`;
``o`` are logits with :math:`p = \mathrm{softmax}(o)`; ``u`` uniform noise, ``g`` Gumbel noise,
``eps`` (ε) standard Normal noise; τ (``tau``) the temperature, which **divides** the scores.
Shapes use the letters of ``docs/conventions.md`` ("Shape letters"): K categories, S
Monte-Carlo samples; ``...`` any batch.

Conventions: every random quantity is an argument (decision D2); the convenience samplers
take a ``numpy.random.Generator``. The categories run along ``axis=-1`` unless stated; the
noise carries the sample shape (logits broadcast to it). Gumbel noise from uniforms has one
named mode per public convention (``docs/reparam.md`` has the table). Extensions that the post
does not describe are marked as such: straight-through ``hard=True`` and the relaxed one-hot
(Concrete) log-density. Nothing mutates its inputs; everything but the samplers and the
integer outputs of :func:`gumbel_max` is traceable by autograd and keeps float32 as float32.
"""
from kexue_ref.reparam._common import SIMPLEX_ATOL
# _compensated_sum is private but stays reachable as kexue_ref.reparam._compensated_sum (tests use it)
from kexue_ref.reparam.concrete import _compensated_sum, relaxed_onehot_log_prob  # noqa: F401
from kexue_ref.reparam.estimators import (categorical_exact_grad, categorical_expectation,
                                          categorical_score_function_grad, gumbel_softmax_pathwise_grad,
                                          normal_pathwise_grad, normal_score_function_grad, score_function_grad)
from kexue_ref.reparam.gumbel import gumbel_max, gumbel_softmax
from kexue_ref.reparam.noise import (GUMBEL_MODES, gumbel_from_exponential, gumbel_from_uniform, normal_reparam,
                                     sample_gumbel, sample_normal, sample_uniform)

__all__ = [
    "normal_reparam", "gumbel_from_uniform", "gumbel_from_exponential",
    "sample_uniform", "sample_gumbel", "sample_normal",
    "gumbel_max", "gumbel_softmax", "relaxed_onehot_log_prob",
    "categorical_expectation", "categorical_exact_grad", "score_function_grad",
    "categorical_score_function_grad", "gumbel_softmax_pathwise_grad",
    "normal_score_function_grad", "normal_pathwise_grad",
    "GUMBEL_MODES", "SIMPLEX_ATOL",
]

POST = "https://kexue.fm/archives/6705"
