r"""Function smoothing: differentiable stand-ins for max, argmax, accuracy, F1 and top-k.

Post: Su Jianlin, "Random talk on function smoothing: differentiable approximations of
non-differentiable functions", 2019-05-20, https://kexue.fm/archives/6620 (English translation
in ``rohin-garg/kexue-en``). Supporting posts: https://kexue.fm/archives/3290 (smooth maximum,
absolute value) and https://kexue.fm/archives/10373 (the soft-k-max re-quoted and criticised).

Notation (the post's): ``x`` a vector of scores, ``K`` the smoothing constant that
*multiplies* the scores (``scale`` here), ``p`` predicted probabilities, ``t`` or ``y`` targets.
Shapes use the legend of ``docs/conventions.md``: B batch, K classes (the class count; the
post's K the constant is always called ``scale`` in code), n the length of the reduced axis.

Conventions: reductions run along ``axis=-1``; positions are 0-based unless ``base=1`` (D6);
``-inf`` scores are allowed where a maximum is taken and mean "no mass"; NaN and ``+inf`` are
refused. Nothing here mutates its inputs, and every function is traceable by autograd.

Modules (one section of the post each):

* :mod:`~kexue_ref.smoothing.maxima` – "max → logsumexp": smooth max and min; the soft-k-max;
  the smooth |x| and soft ReLU of https://kexue.fm/archives/3290;
* :mod:`~kexue_ref.smoothing.argmax` – "softmax ≈ onehot(argmax)" and "argmax": soft one-hot
  and soft argmax;
* :mod:`~kexue_ref.smoothing.metrics` – "accuracy" and "F1": smooth accuracy, precision,
  recall and F1.
"""
from kexue_ref.smoothing.argmax import soft_argmax, soft_onehot
from kexue_ref.smoothing.maxima import smooth_abs, smooth_max, smooth_min, soft_kmax, soft_relu
from kexue_ref.smoothing.metrics import smooth_accuracy, smooth_f1, smooth_precision, smooth_recall

__all__ = ["smooth_max", "smooth_min", "soft_onehot", "soft_argmax", "smooth_accuracy",
           "smooth_f1", "smooth_precision", "smooth_recall", "soft_kmax", "smooth_abs",
           "soft_relu"]

POST = "https://kexue.fm/archives/6620"
