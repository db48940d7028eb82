r"""Training: targets with the code's subject sampling, the loss, Adam, warm-up and weight EMA.

Post: https://kexue.fm/archives/6671 ("training": Adam 1e-3 with one epoch of warm-up, EMA of
the weights); author code ``bojone/kg-2019`` ``data_generator``, ``Evaluate.on_batch_begin``,
``ExponentialMovingAverage``; Keras 2.2's ``Adam`` and ``K.moving_average_update``.

Everything here is a plain function of arrays and dicts; randomness is a Generator argument
(D2). A loop over these functions is in ``benchmarks/train_dgcnn.py``.
"""
import numpy as onp
from autograd import value_and_grad

from kexue_ref._validate import check_int, check_range
from kexue_ref.dgcnn.corpus import make_batch
from kexue_ref.dgcnn.losses import KERAS_EPSILON, extraction_loss
from kexue_ref.dgcnn.model import forward

__all__ = ["sample_subject_span", "make_targets", "batch_loss", "adam_init", "adam_step", "warmup_lr",
           "ema_init", "ema_update", "ema_weights", "train_step", "length_batches", "run_epoch"]


def sample_subject_span(rng, subjects):
    r"""The code's subject sampling: a random gold start, then a random subject end at or after it.

    .. math:: k_1 \sim U\{\text{starts of gold subjects}\}, \qquad
              k_2 \sim U\{\text{ends of gold subjects} \ge k_1\}

    Parameters
    ----------
    rng : numpy.random.Generator.
    subjects : sequence of (start, inclusive end) gold subject spans (one entry per distinct span).

    Returns
    -------
    (k1, k2) ints. (k1, k2) need not be a gold span (e.g. the start of one subject and the end of
    a later one): its object targets are then all zero, an implicit negative example.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``data_generator`` (``k1 = choice(k1)``, ``k2 = choice(k2[k2 >= k1])``;
    the candidate lists have one entry per gold subject, so repeated starts/ends weigh more).
    """
    subjects = list(subjects)
    if not subjects:
        raise ValueError("subjects must hold at least one (start, end) span")
    starts = onp.array([s[0] for s in subjects])
    ends = onp.array([s[1] for s in subjects])
    k1 = int(rng.choice(starts))
    k2 = int(rng.choice(ends[ends >= k1]))
    return k1, k2


def make_targets(sentences, T, n_predicates, spans, dtype=onp.float64):
    r"""0/1 targets of a batch: every gold subject, and the objects of the sampled span.

    .. math:: s^1_{t} = [t \text{ starts a gold subject}], \qquad
              o^1_{tc} = [(k_1, k_2), c, (t, \cdot) \text{ is a gold triple}]

    Parameters
    ----------
    sentences : sequence of B items with a ``spans`` attribute of ((k1, k2), c, (i, j)) entries
        (:class:`kexue_ref.dgcnn.corpus.Sentence`).
    T : int, the padded length.
    n_predicates : int P.
    spans : sequence of B (k1, k2), the sampled subject span per sentence.
    dtype : float dtype of the target arrays (that of the parameters).

    Returns
    -------
    dict with "s1", "s2" (B, T), "o1", "o2" (B, T, P) float arrays and "k1", "k2" (B,) ints.

    Notes
    -----
    Source: ``bojone/kg-2019`` ``data_generator``.
    """
    B = len(sentences)
    s1, s2 = onp.zeros((B, T), dtype), onp.zeros((B, T), dtype)
    o1, o2 = onp.zeros((B, T, n_predicates), dtype), onp.zeros((B, T, n_predicates), dtype)
    for b, (sent, (k1, k2)) in enumerate(zip(sentences, spans)):
        for (a1, a2), c, (i, j) in sent.spans:
            s1[b, a1] = s2[b, a2] = 1.0
            if (a1, a2) == (k1, k2):
                o1[b, i, c] = o2[b, j, c] = 1.0
    k1, k2 = (onp.array(k, dtype=onp.int64) for k in zip(*spans))
    return {"s1": s1, "s2": s2, "o1": o1, "o2": o2, "k1": k1, "k2": k2}


