"""The pattern predicates of kexue_ref._masks against the post's claims (https://kexue.fm/archives/6853) and hand counts."""
import numpy as np
import pytest

from kexue_ref import _masks as mk

SIZES = [(T, R) for T in (1, 2, 3, 5, 8, 13, 16, 37) for R in (1, 2, 3, 4, 7, 9)]


# ---------------------------------------------------------------------------
# Row counts (the post's patterns), from the closed forms and from explicit key sets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("T, R", SIZES)
def test_atrous_row_count_formula(T, R):
    counts = mk.row_counts(mk.atrous_mask(T, R))
    # ⌊(T − 1 − (i mod R)) / R⌋ + 1
    expected = [(T - 1 - (i % R)) // R + 1 for i in range(T)]
    assert counts.tolist() == expected


@pytest.mark.parametrize("T, W", SIZES)
def test_local_row_count_formula(T, W):
    counts = mk.row_counts(mk.local_mask(T, W))
    # min(i, W) + min(T − 1 − i, W) + 1
    assert counts.tolist() == [min(i, W) + min(T - 1 - i, W) + 1 for i in range(T)]
    causal = mk.row_counts(mk.local_mask(T, W, causal=True))
    assert causal.tolist() == [min(i, W) + 1 for i in range(T)]


@pytest.mark.parametrize("T, R", SIZES)
def test_sparse_rows_are_the_union_of_the_key_sets(T, R):
    A = mk.sparse_mask(T, R)
    for i in range(T):
        # the kernel-style iteration: a window range and an arithmetic progression
        keys = set(range(max(0, i - R), min(T, i + R + 1))) | set(range(i % R, T, R))
        assert set(np.flatnonzero(A[i]).tolist()) == keys


def test_mean_sparse_row_count_T37_R4():
    counts = mk.row_counts(mk.sparse_mask(37, 4))
    assert counts.sum() == 553                       # 553 / 37 = 14.9459... (docs/sparse_attention.md)
    assert counts.mean() == pytest.approx(14.9459, abs=5e-5)
    # the rough estimate 2R + 1 + T/R = 18.25 counts the overlap of the two parts twice
    assert 2 * 4 + 1 + 37 / 4 == 18.25 > counts.mean()


# ---------------------------------------------------------------------------
# Identities and the two-layer claim
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_sparse_is_local_union_atrous(causal):
    for T in range(1, 41):
        for R in range(1, 11):
            S = mk.sparse_mask(T, R, causal)
            atrous = mk.atrous_mask(T, R, causal)
            assert np.array_equal(S, mk.local_mask(T, R, causal) | atrous)
            # distance R is a multiple of R, so Local(R − 1) suffices (Local(0) = the diagonal)
            below = (mk.local_mask(T, R - 1, causal) if R >= 2
                     else np.eye(T, dtype=bool))
            assert np.array_equal(S, below | atrous)


def _reach(A, B):
    """Two-layer reachability: i reaches j through some k with A_ik and B_kj."""
    return (A.astype(int) @ B.astype(int)) > 0


def test_local_then_atrous_reaches_everything_when_W_ge_R_minus_1():
    for T in range(1, 40):
        for R in range(1, 9):
            for W in range(max(1, R - 1), R + 2):
                L, A = mk.local_mask(T, W), mk.atrous_mask(T, R)
                assert _reach(L, A).all(), (T, R, W)
                assert _reach(A, L).all(), (T, R, W)
    L, A = mk.local_mask(37, 4), mk.atrous_mask(37, 4)
    assert _reach(L, A).all() and _reach(A, L).all()


def test_two_layers_leave_gaps_when_W_lt_R_minus_1():
    # at the sequence start the window [0, W] holds W + 1 < R residues: some are missed
    for R in range(3, 9):
        W = R - 2
        L, A = mk.local_mask(20, W), mk.atrous_mask(20, R)
        reach = _reach(L, A)
        assert not reach.all()
        assert not reach[0, R - 1]                      # residue R − 1 is not in [0, R − 2]


def test_degenerate_rates():
    T = 9
    full = np.ones((T, T), bool)
    assert np.array_equal(mk.atrous_mask(T, 1), full)
    assert np.array_equal(mk.sparse_mask(T, 1), full)
    for R in (T, T + 3):
        assert np.array_equal(mk.atrous_mask(T, R), np.eye(T, dtype=bool))
    for W in (T - 1, T + 5):
        assert np.array_equal(mk.local_mask(T, W), full)
    assert np.array_equal(mk.sparse_mask(T, T - 1), full)


@pytest.mark.parametrize("fn", [mk.atrous_mask, mk.local_mask, mk.sparse_mask])
def test_causal_is_the_lower_triangle_of_the_pattern(fn):
    for T, R in SIZES:
        assert np.array_equal(fn(T, R, causal=True), fn(T, R) & mk.causal_mask(T))


@pytest.mark.parametrize("fn", [mk.atrous_mask, mk.local_mask, mk.sparse_mask])
def test_bidirectional_patterns_are_symmetric(fn):
    for T, R in SIZES:
        A = fn(T, R)
        assert np.array_equal(A, A.T) and A.diagonal().all()


# ---------------------------------------------------------------------------
# OpenAI's factors and the fixed layout
# ---------------------------------------------------------------------------

def test_openai_factors_are_causal_versions_of_the_post():
    for T, R in SIZES:
        assert np.array_equal(mk.strided_mask(T, R), mk.atrous_mask(T, R, causal=True))
        if R >= 2:
            assert np.array_equal(mk.openai_local_mask(T, R), mk.local_mask(T, R - 1, causal=True))
        assert mk.row_counts(mk.openai_local_mask(T, R)).tolist() == [min(i + 1, R) for i in range(T)]
    assert np.array_equal(mk.openai_local_mask(5, 1), np.eye(5, dtype=bool))


def test_openai_fixed_layout_one_head_by_hand():
    L = mk.openai_fixed_layout(8, 4)
    assert L.shape == (1, 8, 8)
    rows = [np.flatnonzero(r).tolist() for r in L[0]]
    # windows {0..3}, {4..7}; the summary block of every window is its last one (c ≡ 3 mod 4)
    assert rows == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3],
                    [3, 4], [3, 4, 5], [3, 4, 5, 6], [3, 4, 5, 6, 7]]


