"""Worked example: sparse attention (https://kexue.fm/archives/6853) in PyTorch.

``torch.nn.functional.scaled_dot_product_attention`` is checked with boolean patterns built
here from the post's definitions (True = may attend, SDPA's ``attn_mask`` convention; with
d = i − j: local(W) |d| ≤ W, atrous(R) d mod R = 0, sparse(R) their union, causal d ≥ 0),
never from the library's own mask code, so a wrong predicate there cannot pass unnoticed. Every
pattern of the post is checked, values and gradients w.r.t. q, k and v, in float64 and float32,
and in bfloat16 under the low-precision rule. A dense port of the D4 oracle is checked too.
SDPA returns 0 for a fully masked row on the CPU, as D4 does. The oracle's ``compat="keras"``
cases (the author's Keras code) and its ``fill=-1e9`` replacement masking are not SDPA's
behaviour: the candidates refuse them with ``NotImplementedError``, and the tests assert that
refusal (not an expected failure).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kexue_ref import registry  # noqa: E402
from kexue_ref.testing import check  # noqa: E402
from kexue_ref.testing.diagnose import diagnose  # noqa: E402
from kexue_ref.testing.pytest_plugin import check_case, conformance_test  # noqa: E402

from ._support import call_on_case, conformance, names_with  # noqa: E402

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


def post_pattern(kind, T, size, causal=False, device=None):
    r"""(T, T) bool pattern of the post (True = may attend), from its definition, with d = i − j:

    .. math:: \text{local}(W): |d| \le W, \quad \text{atrous}(R): d \bmod R = 0, \quad
              \text{sparse}(R): |d| \le R \;\lor\; d \bmod R = 0, \quad \text{causal}: d \ge 0
    """
    i = torch.arange(T, device=device)
    d = i[:, None] - i[None, :]
    near = d.abs() <= size
    # torch's % takes the divisor's sign, so d mod R = 0 exactly when R divides d
    far = d % size == 0
    A = {"local": near, "atrous": far, "sparse": near | far}[kind]
    return A & (d >= 0) if causal else A


def sdpa_pattern(kind):
    """SDPA with one of the post's (T, T) patterns, plus the (B, T) padding mask."""
    def candidate(q, k, v, *, causal=False, mask=None, compat=None, **pattern):
        if compat is not None:
            raise NotImplementedError(f"compat={compat!r}: the Keras code's quirks are not SDPA's")
        (size,) = pattern.values()                                 # rate R or neighbours W
        A = post_pattern(kind, q.shape[-2], size, causal, q.device)   # (T, T)
        if mask is not None:
            A = A & _bool(mask, q)[:, None, None, :]               # padded keys removed
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=A)
        return _zero_rows(out, mask)                               # padded queries output 0
    candidate.__name__ = f"sdpa_{kind}_attention"
    return candidate


KERAS = (NotImplementedError, r"compat='keras': the Keras code's quirks are not SDPA's")
FILL = (NotImplementedError, "SDPA masks by -inf; replacement by a constant is not available")
OPS = {"atrous": "sparse_attention.atrous_attention", "local": "sparse_attention.local_attention",
       "sparse": "sparse_attention.sparse_attention"}


def _refused(op, why, **params):
    """{case name: (exception, message)} for the cases of ``op`` with any of ``params`` set."""
    return {name: why for name in names_with(op, TIERS, **params)}


test_sdpa_attention = conformance(sdpa_attention, "sparse_attention.attention", TIERS, adapter="torch",
                                  grads=True, refuses=_refused("sparse_attention.attention", FILL, fill="*"))
test_dense_attention = conformance_test(dense_attention, "sparse_attention.attention", TIERS,
                                        adapter="torch", grads=True)
test_sdpa_atrous = conformance(sdpa_pattern("atrous"), OPS["atrous"], TIERS, adapter="torch", grads=True,
                               refuses=_refused(OPS["atrous"], KERAS, compat=("keras",)))
test_sdpa_local = conformance(sdpa_pattern("local"), OPS["local"], TIERS, adapter="torch", grads=True,
                              refuses=_refused(OPS["local"], KERAS, compat=("keras",)))
test_sdpa_sparse = conformance(sdpa_pattern("sparse"), OPS["sparse"], TIERS, adapter="torch", grads=True,
                               refuses=_refused(OPS["sparse"], KERAS, compat=("keras",)))


def test_refusals_are_the_quirk_cases():
    """The refused cases are exactly the ones the registry names as a peer's quirk (and some exist)."""
    for op, why, params in [("sparse_attention.attention", FILL, {"fill": "*"})] + [
            (OPS[kind], KERAS, {"compat": ("keras",)}) for kind in OPS]:
        refused = set(_refused(op, why, **params))
        quirks = {c.name for c in registry.cases(op, TIERS) if c.quirk}
        assert refused and refused == quirks, op


def test_post_pattern_by_hand():
    """The candidates' own patterns, judged: rows counted by hand for T = 10."""
    # local(2), row 5: j ∈ {3, …, 7}; row 0: {0, 1, 2}
    A = post_pattern("local", 10, 2)
    assert torch.nonzero(A[5]).flatten().tolist() == [3, 4, 5, 6, 7] and int(A[0].sum()) == 3
    # atrous(3), row 4: {1, 4, 7}; causal: {1, 4}
    assert torch.nonzero(post_pattern("atrous", 10, 3)[4]).flatten().tolist() == [1, 4, 7]
    assert torch.nonzero(post_pattern("atrous", 10, 3, causal=True)[4]).flatten().tolist() == [1, 4]
    # sparse(3), row 9: |9 − j| ≤ 3 gives {6, …, 9}, 3 | 9 − j adds {0, 3}
    assert torch.nonzero(post_pattern("sparse", 10, 3)[9]).flatten().tolist() == [0, 3, 6, 7, 8, 9]


def test_a_wrong_pattern_is_caught():
    """The check is not fooled by these candidates: a window one too wide fails local attention."""
    def wide(q, k, v, *, causal=False, mask=None, compat=None, neighbors):
        return sdpa_pattern("local")(q, k, v, causal=causal, mask=mask, neighbors=neighbors + 1)
    report = check(wide, OPS["local"], "quick", adapter="torch")
    assert not report.passed


def test_refusal_is_the_candidates_own_error():
    """A refused case raises the candidate's NotImplementedError when called directly."""
    case = next(c for c in registry.cases(OPS["atrous"], TIERS) if c.params.get("compat") == "keras")
    with pytest.raises(NotImplementedError, match="compat='keras'"):
        call_on_case(sdpa_pattern("atrous"), case, "torch")


@pytest.mark.parametrize("kind", list(OPS))
def test_sdpa_patterns_in_float32(kind):
    """float32, every post-semantics case (the refused quirk cases left out) within the float32 table."""
    cases = [c for c in registry.cases(OPS[kind], ("quick", "edge")) if not c.quirk]
    assert cases
    for case in cases:
        check_case(sdpa_pattern(kind), case, adapter="torch", grads=True, dtype="float32")


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
        return sdpa_pattern("atrous")(q, k, v, causal=True, mask=mask, rate=rate)
    d = diagnose(always_causal, "sparse_attention.atrous_attention", "quick", adapter="torch", grads=True)
    assert [m.convention.label for m in d.matches] == ["causal flipped"]