def batch_loss(params, tokens, word_vecs, targets, config, embed_keep=None, gate_keep=None,
               clip=KERAS_EPSILON):
    r"""The extraction loss of a batch as a function of the parameter dict (differentiable).

    .. math:: \mathcal L(\theta) = \mathrm{extraction\_loss}\big(f_\theta(\text{tokens}, V, k_1, k_2),
              \text{targets}\big)

    Parameters
    ----------
    params : dict from :func:`kexue_ref.dgcnn.init_params`.
    tokens, word_vecs : the batch (:func:`kexue_ref.dgcnn.corpus.make_batch`).
    targets : dict from :func:`make_targets`.
    config : DGCNNConfig.
    embed_keep, gate_keep : optional dropout keep masks (see :func:`kexue_ref.dgcnn.encode`).
    clip : the BCE clip ε.

    Returns
    -------
    0-d array.

    Notes
    -----
    Source: ``bojone/kg-2019`` (``train_model.add_loss(loss)``).
    """
    ps1, ps2, po1, po2, mask = forward(params, tokens, word_vecs, targets["k1"], targets["k2"], config,
                                       embed_keep, gate_keep)
    return extraction_loss(ps1, ps2, po1, po2, targets["s1"], targets["s2"], targets["o1"], targets["o2"],
                           mask, clip)


def adam_init(params):
    r"""Adam state: zero first and second moments per parameter and the step count 0.

    .. math:: m_0 = 0, \quad v_0 = 0, \quad t = 0

    Parameters
    ----------
    params : dict name → array.

    Returns
    -------
    dict with "m", "v" (dicts of zero arrays shaped like ``params``) and "t" = 0.

    Notes
    -----
    Source: Kingma & Ba 2015 (arXiv 1412.6980), Algorithm 1.
    """
    return {"m": {k: onp.zeros_like(v) for k, v in params.items()},
            "v": {k: onp.zeros_like(v) for k, v in params.items()}, "t": 0}


def adam_step(params, grads, state, lr, beta1=0.9, beta2=0.999, eps=KERAS_EPSILON):
    r"""One Adam update in Keras 2's form (bias corrections folded into the step size).

    .. math:: m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2,
              \quad \theta \leftarrow \theta - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
              \frac{m}{\sqrt v + \epsilon}

    Parameters
    ----------
    params, grads : dicts name → array.
    state : dict from :func:`adam_init` (not modified).
    lr : float η > 0.
    beta1, beta2, eps : Adam constants (Keras defaults; ε = 1e-7).

    Returns
    -------
    (new_params, new_state).

    Notes
    -----
    Source: Kingma & Ba 2015 (arXiv 1412.6980), Algorithm 1 with the "efficient" ordering of
    §2; Keras 2.2 ``Adam.get_updates``.
    """
    check_range(lr, "lr", 0.0, onp.inf)
    t = state["t"] + 1
    # η_t = η √(1 − β₂ᵗ) / (1 − β₁ᵗ)
    lr_t = lr * onp.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    new_p, new_m, new_v = {}, {}, {}
    for k, p in params.items():
        g = grads[k]
        # m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²
        new_m[k] = beta1 * state["m"][k] + (1 - beta1) * g
        new_v[k] = beta2 * state["v"][k] + (1 - beta2) * g * g
        # θ ← θ − η_t m / (√v + ε)
        new_p[k] = p - lr_t * new_m[k] / (onp.sqrt(new_v[k]) + eps)
    return new_p, {"m": new_m, "v": new_v, "t": t}


def warmup_lr(step, warmup_steps, peak=1e-3):
    r"""The post's warm-up: the learning rate grows linearly over the first epoch, then stays.

    .. math:: \eta_n = \eta_{\max} \cdot \min\Big(1, \frac{n + 1}{N_{\text{warm}}}\Big)

    Parameters
    ----------
    step : int n ≥ 0, the 0-based step.
    warmup_steps : int N ≥ 1 (the code: the number of steps of one epoch).
    peak : float η_max (the code: 1e-3).

    Returns
    -------
    float.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 ("warm-up, otherwise it may not converge");
    ``bojone/kg-2019`` ``Evaluate.on_batch_begin``.

    Examples
    --------
    >>> [warmup_lr(n, 4, 1e-3) for n in (0, 1, 3, 10)]
    [0.00025, 0.0005, 0.001, 0.001]
    """
    step = check_int(step, "step", min_value=0)
    warmup_steps = check_int(warmup_steps, "warmup_steps", min_value=1)
    return peak * min(1.0, (step + 1) / warmup_steps)


