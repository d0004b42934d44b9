"""``torch.compile`` (default Inductor backend, CPU) of every public function: same values and
gradients as eager, and the graph breaks we know of (see docs/compile.md).

The catalog (``tests/_public_api.py``) has one case per (public function, variant); a case calls
the function in every mode, so one compile covers a whole mode group. Compiling is the cost, so
the default run compiles a few representative cases and traces (Dynamo only, no code generation)
a few more for graph breaks; ``-m slow`` runs the full matrix.
"""

from __future__ import annotations

import logging
import warnings

import _graph_breaks as graph_breaks
import _public_api as api
import pytest
import torch
import torch._dynamo as dynamo
import torch._inductor.config as inductor_config

CASES = {c.id: c for c in api.all_cases()}

#: Compiled with Inductor in the default run: one per group, cheap to compile.
FAST_COMPILE = (
    "relu",
    "where",
    "take_along_dim",
    "argmax[softsort]",
    "topk[ot]",
    "surrogate.threshold[super]",
)
#: Traced with Dynamo (graph-break count only) in the default run.
FAST_EXPLAIN = (
    "clamp",
    "greater",
    "isclose",
    "logical_xor",
    "narrow",
    "argsort[softsort]",
    "topk[fast_soft_sort]",
    "rank[sorting_network]",
    "rank_st[ot]",
    "sort_st[sorting_network]",
    "heaviside_st[surrogate=super]",
    "soft_mode[straight_through]",
    "SoftTensor",
)

#: Graph breaks that remain in files owned elsewhere: quantile's range check of ``q``
#: (``bool(((q >= 0) & (q <= 1)).all())`` in ``_check_q``).
KNOWN_FILES: dict[str, tuple[str, ...]] = {}


def _allowed_files(case: api.Case) -> tuple[str, ...]:
    base = case.func.removesuffix("_st")
    base = "rank" if case.func == "ranking_st" else base
    files: tuple[str, ...] = KNOWN_FILES.get(base, ())
    return files


def _params(ids: tuple[str, ...] | None) -> list:
    """The named cases (all of them for None), with readable test ids."""
    return [pytest.param(c, id=cid) for cid, c in CASES.items() if ids is None or cid in ids]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._logging.set_logs(dynamo=logging.ERROR)
    dynamo.reset()
    yield
    dynamo.reset()


