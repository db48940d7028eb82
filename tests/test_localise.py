"""Localisation: a structural bug is named by *where* its error lives.

Every candidate here is written independently of the oracle (its own NumPy masks and loops,
never ``kexue_ref._masks``), carries one deliberate, realistic bug, and the test asserts that
:func:`localise` names the structure that the bug's arithmetic implies (which rows, keys,
levels or time steps it can touch), worked out by hand in each test's comment.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import getval

from kexue_ref import registry
from kexue_ref.testing._check import autograd_vjp, make_cotangents, reference_grads, reference_outputs
from kexue_ref.testing.localise import axis_names, localise, mismatch_mask

VTOL = (1e-12, 1e-13)      # the float64 value tolerance of the published table
GTOL = (1e-9, 1e-10)       # the float64 gradient tolerance


# --- an independent dense attention: scores, our own boolean mask, a zero-safe softmax ------

def dense_attention(q, k, v, allow, query_valid=None):
    """softmax(q kᵀ/√D) v over the True entries of ``allow`` (B|1, H|1, T, T); rows with no
    allowed key and invalid queries give 0. Traceable by autograd."""
    s = anp.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(q.shape[-1])
    # the row maximum over allowed keys only, held constant (the shift cancels in the
    # softmax); a fully masked row uses 0 (it is zeroed below)
    m = np.max(np.where(allow, getval(s), -1e300), axis=-1, keepdims=True)
    m = np.where(np.any(allow, axis=-1, keepdims=True), m, 0.0)
    p = anp.where(allow, anp.exp(anp.where(allow, s, m) - m), 0.0)
    z = anp.sum(p, axis=-1, keepdims=True)
    out = anp.einsum("bhij,bhje->bhie", p / anp.where(z > 0, z, 1.0), v)
    if query_valid is not None:
        out = out * query_valid[:, None, :, None]
    return out


def seq_masks(mask, B, T):
    """(key mask (B, 1, 1, T), query mask (B, T)) from an optional nested-list sequence mask."""
    m = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    return m[:, None, None, :], m.astype(float)


def local_wide(q, k, v, neighbors, causal=False, mask=None, compat=None):
    """Local attention whose window is one too wide: |i − j| ≤ W + 1 (the bug)."""
    B, _, T, _ = q.shape
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allow = np.abs(i - j) <= neighbors + 1
    if causal:
        allow = allow & (j <= i)
    km, qm = seq_masks(mask, B, T)
    return dense_attention(q, k, v, allow & km, qm)


def local_strict_causal(q, k, v, neighbors, causal=False, mask=None, compat=None):
    """Local attention whose causal mask is j < i, excluding the diagonal (the bug)."""
    B, _, T, _ = q.shape
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allow = np.abs(i - j) <= neighbors
    if causal:
        allow = allow & (j < i)
    km, qm = seq_masks(mask, B, T)
    return dense_attention(q, k, v, allow & km, qm)


def local_right_pad_unmasked(q, k, v, neighbors, causal=False, mask=None, compat=None):
    """Local attention by zero-padding the keys on the right, forgetting to mask the padding."""
    B, H, T, D = q.shape
    W = neighbors
    pad = ((0, 0), (0, 0), (0, W), (0, 0))
    kp, vp = np.pad(k, pad), np.pad(v, pad)
    i, j = np.arange(T)[:, None], np.arange(T + W)[None, :]
    # the window reaches W slots past the end; the padded slots (j ≥ T) are not removed
    allow = np.abs(i - j) <= W
    return dense_attention(q, kp, vp, allow[None, None])


def atrous_reshape_unmasked(q, k, v, rate, causal=False, mask=None, compat=None):
    """Atrous attention by reshaping into R interleaved groups, T padded to a multiple of R
    with zero tokens that are attended (the bug: the last partial group is not masked)."""
    B, H, T, D = q.shape
    R = rate
    N = -(-T // R)
    pad = ((0, 0), (0, 0), (0, N * R - T), (0, 0))
    # position t = n·R + r goes to group r, place n: (B, H, N, R, ·) -> (B, H, R, N, ·)
    grp = [np.swapaxes(np.pad(x, pad).reshape(B, H, N, R, -1), 2, 3) for x in (q, k, v)]
    n_i, n_j = np.arange(N)[:, None], np.arange(N)[None, :]
    allow = (n_j <= n_i) if causal else np.ones((N, N), bool)
    out = np.stack([dense_attention(grp[0][:, :, r], grp[1][:, :, r], grp[2][:, :, r], allow)
                    for r in range(R)], axis=2)
    return np.swapaxes(out, 2, 3).reshape(B, H, N * R, -1)[:, :, :T]


def attention_minus_inf(q, k, v, allowed=None, key_mask=None, query_mask=None, causal=False,
                        fill=None, uniform=False):
    """Dense attention masking with -inf (NaN on fully masked rows), or with -1e9 when
    ``uniform`` (a fully masked row is then the average of v)."""
    B, H, T, D = q.shape
    Tk = k.shape[2]
    allow = np.ones((1, 1, T, Tk), bool) if allowed is None else np.asarray(allowed, bool)
    if key_mask is not None:
        allow = allow & np.asarray(key_mask, bool)[:, None, None, :]
    s = np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(D)
    s = np.where(allow, s, -1e9 if uniform else -np.inf)
    with np.errstate(invalid="ignore"):
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        return np.einsum("bhij,bhje->bhie", p / p.sum(axis=-1, keepdims=True), v)


# --- helpers ---------------------------------------------------------------------------------

def quick_post_cases(op):
    """The quick cases of an op that follow the post (no peer quirk)."""
    return [c for c in registry.cases(op, "quick") if not c.quirk]


def value_lines(case, candidate, member=0, **extra):
    """localise() of one value member of a case, the candidate run on the case's inputs."""
    spec = case.spec
    expected = reference_outputs(case)[member]
    got = spec.as_outputs(spec.call(candidate, case))[member]
    got = np.asarray(got, dtype=float)
    what = f"value {spec.outputs[member]}"
    return localise(case, what, got, expected, mismatch_mask(got, expected, *VTOL), **extra)