def ema_init(params):
    r"""EMA state: a zero accumulator (for the debiased form), the start weights and the count 0.

    .. math:: a_0 = 0, \quad \theta_0 = \text{params}, \quad t = 0

    Parameters
    ----------
    params : dict name → array, the initial weights (kept for ``ema_weights(debias=False)``).

    Returns
    -------
    dict with "acc", "start" and "t".

    Notes
    -----
    Source: ``bojone/kg-2019`` ``ExponentialMovingAverage.initialize`` (the average starts from
    the initial weights; with TF's zero-debias the start drops out after the first update).
    """
    return {"acc": {k: onp.zeros_like(v) for k, v in params.items()},
            "start": {k: onp.array(v, copy=True) for k, v in params.items()}, "t": 0}


def ema_update(ema, params, decay=0.9999):
    r"""One step of the exponential moving average of the weights.

    .. math:: a_t = \beta a_{t-1} + (1 - \beta) \theta_t, \quad a_0 = 0

    Parameters
    ----------
    ema : dict from :func:`ema_init` (not modified).
    params : the weights after the optimiser step.
    decay : float β in [0, 1) (the code: 0.9999).

    Returns
    -------
    the new EMA state; read the averaged weights with :func:`ema_weights`.

    Notes
    -----
    Source: https://kexue.fm/archives/6671 (EMA of the weights); ``bojone/kg-2019``
    ``ExponentialMovingAverage`` calls Keras 2's ``K.moving_average_update``, which in the
    TensorFlow backend is ``assign_moving_average(..., zero_debias=True)``: the zero-started
    accumulator divided by 1 − βᵗ (:func:`ema_weights` with ``debias=True``).
    """
    beta = check_range(decay, "decay", 0.0, 1.0, low_open=False)
    # a_t = β a_{t−1} + (1 − β) θ_t
    acc = {k: beta * ema["acc"][k] + (1 - beta) * params[k] for k in params}
    return {"acc": acc, "start": ema["start"], "t": ema["t"] + 1, "decay": beta}


def ema_weights(ema, debias=True):
    r"""The averaged weights of an EMA state.

    .. math:: \text{debias:}\ \hat\theta = \frac{a_t}{1 - \beta^t}, \qquad
              \text{else:}\ \hat\theta = a_t + \beta^t \theta_0

    Parameters
    ----------
    ema : dict from :func:`ema_update` (or :func:`ema_init`: the start weights).
    debias : bool. True (the code's TensorFlow behaviour): a weighted mean of the weights seen,
        independent of the start. False: the textbook EMA started at the initial weights θ₀.

    Returns
    -------
    dict name → array.

    Notes
    -----
    Source: TensorFlow ``assign_moving_average(zero_debias=True)`` (Kingma & Ba's bias correction).
    """
    t = ema["t"]
    if t == 0:
        return {k: onp.array(v, copy=True) for k, v in ema["start"].items()}
    beta = ema["decay"]
    if debias:
        # θ̂ = a_t / (1 − βᵗ)
        return {k: a / (1 - beta ** t) for k, a in ema["acc"].items()}
    # θ̂ = a_t + βᵗ θ₀ (the EMA started at θ₀ instead of 0)
    return {k: a + beta ** t * ema["start"][k] for k, a in ema["acc"].items()}


def train_step(params, opt_state, tokens, word_vecs, targets, config, lr, embed_keep=None, gate_keep=None):
    r"""Loss, gradient (autograd) and one Adam update.

    .. math:: \theta \leftarrow \mathrm{Adam}(\theta, \nabla_\theta \mathcal L(\theta), \eta)

    Parameters
    ----------
    params, opt_state : the weights and the Adam state.
    tokens, word_vecs, targets, config, embed_keep, gate_keep : as in :func:`batch_loss`.
    lr : float, this step's learning rate (e.g. :func:`warmup_lr`).

    Returns
    -------
    (loss, new_params, new_opt_state); ``loss`` is the value before the update.

    Notes
    -----
    Source: ``bojone/kg-2019`` (``train_model.fit_generator``).
    """
    loss, grads = value_and_grad(batch_loss)(params, tokens, word_vecs, targets, config, embed_keep, gate_keep)
    new_params, new_state = adam_step(params, grads, opt_state, lr)
    return float(loss), new_params, new_state