def _loss(outs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A weighted sum of every differentiable output (weights tell outputs apart)."""
    terms = [(o * (i + 1.0) / len(outs)).sum() for i, o in enumerate(outs) if o.requires_grad]
    return torch.stack(terms).sum()


def _check_compiled_matches_eager(case: api.Case) -> None:
    x = api.make_input().requires_grad_()
    with inductor_config.patch(compile_threads=1, fallback_random=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(1)
        eager = case.fn(x)
        g_eager = torch.autograd.grad(_loss(eager), x)[0]
        compiled = torch.compile(case.fn)
        torch.manual_seed(1)
        out = compiled(x)
        g = torch.autograd.grad(_loss(out), x)[0]
    assert len(out) == len(eager)
    for i, (o, e) in enumerate(zip(out, eager)):
        assert o.dtype == e.dtype and o.shape == e.shape, f"output {i}"
        if case.stochastic:  # Bernoulli spikes: the same draws are not guaranteed
            assert torch.isfinite(o).all()
        else:
            torch.testing.assert_close(o, e, rtol=1e-9, atol=1e-10, msg=f"output {i}")
    torch.testing.assert_close(g, g_eager, rtol=1e-8, atol=1e-10)


def _check_graph_breaks(case: api.Case) -> graph_breaks.Breaks:
    b = graph_breaks.explain_case(case)
    allowed = _allowed_files(case)
    if not allowed:
        assert b.breaks == 0, f"{case.id}: unexpected graph breaks: {b.reasons}"
    for reason in b.reasons:
        assert any(f in reason for f in allowed), f"{case.id}: unexpected graph break: {reason}"
    return b


@pytest.mark.parametrize("case", _params(FAST_COMPILE))
def test_compile_matches_eager(case: api.Case) -> None:
    _check_compiled_matches_eager(case)


@pytest.mark.parametrize("case", _params(FAST_COMPILE + FAST_EXPLAIN))
def test_graph_breaks(case: api.Case) -> None:
    _check_graph_breaks(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(None))
def test_compile_matches_eager_all(case: api.Case) -> None:
    _check_compiled_matches_eager(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(None))
def test_graph_breaks_all(case: api.Case) -> None:
    _check_graph_breaks(case)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_fast_soft_sort_backends_trace_fullgraph(backend: str) -> None:
    """Both PAV kernels are ``torch.library`` custom ops: opaque to Dynamo, no graph break."""
    from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss

    old = fss.BACKEND
    fss.set_backend(backend)
    try:
        case = CASES["sort[fast_soft_sort]"]
        assert graph_breaks.explain_case(case).breaks == 0
    finally:
        fss.set_backend(old)


def test_tensor_softness_traces_without_break() -> None:
    """A tensor softness is range-checked eagerly but not while tracing (no ``.item()``)."""
    case = api.tensor_softness_case()
    assert graph_breaks.explain_case(case).breaks == 0


def test_catalog_covers_public_api() -> None:
    assert api.public_names() <= {c.func for c in CASES.values()}


# ----------------------------------------------------------------------------------------------
# Inductor issues worked around, and SoftTensor inputs (see docs/compile.md)
# ----------------------------------------------------------------------------------------------


def _compiled_and_eager(fn, x: torch.Tensor, fullgraph: bool = False) -> tuple[list, list]:
    """``fn(x)`` eager and compiled (Inductor), plus the gradients of a weighted sum of the
    differentiable outputs: ``([outs..., grad], [outs..., grad])``."""

    def run(f) -> list:
        outs = list(f(x))
        terms = [(o * (i + 1.0)).sum() for i, o in enumerate(outs) if o.requires_grad]
        if not terms:  # compared (and reported) with the outputs' requires_grad
            return outs + [torch.zeros_like(x)]
        loss = torch.stack([t.as_subclass(torch.Tensor) for t in terms]).sum()
        return outs + [torch.autograd.grad(loss, x, retain_graph=True)[0]]

    with inductor_config.patch(compile_threads=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = run(fn)
        compiled = run(torch.compile(fn, fullgraph=fullgraph))
    return eager, compiled


def _assert_same(eager: list, compiled: list) -> None:
    assert len(eager) == len(compiled)
    for i, (e, c) in enumerate(zip(eager, compiled)):
        assert type(e) is type(c) and e.requires_grad == c.requires_grad, f"output {i}"
        e, c = e.as_subclass(torch.Tensor), c.as_subclass(torch.Tensor)
        torch.testing.assert_close(c, e, rtol=1e-9, atol=1e-10, equal_nan=True, msg=f"output {i}")


@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_hard_and_soft_sorts_in_one_graph(method: str) -> None:
    """The hard sort's gradient is a scatter into zeros; Inductor's CPU backend could read its
    result before writing it when soft sorts share the graph (it lost the hard term)."""
    import softtorch as st

    def fn(x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for mode in ("hard", "smooth", "c0"):
            r = st.sort(x, mode=mode, method=method)
            outs += [r.values, r.indices]
        return outs

    _assert_same(*_compiled_and_eager(fn, api.make_input().requires_grad_()))


def test_hard_and_straight_through_in_one_graph() -> None:
    """A hard result and a straight-through result of the same hard tensor: Inductor returned
    them as one tensor and the straight-through output lost its gradient."""
    import softtorch as st

    def fn(x: torch.Tensor) -> list[torch.Tensor]:
        hard = st.argsort(x, mode="hard", method="neuralsort")
        return [hard, st.argsort_st(x, mode="smooth", method="neuralsort")]

    eager, compiled = _compiled_and_eager(fn, api.make_input().requires_grad_())
    assert compiled[1].requires_grad
    _assert_same(eager, compiled)


def test_hard_quantile_interpolations_compile() -> None:
    """Hard ``quantile`` while tracing (torch's algorithm on scatter-free sorted values) equals
    ``torch.quantile``, NaN rows included."""
    import softtorch as st

    q = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)

    def fn(x: torch.Tensor) -> list[torch.Tensor]:
        xn = torch.cat((x, torch.full_like(x[:1], float("nan"))))
        interps = ("linear", "lower", "higher", "nearest", "midpoint")
        return [st.quantile(xn, q, dim=-1, mode="hard", interpolation=i) for i in interps]

    _assert_same(*_compiled_and_eager(fn, api.make_input().requires_grad_()))


def test_soft_tensor_input_fullgraph() -> None:
    """A SoftTensor carrier as the compiled function's input: one graph, eager values and
    gradients, SoftTensor results with their settings and roles (exact SoftBool masks, SoftIndex
    integers with their soft index)."""
    import torch.nn.functional as F

    import softtorch as st

    def fn(s: torch.Tensor) -> list[torch.Tensor]:
        y = 0.5 * s.roll(1, -1)
        m = s > y
        i = s.argmax(-1, keepdim=True)
        return [torch.sort(s, dim=-1).values, m, torch.where(m, s, y), torch.gather(s, -1, i),
                F.relu(s), i]  # fmt: skip

    x = api.make_input().requires_grad_()
    s = st.soft(x, mode="smooth", softness=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert dynamo.explain(fn)(s).graph_break_count == 0
        eager, compiled = fn(s), torch.compile(fn, fullgraph=True)(s)
    for e, c in zip(eager, compiled):
        assert isinstance(c, st.SoftTensor) and c.config == e.config
        assert c.is_soft_bool == e.is_soft_bool and c.hard().dtype == e.hard().dtype
        # floating results: the soft values (a compiled graph carries no exact shadow)
        shown = (lambda t: t.hard()) if not e.is_floating_point() or e.is_soft_bool else (
            lambda t: t.as_subclass(torch.Tensor))  # fmt: skip
        torch.testing.assert_close(shown(c), shown(e), rtol=1e-9, atol=1e-10)
        if e.soft_index is not None:
            torch.testing.assert_close(c.soft_index, e.soft_index, rtol=1e-9, atol=1e-10)
    grads = [
        torch.autograd.grad(sum((o.as_subclass(torch.Tensor) * k).sum()
                                for k, o in enumerate(outs) if o.requires_grad), x)[0]
        for outs in (eager, compiled)
    ]  # fmt: skip
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-8, atol=1e-10)
