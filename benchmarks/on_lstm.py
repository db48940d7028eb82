"""Cost of the readable ON-LSTM layer: forward + gradient through autograd vs one fused NumPy loop.

    python benchmarks/on_lstm.py [--repeats 5] [--T 64] [--B 16] [--N 64] [--chunk 8] [--D 64]

The reference (:func:`kexue_ref.on_lstm.on_lstm`) is differentiated by autograd, which traces
every elementwise operation of every step. The comparison point is the same computation
written as one NumPy loop over time with the input projection hoisted out of the loop and a
hand-written backward pass (backpropagation through time, derived below). Before timing, the
script checks that the hand-written gradients equal autograd's (float64, rtol 1e-10), so the
two sides compute the same thing.

Loss: φ = Σ_t <u_t, h_t> with a fixed random cotangent u; gradients w.r.t. x, h0, c0, W, U, b.
Master input gate: the post's ("su"). BLAS is limited to one thread for both sides. Timings
are the best of ``--repeats`` runs, measured in one process; they are indicative only, since
other jobs may share the CPU.

Backward of one step (A = ω ⊙ f + f̃ − ω, G = ω ⊙ i + ĩ − ω, so c_t = A ⊙ c_{t−1} + G ⊙ ĉ):

    dh = u_t + dz_{t+1} Uᵀ,  do = dh ⊙ tanh c_t,  dc = dh ⊙ o ⊙ (1 − tanh² c_t) + dc_{t+1} ⊙ A_{t+1}
    dA = dc ⊙ c_{t−1},  dG = dc ⊙ ĉ,  dω = dA ⊙ (f − 1) + dG ⊙ (i − 1)
    df̃ = Σ_chunk (dA + dω ⊙ ĩ),  dĩ = Σ_chunk (dG + dω ⊙ f̃)
    dp_f = cs←(df̃),  dp_i = cs→(dĩ),  da = p ⊙ (dp − <p, dp>)          (cumsum and softmax)
    dz = [da_f | da_i | dA ⊙ ω ⊙ f(1−f) | dG ⊙ ω ⊙ i(1−i) | do ⊙ o(1−o) | dc ⊙ G ⊙ (1−ĉ²)]
"""
import argparse
import time

import autograd.numpy as anp
import numpy as np
from autograd import grad
from threadpoolctl import threadpool_limits

from kexue_ref import on_lstm as ol


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fused_forward_backward(x, h0, c0, W, U, b, u, L):
    """φ = Σ_t <u_t, h_t> and its gradients (x, h0, c0, W, U, b), in one loop each way."""
    B, T, D = x.shape
    N = h0.shape[1]
    C = N // L
    xw = x @ W + b                                                 # (B, T, 2L + 4N), hoisted
    h, c = h0, c0
    cache = []
    loss = 0.0
    for t in range(T):
        z = xw[:, t] + h @ U
        p_f, p_i = _softmax(z[:, :L]), _softmax(z[:, L:2 * L])
        fm = np.repeat(np.cumsum(p_f, axis=-1), C, axis=1)          # (B, N)
        im = np.repeat(np.cumsum(p_i[:, ::-1], axis=-1)[:, ::-1], C, axis=1)
        f, i, o = (_sigmoid(z[:, 2 * L + k * N:2 * L + (k + 1) * N]) for k in range(3))
        g = np.tanh(z[:, 2 * L + 3 * N:])
        omega = fm * im
        A = omega * f + fm - omega
        G = omega * i + im - omega
        c_new = A * c + G * g
        tc = np.tanh(c_new)
        h_new = o * tc
        loss += float(np.sum(u[:, t] * h_new))
        cache.append((h, c, p_f, p_i, fm, im, f, i, o, g, omega, A, G, tc))
        h, c = h_new, c_new

    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dz_all = np.empty_like(xw)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    A_next = np.zeros_like(c0)
    for t in reversed(range(T)):
        h_prev, c_prev, p_f, p_i, fm, im, f, i, o, g, omega, A, G, tc = cache[t]
        dh = u[:, t] + dh_next
        do = dh * tc
        dc = dh * o * (1.0 - tc * tc) + dc_next * A_next
        dA, dG = dc * c_prev, dc * g
        domega = dA * (f - 1.0) + dG * (i - 1.0)
        dfm = (dA + domega * im).reshape(B, L, C).sum(-1)
        dim = (dG + domega * fm).reshape(B, L, C).sum(-1)
        dp_f = np.cumsum(dfm[:, ::-1], axis=-1)[:, ::-1]
        dp_i = np.cumsum(dim, axis=-1)
        da_f = p_f * (dp_f - np.sum(p_f * dp_f, axis=-1, keepdims=True))
        da_i = p_i * (dp_i - np.sum(p_i * dp_i, axis=-1, keepdims=True))
        dz = np.concatenate([da_f, da_i, dA * omega * f * (1 - f), dG * omega * i * (1 - i),
                             do * o * (1 - o), dc * G * (1 - g * g)], axis=1)
        dz_all[:, t] = dz
        dU += h_prev.T @ dz
        dh_next = dz @ U.T
        dc_next, A_next = dc, A
    dW = np.einsum("btd,btj->dj", x, dz_all)
    db = dz_all.sum(axis=(0, 1))
    dx = dz_all @ W.T
    return loss, (dx, dh_next, dc_next * A_next, dW, dU, db)


def autograd_forward_backward(x, h0, c0, W, U, b, u, L):
    def phi(args):
        xx, hh, cc, WW, UU, bb = args
        return anp.sum(ol.on_lstm(xx, {"W": WW, "U": UU, "b": bb}, hh, cc, levels=L).h * u)
    return grad(phi)((x, h0, c0, W, U, b))


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    L = args.N // args.chunk
    rng = np.random.default_rng(20190528)
    p = ol.random_params(rng, args.D, args.N, L)
    x = rng.standard_normal((args.B, args.T, args.D))
    h0 = 0.5 * rng.standard_normal((args.B, args.N))
    c0 = rng.standard_normal((args.B, args.N))
    u = rng.standard_normal((args.B, args.T, args.N))
    inputs = (x, h0, c0, p["W"], p["U"], p["b"], u, L)

    with threadpool_limits(limits=1):
        ref = autograd_forward_backward(*inputs)
        loss, fused = fused_forward_backward(*inputs)
        loss_ref = float(np.sum(ol.on_lstm(x, p, h0, c0, levels=L).h * u))
        if abs(loss - loss_ref) > 1e-10 * abs(loss_ref):
            raise AssertionError(f"fused loss {loss!r} != reference loss {loss_ref!r}")
        for name, a, r in zip(("x", "h0", "c0", "W", "U", "b"), fused, ref):
            np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12, err_msg=f"gradient w.r.t. {name}")
        t_ref = _best(lambda: autograd_forward_backward(*inputs), args.repeats)
        t_fused = _best(lambda: fused_forward_backward(*inputs), args.repeats)

    print(f"ON-LSTM layer forward + gradient, T={args.T} B={args.B} D={args.D} N={args.N} "
          f"chunk={args.chunk} (L={L}), float64, 1 BLAS thread, best of {args.repeats}")
    print("hand-written gradients == autograd's (rtol 1e-10): yes")
    print(f"  autograd reference (kexue_ref.on_lstm.on_lstm): {1e3 * t_ref:9.1f} ms")
    print(f"  fused NumPy loop, hand-written backward:        {1e3 * t_fused:9.1f} ms")
    print(f"  ratio reference / fused: {t_ref / t_fused:.1f}x")
    print("note: measured in one run on a shared machine; other jobs may load the CPU.")


if __name__ == "__main__":
    main()