def length_batches(lengths, batch_size, rng, pool=20):
    r"""Shuffled batches of indices with similar lengths (sorted within pools of ``pool`` batches).

    .. math:: \text{shuffle} \to \text{pools of } \text{pool} \cdot \text{batch\_size}
              \to \text{sort each pool by length} \to \text{cut into batches} \to \text{shuffle batches}

    Parameters
    ----------
    lengths : sequence of N ints, the sentence lengths.
    batch_size : int ≥ 1.
    rng : numpy.random.Generator.
    pool : int, batches per sorting pool.

    Returns
    -------
    list of index lists covering 0..N−1 once.

    Notes
    -----
    Source: a common bucketing trick (not in the code, which pads random batches). Less padding
    per batch; with the default ``compat=None`` the model's outputs do not depend on padding, so
    only the speed changes.
    """
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    order = rng.permutation(len(lengths))
    out = []
    for s in range(0, len(order), pool * batch_size):
        chunk = sorted(order[s:s + pool * batch_size], key=lambda i: lengths[i])
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def run_epoch(state, sentences, table, config, rng, batch_size=32, peak_lr=1e-3, warmup_steps=None,
              ema_decay=0.9999, on_step=None):
    r"""One epoch of the code's training loop: sample spans, build targets, Adam step, EMA update.

    .. math:: 	ext{for each batch: } (k_1, k_2) \sim 	ext{sample},\               	heta \leftarrow \mathrm{Adam}(	heta, 
abla_	heta \mathcal L, \eta_n),\               a \leftarrow eta a + (1 - eta)	heta

    Parameters
    ----------
    state : dict with "params", "opt" (:func:`adam_init`), "ema" (:func:`ema_init`) and "step"
        (the global step count n, for the warm-up); a new dict is returned.
    sentences : sequence of :class:`kexue_ref.dgcnn.corpus.Sentence` (the training set).
    table : the frozen word-vector table (:func:`kexue_ref.dgcnn.corpus.word_vector_table`).
    config : DGCNNConfig.
    rng : numpy.random.Generator (batch order and subject sampling).
    batch_size : int.
    peak_lr : float, the learning rate after warm-up (the code: 1e-3).
    warmup_steps : int or None; None = the number of batches of one epoch (the code).
    ema_decay : float β (the code: 0.9999).
    on_step : optional callable ``(n_done, n_batches, loss)`` called after every step (progress).

    Returns
    -------
    (new_state, losses): the losses of the epoch's steps.

    Notes
    -----
    Source: ``bojone/kg-2019`` (``data_generator``, ``Evaluate.on_batch_begin``, EMA injected into
    the training updates). No dropout here (the synthetic data are plentiful); ``train_step``
    takes keep masks for a run that wants it.
    """
    params, opt, ema, step = state["params"], state["opt"], state["ema"], state["step"]
    dtype = next(iter(params.values())).dtype
    plan = length_batches([len(s.text) for s in sentences], batch_size, rng)
    warm = len(plan) if warmup_steps is None else warmup_steps
    losses = []
    for n, idx in enumerate(plan, 1):
        chunk = [sentences[i] for i in idx]
        tokens, word_vecs = make_batch(chunk, table)
        spans = [sample_subject_span(rng, s.subjects) for s in chunk]
        targets = make_targets(chunk, tokens.shape[1], config.n_predicates, spans, dtype=dtype)
        loss, params, opt = train_step(params, opt, tokens, word_vecs, targets, config,
                                       warmup_lr(step, warm, peak_lr))
        ema = ema_update(ema, params, ema_decay)
        step += 1
        losses.append(loss)
        if on_step is not None:
            on_step(n, len(plan), loss)
    return {"params": params, "opt": opt, "ema": ema, "step": step}, losses