def grad_lines(case, candidate, name):
    """localise() of the candidate's autograd VJP w.r.t. ``name`` with the case's cotangent."""
    spec = case.spec
    cot = make_cotangents(case, reference_outputs(case))
    expected = reference_grads(case, cot)[name]
    got = np.asarray(autograd_vjp(candidate, spec, case.inputs, case.params, cot)[spec.diff.index(name)])
    return localise(case, f"grad {name}", got, expected, mismatch_mask(got, expected, *GTOL))


# --- (1) an off-by-one local window ----------------------------------------------------------

@pytest.mark.parametrize("case", quick_post_cases("sparse_attention.local_attention"), ids=lambda c: c.name)
def test_off_by_one_window_is_named_as_keys_at_distance_w_plus_1(case):
    W = case.params["neighbors"]
    for lines in (value_lines(case, local_wide), grad_lines(case, local_wide, "k"),
                  grad_lines(case, local_wide, "v")):
        # every output row sees the extra keys i ± (W + 1) (T = 12, 13 > W + 1 = 4), so only
        # the re-run oracle with the wider window can name it, and it must match exactly
        assert f"keys at distance W+1 = {W + 1} from the query" in lines[0], lines
        assert "window one too wide" in lines[0]


# --- (2) a causal mask that excludes the diagonal --------------------------------------------

def test_causal_mask_without_the_diagonal_is_named():
    (case,) = [c for c in quick_post_cases("sparse_attention.local_attention") if c.params.get("causal")]
    lines = value_lines(case, local_strict_causal)
    assert lines[0].startswith("the candidate matches the oracle without the diagonal key j = i")
    assert "a causal mask j < i instead of j ≤ i" in lines[0]
    glines = grad_lines(case, local_strict_causal, "q")
    assert "without the diagonal key" in glines[0]


def test_causal_mask_without_the_diagonal_on_the_dense_op():
    case = [c for c in registry.cases("sparse_attention.attention") if c.name == "T6-causal"][0]

    def strict(q, k, v, allowed=None, causal=False, **kw):
        T = q.shape[2]
        allow = np.asarray(allowed, bool) & (np.arange(T)[None, :] < np.arange(T)[:, None])
        return dense_attention(q, k, v, allow)

    assert "j < i instead of j ≤ i" in value_lines(case, strict)[0]


# --- (3) the last partial group, and the last W rows --------------------------------------

def test_atrous_port_that_attends_the_padding_of_the_last_group():
    case = [c for c in quick_post_cases("sparse_attention.atrous_attention")
            if c.name == "B2-H2-T13-rate3"][0]
    lines = value_lines(case, atrous_reshape_unmasked)
    # T = 13, R = 3: padded to 15; the zero tokens 13, 14 sit in groups 13 mod 3 = 1 and
    # 14 mod 3 = 2, so exactly the queries with i mod 3 ∈ {1, 2} see an extra key
    assert "zero-padded to a multiple of R (15)" in lines[0]
    assert "last partial group (T mod R = 1)" in lines[0]
    assert "only query positions i with i mod R ∈ {1, 2} (R = 3)" in lines