def test_openai_fixed_layout_rotates_summaries_over_heads():
    L = mk.openai_fixed_layout(8, 4, heads=4, num_verts=2)
    # heads 0, 2 use offset 3 (c ≡ 3 mod 4), heads 1, 3 use offset 2 (c ≡ 2 mod 4)
    assert np.array_equal(L[0], L[2]) and np.array_equal(L[1], L[3])
    assert np.flatnonzero(L[1][6]).tolist() == [2, 4, 5, 6]
    assert np.flatnonzero(L[0][6]).tolist() == [3, 4, 5, 6]
    # vertsize 2: two summary blocks per window, the last two for head 0
    L2 = mk.openai_fixed_layout(8, 4, vertsize=2)
    assert np.flatnonzero(L2[0][7]).tolist() == [2, 3, 4, 5, 6, 7]
    assert np.flatnonzero(L2[0][4]).tolist() == [2, 3, 4]


def test_openai_fixed_layout_is_causal_with_full_diagonal():
    L = mk.openai_fixed_layout(12, 3, heads=3, num_verts=3)
    assert not np.triu(L, 1).any()
    assert all(np.diagonal(h).all() for h in L)


def test_openai_fixed_layout_errors():
    with pytest.raises(ValueError, match="vertsize must divide stride"):
        mk.openai_fixed_layout(8, 4, vertsize=3)
    with pytest.raises(ValueError, match="num_verts must be <= stride // vertsize"):
        mk.openai_fixed_layout(8, 4, heads=6, num_verts=3, vertsize=2)
    with pytest.raises(ValueError, match="heads must be a multiple of num_verts"):
        mk.openai_fixed_layout(8, 4, heads=3, num_verts=2)


