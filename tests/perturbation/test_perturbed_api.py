"""``perturbed`` as an autograd node: composition, tuple outputs, batched / looped / vmap
evaluation, generator reproducibility, soft_mode outside and inside, torch.compile, errors."""

from __future__ import annotations

import math

import pytest
import torch

import softtorch
from softtorch.perturbation import perturbed

from ._closed_forms import Phi, heaviside, phi


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def branchy(x: torch.Tensor) -> torch.Tensor:
    """Scalar Python control flow: invisible to autograd and to soft_mode."""
    if x.item() > 0:
        return x * 0 + 1.0
    return x * 0


def grad_of(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(y.sum(), x)[0]


def test_python_branch_gets_a_gradient() -> None:
    x = torch.tensor(0.2, requires_grad=True)
    assert grad_of(branchy(x), x) == 0  # plain autograd: zero
    y = perturbed(branchy, softness=0.5, samples=2000, generator=gen())(x)
    g = grad_of(y, x)
    assert abs(float(y.detach()) - float(Phi(torch.tensor(0.4)))) < 0.05
    assert abs(float(g) - float(phi(torch.tensor(0.4)) / 0.5)) < 0.1


def test_looped_batched_and_vmap_agree_with_same_seed() -> None:
    x = torch.tensor([0.3, -0.1], requires_grad=True)
    kw = dict(softness=0.3, samples=64)

    def elementwise(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > 0, t * t, -t)

    looped = perturbed(elementwise, generator=gen(), **kw)(x)
    batched = perturbed(elementwise, generator=gen(), batched=True, **kw)(x)
    vmapped = perturbed(elementwise, generator=gen(), vmap=True, **kw)(x)
    g_looped = grad_of(looped, x)
    for other in (batched, vmapped):
        torch.testing.assert_close(other, looped)
        torch.testing.assert_close(grad_of(other, x), g_looped)


def test_generator_reproducible_values_and_gradients() -> None:
    x = torch.tensor([0.3, -0.2, 1.0], requires_grad=True)
    f = lambda t: heaviside(t).sum()  # noqa: E731
    runs = [perturbed(f, samples=50, batched=False, generator=gen(7))(x) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    g0 = grad_of(runs[0], x)
    assert torch.equal(g0, grad_of(runs[1], x))
    other = perturbed(f, samples=50, generator=gen(8))(x)
    assert not torch.equal(grad_of(other, x), g0)


def test_node_in_a_larger_graph_chain_rule() -> None:
    w = torch.tensor([0.4, -0.3], requires_grad=True)
    a = torch.tensor([2.0, 3.0])
    smooth = lambda g: perturbed(heaviside, samples=40, batched=True, generator=g)  # noqa: E731
    # loss = 3 * sum(f_s(a * w)) + w.sum(); chain rule: dL/dw = 3 a * (df_s/dx at a*w) + 1
    x = (a * w).detach().requires_grad_()
    inner = grad_of(smooth(gen(1))(x), x)
    loss = 3 * smooth(gen(1))(a * w).sum() + w.sum()
    torch.testing.assert_close(grad_of(loss, w), 3 * a * inner + 1)


def test_tuple_outputs_are_linear_in_the_incoming_gradients() -> None:
    x = torch.tensor(0.1, requires_grad=True)
    kw = dict(samples=30, batched=True)
    y1, y2 = perturbed(lambda t: (heaviside(t), torch.relu(t)), generator=gen(), **kw)(x)
    g_tuple = torch.autograd.grad(2 * y1 + 5 * y2, x)[0]
    g1 = grad_of(perturbed(heaviside, generator=gen(), **kw)(x), x)
    g2 = grad_of(perturbed(torch.relu, generator=gen(), **kw)(x), x)
    torch.testing.assert_close(g_tuple, 2 * g1 + 5 * g2)


def test_multiple_inputs_and_argnums() -> None:
    a = torch.tensor(0.2, requires_grad=True)
    b = torch.tensor(-0.1, requires_grad=True)
    f = lambda u, v: heaviside(u - v)  # noqa: E731  smoothing: Phi((a - b) / (sqrt(2) s))
    y = perturbed(f, softness=0.5, samples=20000, batched=True, generator=gen())(a, b)
    ga, gb = torch.autograd.grad(y, (a, b))
    d = torch.tensor(0.3 / (math.sqrt(2) * 0.5))
    assert abs(float(y.detach()) - float(Phi(d))) < 0.02
    exact = float(phi(d)) / (math.sqrt(2) * 0.5)
    assert abs(float(ga) - exact) < 0.08 and abs(float(gb) + exact) < 0.08
    y0 = perturbed(f, softness=0.5, samples=20000, batched=True, argnums=0)(a, b)
    ga0, gb0 = torch.autograd.grad(y0, (a, b), allow_unused=True)
    assert gb0 is None and abs(float(ga0) - float(phi(torch.tensor(0.6))) / 0.5) < 0.08


def test_decorator_form_and_float64() -> None:
    @perturbed(softness=0.2, samples=10, batched=True)
    def step(t: torch.Tensor) -> torch.Tensor:
        return heaviside(t)

    x = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    y = step(x)
    assert step.__name__ == "step" and y.dtype == torch.float64
    assert grad_of(y, x).dtype == torch.float64


def test_integer_and_bool_outputs_are_averaged_as_floats() -> None:
    x = torch.tensor(0.0, requires_grad=True)
    y = perturbed(lambda t: t > 0, samples=1000, batched=True, generator=gen())(x)
    assert y.dtype == torch.float32 and abs(float(y.detach()) - 0.5) < 0.1


def test_soft_mode_outside_relaxes_fn_only_with_scope_all() -> None:
    x = torch.tensor(0.05, requires_grad=True)
    kw = dict(softness=0.2, samples=16, batched=True)
    ref_hard = perturbed(heaviside, generator=gen(), **kw)(x)
    ref_soft = perturbed(
        lambda t: softtorch.greater(t, torch.zeros(()), softness=0.1), generator=gen(), **kw
    )(x)
    with softtorch.soft_mode("smooth", softness=0.1):  # scope="grad": fn runs without grad
        default = perturbed(heaviside, generator=gen(), **kw)(x)
    with softtorch.soft_mode("smooth", softness=0.1, scope="all"):
        relaxed = perturbed(heaviside, generator=gen(), **kw)(x)
    assert abs(float(ref_hard.detach()) - float(ref_soft.detach())) > 1e-3
    torch.testing.assert_close(default, ref_hard)
    torch.testing.assert_close(relaxed, ref_soft)
    torch.testing.assert_close(grad_of(relaxed, x), grad_of(ref_soft, x))


def test_soft_mode_inside_fn() -> None:
    x = torch.tensor(0.05, requires_grad=True)
    kw = dict(softness=0.2, samples=16, batched=True)

    def inner(t: torch.Tensor) -> torch.Tensor:
        with softtorch.soft_mode("smooth", softness=0.1, scope="all"):
            return heaviside(t)

    ref = perturbed(
        lambda t: softtorch.greater(t, torch.zeros(()), softness=0.1), generator=gen(), **kw
    )
    torch.testing.assert_close(perturbed(inner, generator=gen(), **kw)(x), ref(x))


def test_torch_compile_eager_backend() -> None:
    x = torch.tensor([0.3, -0.4], requires_grad=True)
    smooth = lambda g: perturbed(torch.relu, samples=8, batched=True, generator=g)  # noqa: E731

    def loss(t: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return (smooth(g)(t) ** 2).sum()

    eager = loss(x, gen())
    compiled = torch.compile(loss, backend="eager")(x, gen())
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(grad_of(compiled, x), grad_of(eager, x))
    inner = perturbed(torch.compile(torch.relu, backend="eager"), samples=8, batched=True,
                      generator=gen())(x)  # fmt: skip
    torch.testing.assert_close(inner, smooth(gen())(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_input() -> None:
    x = torch.tensor([0.3, -0.4], device="cuda", requires_grad=True)
    y = perturbed(heaviside, samples=8, batched=True)(x)
    assert y.device == x.device and grad_of(y, x).device == x.device


def test_nan_input_propagates() -> None:
    x = torch.tensor(float("nan"), requires_grad=True)
    y = perturbed(torch.relu, samples=4, batched=True)(x)
    assert torch.isnan(y)


# ------------------------------------------------------------------------------------- errors


def test_error_non_tensor_output() -> None:
    with pytest.raises(TypeError, match="tensor or a non-empty tuple of tensors"):
        perturbed(lambda t: float(t), samples=2)(torch.tensor(0.0))


def test_error_non_finite_output_counts_samples() -> None:
    f = lambda t: torch.log(t)  # noqa: E731  nan for the perturbed points below 0
    with pytest.raises(ValueError, match=r"non-finite .* for \d+ of 100 perturbed samples"):
        perturbed(f, softness=1.0, batched=True)(torch.tensor(0.5))
    y = perturbed(f, softness=1.0, batched=True, check_finite=False)(torch.tensor(0.5))
    assert torch.isnan(y)


@pytest.mark.parametrize("samples", [1, 3, 0])
def test_error_samples_with_antithetic(samples: int) -> None:
    with pytest.raises(ValueError, match="samples"):
        perturbed(torch.relu, samples=samples)
    if samples:
        perturbed(torch.relu, samples=samples, antithetic=False)(torch.tensor(0.0))


def test_error_mutating_fn() -> None:
    def mutates(t: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        buf.add_(1)
        return t

    with pytest.raises(RuntimeError, match="in place"):
        perturbed(mutates, samples=2, argnums=0)(torch.tensor(0.0), torch.zeros(2))

    def mutates_input(t: torch.Tensor) -> torch.Tensor:
        return t.clamp_(min=0)

    with pytest.raises(RuntimeError, match="in place"):
        perturbed(mutates_input, samples=2)(torch.tensor(0.0))


def test_error_messages_for_bad_options() -> None:
    with pytest.raises(ValueError, match="valid noises are: 'gaussian', 'gumbel'"):
        perturbed(torch.relu, noise="uniform")
    with pytest.raises(ValueError, match="valid estimators are"):
        perturbed(torch.relu, estimator="dgo")
    with pytest.raises(ValueError, match="softness"):
        perturbed(torch.relu, softness=0.0)
    with pytest.raises(ValueError, match="at most one"):
        perturbed(torch.relu, batched=True, vmap=True)
    with pytest.raises(TypeError, match="generator"):
        perturbed(torch.relu, generator=0)
    with pytest.raises(ValueError, match="leading sample axis of length 4"):
        perturbed(lambda t: t.sum(), samples=4, batched=True)(torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point tensor"):
        perturbed(lambda n: n, samples=2)(torch.tensor(3))