def test_right_edge_padding_unmasked_touches_only_the_last_w_rows():
    case = [c for c in quick_post_cases("sparse_attention.local_attention")
            if c.name == "B2-H2-T13-neighbors3"][0]
    lines = value_lines(case, local_right_pad_unmasked)
    # a padded slot j ≥ T = 13 is within W = 3 of i only for i ≥ 13 − 3 = 10
    assert "only query positions ≥ T−3 = 10 (the last 3 = W)" in lines


# --- (4) ON-LSTM level 0, DGCNN last time step ----------------------------------------------

def master_gates_loop(a_f, a_i, master_input="su", chunk=1):
    """The master gates with hand-written cumulative sums; the right-to-left loop of the
    master input gate stops at level 1 (``range(L - 2, 0, -1)``), so level 0 keeps its 0."""
    def softmax(a):
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    pf, pi = softmax(np.asarray(a_f)), softmax(np.asarray(a_i))
    L = pf.shape[-1]
    f = np.cumsum(pf, axis=-1)
    i = np.zeros_like(pi)
    extra = 0 if master_input == "su" else 1          # paper: Σ_{j > k}, su: Σ_{j ≥ k}
    i[..., L - 1] = pi[..., L - 1] if extra == 0 else 0.0
    for lev in range(L - 2, 0, -1):                   # the bug: should run down to 0
        i[..., lev] = i[..., lev + 1] + pi[..., lev + extra]
    return np.repeat(f, chunk, axis=-1), np.repeat(i, chunk, axis=-1)


@pytest.mark.parametrize("name", ["su-B2-L5", "paper-B2-L5", "su-L4-chunk3"])
def test_on_lstm_master_input_gate_wrong_only_at_level_0(name):
    case = [c for c in registry.cases("on_lstm.master_gates", ("quick", "full")) if c.name == name][0]
    assert value_lines(case, master_gates_loop, member=0) == []        # f_master is right
    lines = value_lines(case, master_gates_loop, member=1)
    C = case.params.get("chunk", 1)
    # only ĩ_0 is left unset; with chunk C it is repeated over units 0 … C − 1
    expected = "only level 0" if C == 1 else f"only level 0 (units 0, 1, 2; {C} units a level)"
    assert expected in lines, lines


def conv_loop_short(x, w, b=None, dilation=1):
    """'same' dilated convolution by an explicit loop over t, whose bound stops at T − 2."""
    B, T, _ = x.shape
    k = w.shape[0]
    left = (k - 1) * dilation // 2
    out = np.zeros((B, T, w.shape[2]))
    for t in range(T - 1):                            # the bug: range(T)
        for j in range(k):
            s = t + j * dilation - left
            if 0 <= s < T:
                out[:, t] += x[:, s] @ w[j]
        out[:, t] += 0.0 if b is None else b
    return out


@pytest.mark.parametrize("case", registry.cases("dgcnn.dilated_conv1d", "quick"), ids=lambda c: c.name)
def test_dgcnn_conv_wrong_only_at_the_last_time_step(case):
    T = case.inputs["x"].shape[1]
    lines = value_lines(case, conv_loop_short)
    assert f"only the last time step (time step {T - 1} = T−1)" in lines, lines


# --- (5) fully masked rows -------------------------------------------------------------------

def test_nan_on_fully_masked_rows_is_named():
    case = [c for c in registry.cases("sparse_attention.attention") if c.name == "B2-key-mask-fully-masked"][0]
    lines = value_lines(case, attention_minus_inf)
    # batch 0 has no valid key: its 5 rows (of B·H·T = 10) are fully masked, softmax of
    # all −inf is 0/0
    assert "only fully masked rows (5 of 10 query rows); the candidate returns NaN there" in lines[0]
    assert "only batch 0" in lines


def test_uniform_average_on_fully_masked_rows_is_named():
    case = [c for c in registry.cases("sparse_attention.attention") if c.name == "B2-key-mask-fully-masked"][0]
    lines = value_lines(case, lambda *a, **kw: attention_minus_inf(*a, uniform=True, **kw))
    # every score of a fully masked row is −1e9: softmax is uniform, the row is mean_j v_j
    assert any("only fully masked rows" in ln and "uniform average of v" in ln for ln in lines), lines