# ---------------------------------------------------------------------------
# Token masks and block layouts
# ---------------------------------------------------------------------------

def test_layout_round_trips():
    rng = np.random.default_rng(20190727)
    for T, b in [(12, 4), (13, 4), (7, 3), (5, 8), (6, 1)]:
        A = rng.random((T, T)) < 0.2
        L = mk.mask_to_layout(A, b)
        n = -(-T // b)
        assert L.shape == (n, n)
        covered = mk.layout_to_mask(L, b, T)
        assert (covered | ~A).all()                    # the layout covers every allowed pair
        assert np.array_equal(mk.mask_to_layout(covered, b), L)
        # a block-aligned mask survives exactly
        aligned = mk.layout_to_mask(rng.random((n, n)) < 0.5, b)
        assert np.array_equal(mk.layout_to_mask(mk.mask_to_layout(aligned, b), b), aligned)


def test_layout_any_semantics_and_partial_block():
    A = np.zeros((5, 5), bool)
    A[4, 0] = True                                     # one pair in the partial last row block
    L = mk.mask_to_layout(A, 2)
    assert L.shape == (3, 3)
    assert np.flatnonzero(L).tolist() == [6]           # block (2, 0) only
    assert mk.layout_to_mask(L, 2, 5).sum() == 2       # its tokens (4, 0), (4, 1)


def test_fixed_token_pattern_from_layout():
    block = 2
    L = mk.openai_fixed_layout(4, 2)[0]
    A = mk.layout_to_mask(L, block) & mk.causal_mask(8)
    # query 5 (block 2, window {2, 3}): its own block up to itself, summary block 1
    assert np.flatnonzero(A[5]).tolist() == [2, 3, 4, 5]


def test_key_index_round_trip_and_padding():
    rng = np.random.default_rng(6853)
    A = rng.random((9, 9)) < 0.4
    A[3] = False
    idx = mk.key_index_from_mask(A)
    assert idx.dtype == np.int64 and idx.shape == (9, max(1, A.sum(1).max()))
    assert (idx[3] == -1).all()
    for row, keys in zip(idx, A):
        listed = row[row >= 0]
        assert listed.tolist() == np.flatnonzero(keys).tolist()
        assert (row[len(listed):] == -1).all()
    assert np.array_equal(mk.mask_from_key_index(idx, 9), A)


def test_format_mask():
    assert mk.format_mask(mk.local_mask(3, 1, causal=True), on="x", off="-") == "x - -\nx x -\n- x x"


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: mk.atrous_mask(5, 0), ValueError, "rate must be >= 1"),
    (lambda: mk.local_mask(5, 0), ValueError, "neighbors must be >= 1"),
    (lambda: mk.sparse_mask(0, 2), ValueError, "T must be >= 1"),
    (lambda: mk.atrous_mask(5, 2.0), TypeError, "rate must be an integer"),
    (lambda: mk.mask_to_layout(np.ones((4, 4)), 2), TypeError, "mask must be a boolean array"),
    (lambda: mk.mask_to_layout(np.ones(4, bool), 2), ValueError, r"mask must have shape \(\.\.\., Tq, Tk\)"),
    (lambda: mk.layout_to_mask(np.ones((2, 2), bool), 2, T=5), ValueError, "T = 5 exceeds"),
    (lambda: mk.mask_from_key_index(np.array([[0, 5]]), 3), ValueError, r"entries must lie in \[-1, 3\)"),
    (lambda: mk.key_index_from_mask(np.ones((2, 2, 2), bool)), ValueError, r"mask must have shape \(T, Tk\)"),
])
def test_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
