"""Train the light DGCNN extractor (6 blocks, small widths) on the shipped synthetic corpus.

Prints a plain-text progress bar per epoch and the dev precision / recall / F1 (set-based, over
held-out sentences with unseen entities) after each epoch, evaluated with the EMA weights as
the author's code does. The target is dev F1 >= 0.9 within 10 minutes on 2 CPU cores.

    python benchmarks/train_dgcnn.py                       # defaults below
    python benchmarks/train_dgcnn.py --epochs 3 --train 600 --dev 100   # a quick look

Everything is readable NumPy + autograd from ``kexue_ref.dgcnn``: the model (``init_params``,
``forward``), one epoch of the code's loop (``train.run_epoch``: subject sampling and targets,
Adam with the post's one-epoch linear warm-up, the weight EMA, debiased as Keras/TF does) and
decoding (``extract_triples``), scored with ``corpus_prf``.
Post: https://kexue.fm/archives/6671; code: bojone/kg-2019.
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as onp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kexue_ref import dgcnn as dg                                     # noqa: E402
from kexue_ref.dgcnn import corpus as C                               # noqa: E402
from kexue_ref.dgcnn import train as tr                               # noqa: E402


def tune_runtime():
    """One BLAS thread (small matrices; the cores are shared) and a malloc that keeps freed memory.

    Autograd allocates many short-lived arrays of a few hundred KB; glibc returns them to the OS
    and re-faults them on the next step, which costs ~3–5× on these VMs (``docs/references.md``, "Memory reuse").
    """
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:                                               # pragma: no cover
        pass
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2 ** 20)
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 30)
        libc.mallopt(M_TOP_PAD, 256 * 2 ** 20)
    except (OSError, AttributeError):                                 # not glibc: no tuning
        pass


def bar(done, total, width=30):
    filled = int(width * done / total)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


def evaluate(params, sentences, table, config, batch_size=64, show_errors=0):
    preds, golds = [], []
    for s in range(0, len(sentences), batch_size):
        chunk = sentences[s:s + batch_size]
        tokens, word_vecs = C.make_batch(chunk, table)
        preds += dg.extract_triples(params, tokens, word_vecs, [x.text for x in chunk], config,
                                    predicates=C.PREDICATES)
        golds += [x.triples for x in chunk]
    shown = 0
    for s, p, g in zip(sentences, preds, golds):
        if p != g and shown < show_errors:
            print(f"  {s.text!r}\n    missed   {sorted(g - p)}\n    spurious {sorted(p - g)}")
            shown += 1
    return dg.corpus_prf(preds, golds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=6000, help="training sentences")
    ap.add_argument("--dev", type=int, default=500, help="held-out dev sentences")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dim", type=int, default=32, help="char_size: the width of every layer")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.99, help="EMA decay (the code: 0.9999 over far more steps)")
    ap.add_argument("--budget", type=float, default=480.0, help="start no epoch after this many seconds")
    ap.add_argument("--seed", type=int, default=6671)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--show-errors", type=int, default=0, help="print this many wrong dev sentences at the end")
    args = ap.parse_args(argv)
    tune_runtime()
    t_start = time.perf_counter()

    seeds = onp.random.SeedSequence(args.seed).spawn(5)
    train_rng, dev_rng, init_rng, loop_rng, table_rng = (onp.random.default_rng(s) for s in seeds)
    train_set = C.synthetic_corpus(args.train, train_rng)
    dev_set = C.synthetic_corpus(args.dev, dev_rng)
    table = C.word_vector_table(table_rng)
    train_entities = {e for s in train_set for t in s.triples for e in (t[0], t[2])}
    dev_entities = {e for s in dev_set for t in s.triples for e in (t[0], t[2])}
    config = dg.DGCNNConfig(n_chars=C.N_CHARS, word_dim=table.shape[1], n_predicates=len(C.PREDICATES),
                            dim=args.dim, dilations=dg.STACK_6, heads=4, head_size=args.dim // 4, maxlen=128)
    params = dg.init_params(config, init_rng, dtype=onp.dtype(args.dtype))
    state = {"params": params, "opt": tr.adam_init(params), "ema": tr.ema_init(params), "step": 0}
    steps_per_epoch = -(-args.train // args.batch)
    print(f"synthetic corpus: {args.train} train / {args.dev} dev sentences, {len(C.PREDICATES)} predicates, "
          f"{sum(len(s.triples) for s in dev_set)} dev triples; "
          f"{len(dev_entities - train_entities) / len(dev_entities):.0%} of dev entities unseen in training")
    print(f"model: light DGCNN {config.dilations} (receptive field {dg.receptive_field(config.dilations)}), "
          f"dim {config.dim}, attention {config.heads}x{config.head_size}, cell {config.cell}, "
          f"{sum(v.size for v in params.values())} weights, {args.dtype}; batch {args.batch}, "
          f"~{steps_per_epoch} steps/epoch, warm-up 1 epoch to lr {args.lr}, EMA {args.ema}")
    sys.stdout.flush()

    best, reached = 0.0, None
    tty = sys.stdout.isatty()
    for epoch in range(1, args.epochs + 1):
        if time.perf_counter() - t_start > args.budget:
            print(f"time budget of {args.budget:.0f} s used up: stopping before epoch {epoch}")
            break
        recent = []

        def progress(n, total, loss, epoch=epoch, recent=recent):
            recent.append(loss)
            if tty or n == total or n % max(1, total // 4) == 0:
                line = f"epoch {epoch:2d} {bar(n, total)} loss {onp.mean(recent[-50:]):.4f}"
                print(("\r" + line) if tty else line, end="" if tty and n < total else "\n", flush=True)

        state, losses = tr.run_epoch(state, train_set, table, config, loop_rng, args.batch, args.lr,
                                     warmup_steps=steps_per_epoch, ema_decay=args.ema, on_step=progress)
        p, r, f = evaluate(tr.ema_weights(state["ema"]), dev_set, table, config)
        elapsed = time.perf_counter() - t_start
        best = max(best, float(f))
        if reached is None and f >= 0.9:
            reached = elapsed
        print(f"epoch {epoch:2d}: train loss {onp.mean(losses):.4f}  dev P {float(p):.4f}  R {float(r):.4f}  "
              f"F1 {float(f):.4f}  (best {best:.4f})  elapsed {elapsed:.0f} s", flush=True)
    if args.show_errors:
        print("dev sentences with errors (EMA weights):")
        evaluate(tr.ema_weights(state["ema"]), dev_set, table, config, show_errors=args.show_errors)
    total = time.perf_counter() - t_start
    verdict = "PASS" if reached is not None and reached < 600 else "FAIL"
    when = f"reached after {reached:.0f} s" if reached is not None else "not reached"
    print(f"{verdict}: best dev F1 {best:.4f}; F1 >= 0.9 {when}; total {total:.0f} s")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