def test_masked_softmax_nan_rows():
    case = [c for c in registry.cases("numerics.masked_softmax", "edge") if c.name == "all-masked"][0]

    def minus_inf(x, mask, axis=-1, fill=None):
        s = np.where(mask, x, -np.inf)
        with np.errstate(invalid="ignore"):
            e = np.exp(s - s.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)

    lines = value_lines(case, minus_inf)
    # both rows of this case are fully masked: the class is every row, still named
    assert lines[0] == "fully masked rows (all 2); the candidate returns NaN there (the post: 0)"


# --- (6) unstructured noise gets no structural label ----------------------------------------

STRUCTURAL = ("only", "matches the oracle", "grows", "distance", "offset", "factor", "shifted",
              "transposed", "level", "last")


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_noise_everywhere_is_not_given_a_structure(fraction):
    case = quick_post_cases("sparse_attention.local_attention")[0]
    e = reference_outputs(case)[0]
    rng = np.random.default_rng(12)
    hit = rng.random(e.shape) < fraction
    a = e + np.where(hit, 1e-6 * rng.standard_normal(e.shape), 0.0)
    bad = mismatch_mask(a, e, *VTOL)
    lines = localise(case, "value out", a, e, bad)
    assert len(lines) == 1 and not any(w in lines[0] for w in STRUCTURAL), lines
    if fraction == 1.0:
        assert lines == [f"all entries ({e.size}/{e.size}): no structure along batch, head, "
                         "query position, feature"]
    else:
        assert lines[0].startswith(f"scattered: {int(bad.sum())}/{e.size} entries")


# --- the generic hypotheses and the axis table ----------------------------------------------

def test_generic_offset_factor_sign_and_shift():
    case = [c for c in registry.cases("numerics.softmax") if c.name == "n5"][0]
    e = reference_outputs(case)[0]

    def first(a):
        return localise(case, "value out", a, e, mismatch_mask(a, e, *VTOL))[0]

    assert first(e + 0.25) == "the candidate is the oracle +0.25 everywhere (a constant offset)"
    assert first(-e) == "the candidate is −1 × the oracle everywhere (a flipped sign)"
    assert first(3.0 * e) == "the candidate is 3 × the oracle everywhere (a constant factor)"
    # entry i holds the oracle's entry i − 1 (np.roll: the first holds the last)
    assert first(np.roll(e, 1)) == ("the candidate's position i holds the oracle's position "
                                    "i − 1 (shifted by one)")


def test_error_growing_with_the_position():
    case = quick_post_cases("sparse_attention.local_attention")[0]
    e = reference_outputs(case)[0]
    T = e.shape[2]
    # an error 1e-6·(t + 1)² along the query axis: rank correlation 1, last/first quarter ≫ 10
    a = e + 1e-6 * ((np.arange(T) + 1.0) ** 2)[None, None, :, None]
    lines = localise(case, "value out", a, e, mismatch_mask(a, e, *VTOL))
    assert any(ln.startswith("the error grows with the query position") for ln in lines), lines


def test_axis_table():
    local = quick_post_cases("sparse_attention.local_attention")[0]
    assert axis_names(local, "value out", 4) == ["batch", "head", "query", "feature"]
    assert axis_names(local, "grad v", 4) == ["batch", "head", "key", "feature"]
    assert axis_names(local, "value out", 3) is None                 # a rank the table lacks
    cell = registry.cases("on_lstm.cell")[0]
    assert axis_names(cell, "value h", 2) == ["batch", "unit"]
    assert axis_names(cell, "value f_master", 2) == ["batch", "level"]
    assert axis_names(registry.cases("smoothing.smooth_max")[0], "value out", 1) is None


# --- the judge judged: nothing to localise, bad input ---------------------------------------

def test_no_bad_entry_gives_no_line_and_bad_input_is_refused():
    case = [c for c in registry.cases("numerics.softmax") if c.name == "n5"][0]
    e = reference_outputs(case)[0]
    ok = np.zeros(e.shape, bool)
    assert localise(case, "value out", e, e, ok) == []
    with pytest.raises(TypeError, match="case must be a kexue_ref.registry.Case"):
        localise("numerics.softmax", "value out", e, e, ok)
    with pytest.raises(ValueError, match="bad of shape"):
        localise(case, "value out", e, e, ok[..., :1])
    with pytest.raises(TypeError, match="bad must be a boolean array"):
        localise(case, "value out", e, e, ok.astype(int))
    with pytest.raises(ValueError, match="actual of shape"):
        localise(case, "value out", e[..., :1], e, ok)
    with pytest.raises(TypeError, match="what must be a str"):
        localise(case, 3, e, e, ok)
    with pytest.raises(ValueError, match="max_lines"):
        localise(case, "value out", e, e, ok, max_lines=0)
