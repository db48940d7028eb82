"""Worked example: sparse attention (https://kexue.fm/archives/6853) in PyTorch.

``torch.nn.functional.scaled_dot_product_attention`` is checked with the library's own
boolean masks (``kexue_ref._masks``: True = may attend, the same convention as SDPA's
boolean ``attn_mask``) for every pattern of the post, values and gradients w.r.t. q, k and
v, in float64 and float32, and in bfloat16 under the low-precision rule. A dense port of
the D4 oracle is checked too. SDPA returns 0 for a fully masked row on the CPU, as D4 does;
the oracle's ``compat="keras"`` cases (the author's Keras code) and ``fill=-1e9``
replacement masking are not SDPA's behaviour and are strict xfails.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref import registry  # noqa: E402
from kexue_ref._masks import atrous_mask, local_mask, sparse_mask  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import conformance_test  # noqa: E402

TIERS = ("quick", "full", "edge")


def _bool(x, like):
    return torch.as_tensor(np.asarray(x, dtype=bool), device=like.device)


def _allowed(q, k, allowed, key_mask, causal):
    """A = allowed ∧ key_mask ∧ [j ≤ i]_causal, broadcastable to (B, H, Tq, Tk)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    A = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device) if allowed is None else allowed
    if key_mask is not None:
        A = A & _bool(key_mask, q)[:, None, None, :]           # (B, 1, 1, Tk)
    if causal:
        A = A & torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril()
    return A


def _zero_rows(out, query_mask):
    if query_mask is None:
        return out
    keep = _bool(query_mask, out)[:, None, :, None]              # (B, 1, Tq, 1)
    return torch.where(keep, out, torch.zeros_like(out))


def sdpa_attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    """softmax(QKᵀ/√D) V by SDPA with a boolean mask; padded query rows set to 0."""
    if fill is not None:
        raise NotImplementedError("SDPA masks by -inf; replacement by a constant is not available")
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=_allowed(q, k, allowed, key_mask, causal))
    return _zero_rows(out, query_mask)


def dense_attention(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
    """The D4 oracle in torch: P_ij = [A_ij] e^{S_ij − m_i} / Σ_{j': A_ij'} e^{S_ij' − m_i}."""
    A = _allowed(q, k, allowed, key_mask, causal)
    # S_ij = q_i · k_j / √D
    S = torch.einsum("bhid,bhjd->bhij", q, k) / q.shape[-1] ** 0.5
    A = A.expand_as(S)
    if fill is not None:
        # replacement masking: disallowed scores become the constant c
        P = torch.softmax(torch.where(A, S, torch.full_like(S, fill)), dim=-1)
    else:
        # m_i = the largest allowed score of row i (0 for a fully masked row), held constant
        m = torch.where(A, S, torch.full_like(S, -float("inf"))).amax(-1, keepdim=True).detach()
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.where(A, torch.exp(torch.where(A, S - m, torch.zeros_like(S))), torch.zeros_like(S))
        s = e.sum(-1, keepdim=True)
        P = e / torch.where(s == 0, torch.ones_like(s), s)
    # o_i = Σ_j P_ij v_j
    return _zero_rows(torch.einsum("bhij,bhjd->bhid", P, v), query_mask)


def sdpa_pattern(mask_fn):
    """SDPA with one of the library's (T, T) patterns, plus the (B, T) padding mask."""
    def candidate(q, k, v, *, causal=False, mask=None, compat=None, **pattern):
        if compat is not None:
            raise NotImplementedError(f"compat={compat!r}: the Keras code's quirks are not SDPA's")
        (size,) = pattern.values()                                 # rate R or neighbours W
        T = q.shape[-2]
        A = torch.as_tensor(mask_fn(T, size, causal=causal), device=q.device)   # (T, T)
        if mask is not None:
            A = A & _bool(mask, q)[:, None, None, :]               # padded keys removed
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=A)
        return _zero_rows(out, mask)                               # padded queries output 0
    candidate.__name__ = f"sdpa_{mask_fn.__name__.replace('_mask', '')}_attention"
    return candidate


def _xfail(op, **why):
    """Strict xfails for the cases with any of the given params set (name -> reason)."""
    return {c.name: why[key] for c in registry.cases(op, TIERS) for key in why if c.params.get(key) is not None}


KERAS = "compat='keras' reproduces the author's Keras code (SPEC §7.5), not SDPA"
FILL = "fill=-1e9 replaces masked scores; SDPA masks them out"

test_sdpa_attention = conformance_test(sdpa_attention, "sparse_attention.attention", TIERS,
                                       adapter="torch", grads=True,
                                       xfail=_xfail("sparse_attention.attention", fill=FILL))
test_dense_attention = conformance_test(dense_attention, "sparse_attention.attention", TIERS,
                                        adapter="torch", grads=True)
test_sdpa_atrous = conformance_test(sdpa_pattern(atrous_mask), "sparse_attention.atrous_attention", TIERS,
                                    adapter="torch", grads=True,
                                    xfail=_xfail("sparse_attention.atrous_attention", compat=KERAS))
test_sdpa_local = conformance_test(sdpa_pattern(local_mask), "sparse_attention.local_attention", TIERS,
                                   adapter="torch", grads=True,
                                   xfail=_xfail("sparse_attention.local_attention", compat=KERAS))
test_sdpa_sparse = conformance_test(sdpa_pattern(sparse_mask), "sparse_attention.sparse_attention", TIERS,
                                    adapter="torch", grads=True,
                                    xfail=_xfail("sparse_attention.sparse_attention", compat=KERAS))


@pytest.mark.parametrize("op, mask_fn", [("atrous_attention", atrous_mask), ("local_attention", local_mask),
                                         ("sparse_attention", sparse_mask)])
def test_sdpa_patterns_in_float32(op, mask_fn):
    report = check(sdpa_pattern(mask_fn), f"sparse_attention.{op}", ("quick", "edge"), adapter="torch",
                   grads=True, dtype="float32")
    failed = {r.case_id.split("[")[1][:-1] for r in report.failures}
    assert failed <= {c for c in _xfail(f"sparse_attention.{op}", compat=KERAS)}, report


def test_sdpa_bfloat16_relative_rule():
    # SDPA in bfloat16 against 2x the error of the oracle run with bfloat16 inputs and outputs
    report = check(sdpa_attention, "sparse_attention.attention", "quick", adapter="torch", grads=True,
                   dtype="bfloat16", rule="relative", k=2)
    table = check(sdpa_attention, "sparse_attention.attention", "quick", adapter="torch", grads=True,
                  dtype="bfloat16")
    assert table.passed, table
    assert report.passed, report


def test_plain_minus_1e9_attention_is_diagnosed_as_fill():
    def minus_1e9(q, k, v, allowed=None, *, key_mask=None, query_mask=None, causal=False, fill=None):
        return dense_attention(q, k, v, allowed, key_mask=key_mask, query_mask=query_mask, causal=causal,
                               fill=-1e9)
    d = diagnose(minus_1e9, "sparse_attention.attention", TIERS, adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["fill=-1e9"]


def test_always_causal_pattern_is_diagnosed():
    def always_causal(q, k, v, *, causal=False, mask=None, compat=None, rate):
        return sdpa_pattern(atrous_mask)(q, k, v, causal=True, mask=mask, rate=rate)
    d = diagnose(always_causal, "sparse_attention.atrous_attention", "quick", adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["causal flipped"]
