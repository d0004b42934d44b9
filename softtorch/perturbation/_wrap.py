r"""``perturbed``: Gaussian (or Gumbel) smoothing of any function of tensors, with a Monte-Carlo
value and an unbiased gradient.

Math. ``perturbed(fn, softness=s)`` is the function

.. math::

    f_s(x) = \mathbb{E}_Z[\,f(x + sZ)\,] \approx \frac{1}{N}\sum_{i=1}^N f(x + sZ_i),

where ``Z`` has i.i.d. standard Gaussian (or Gumbel) coordinates. :math:`f_s` is smooth even when
``f`` has jumps, branches or no derivative at all (the Gaussian smoothing of a Heaviside step is
:math:`\Phi(x/s)`). Its gradient is estimated without differentiating ``f``, by the score function
:math:`\nabla f_s(x) = \mathbb{E}[f(x+sZ)\,\psi(Z)]/s` with antithetic pairs and a leave-one-out
baseline (see :mod:`._estimators` for the derivation; both keep it unbiased), or with
``estimator="reparam"`` by the pathwise average :math:`\frac1N\sum_i \nabla f(x + sZ_i)`, which
is unbiased only where ``f`` is differentiable almost everywhere *and* continuous (no jumps).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._checks import check_choice
from . import _noise
from ._estimators import ScoreFunction, Spec
from ._validate import (
    check_baseline,
    check_float_softness,
    check_generator,
    check_noise,
    check_samples,
)
from ._validate import plain as _plain

ESTIMATORS: tuple[str, ...] = ("score", "reparam")


def _selected(args: tuple[Any, ...], argnums: int | Sequence[int] | None) -> list[int]:
    """Positions of the perturbed positional arguments."""
    if argnums is None:
        sel = [
            i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()
        ]
        if not sel:
            raise TypeError(
                "perturbed needs at least one floating-point tensor positional argument to "
                f"perturb; got argument types {[type(a).__name__ for a in args]}"
            )
        return sel
    nums = [argnums] if isinstance(argnums, int) else list(argnums)
    sel = []
    for i in nums:
        if not isinstance(i, int) or not -len(args) <= i < len(args):
            raise ValueError(f"argnums entry {i!r} is out of range for {len(args)} arguments")
        i %= len(args)
        a = args[i]
        if not (isinstance(a, torch.Tensor) and a.is_floating_point()):
            kind = f"{a.dtype} tensor" if isinstance(a, torch.Tensor) else type(a).__name__
            raise TypeError(f"argument {i} is selected by argnums but is a {kind}, not floating")
        sel.append(i)
    return sorted(set(sel))


def _as_outputs(out: Any) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``fn``'s result as a tuple of tensors, and whether it was a tuple."""
    if isinstance(out, torch.Tensor):
        return (out,), False
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return tuple(out), True
    kinds = (
        [type(o).__name__ for o in out] if isinstance(out, (tuple, list)) else type(out).__name__
    )
    raise TypeError(
        f"fn must return a tensor or a non-empty tuple of tensors, got {kinds}; wrap NumPy or "
        "Python numbers with torch.as_tensor(...)"
    )


def _stack_samples(outs: list[Any], samples: int) -> tuple[list[torch.Tensor], bool]:
    """Per-sample results of the loop, stacked to ``(samples, *shape)`` per output."""
    first, is_tuple = _as_outputs(outs[0])
    per: list[list[torch.Tensor]] = [[o] for o in first]
    for i, out in enumerate(outs[1:], start=1):
        cur, cur_tuple = _as_outputs(out)
        if cur_tuple != is_tuple or len(cur) != len(first):
            raise TypeError(f"fn returned a different structure for sample {i} than for sample 0")
        for j, o in enumerate(cur):
            if o.shape != first[j].shape:
                raise ValueError(
                    f"fn's output {j} has shape {tuple(o.shape)} for sample {i} but "
                    f"{tuple(first[j].shape)} for sample 0"
                )
            per[j].append(o)
    with _plain():
        return [torch.stack(p) for p in per], is_tuple


def _check_batched(outs: tuple[torch.Tensor, ...], samples: int) -> None:
    for j, o in enumerate(outs):
        if o.dim() == 0 or o.shape[0] != samples:
            raise ValueError(
                f"batched fn must return outputs with a leading sample axis of length {samples}; "
                f"output {j} has shape {tuple(o.shape)}"
            )


def _watched(
    args: tuple[Any, ...], kwargs: dict[str, Any], sel: list[int], points: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Tensors ``fn`` must not modify: the perturbed points and every pass-through tensor."""
    passed = [a for i, a in enumerate(args) if i not in sel] + list(kwargs.values())
    return points + [a for a in passed if isinstance(a, torch.Tensor)]


def _versions(tensors: list[torch.Tensor]) -> list[int]:
    return [t._version for t in tensors]


def _check_not_mutated(tensors: list[torch.Tensor], before: list[int]) -> None:
    for t, v in zip(tensors, before):
        if t._version != v:
            raise RuntimeError(
                "fn modified one of its tensor inputs in place; perturbed calls fn on many "
                "perturbed copies and reuses the other inputs, so fn must not mutate them "
                "(clone inside fn before in-place ops)"
            )


def _check_finite(fs: list[torch.Tensor], samples: int) -> None:
    with _plain():
        bad = torch.zeros(samples, dtype=torch.bool, device=fs[0].device)
        for f in fs:
            bad |= ~torch.isfinite(f).reshape(samples, -1).all(1)
        n_bad = int(bad.sum())
    if n_bad:
        raise ValueError(
            f"fn returned non-finite values (nan or inf) for {n_bad} of {samples} perturbed "
            "samples; smoothing needs finite outputs near x (lower softness, guard the "
            "function's domain, or pass check_finite=False to let them propagate)"
        )


def _evaluate(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    sel: list[int],
    points: list[torch.Tensor],
    samples: int,
    batched: bool,
    vmap: bool,
) -> tuple[list[torch.Tensor], bool]:
    """``fn`` at every perturbed point: one batched call, ``torch.func.vmap``, or a loop."""
    if batched or vmap:
        call_args = list(args)
        for i, p in zip(sel, points):
            call_args[i] = p
        if vmap:
            in_dims = tuple(0 if i in sel else None for i in range(len(args)))
            out = torch.func.vmap(functools.partial(fn, **kwargs), in_dims=in_dims)(*call_args)
        else:
            out = fn(*call_args, **kwargs)
        outs, is_tuple = _as_outputs(out)
        _check_batched(outs, samples)
        return list(outs), is_tuple
    results = []
    call_args = list(args)
    for s in range(samples):
        for i, p in zip(sel, points):
            call_args[i] = p[s]
        results.append(fn(*call_args, **kwargs))
    return _stack_samples(results, samples)


def _floating(fs: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    with _plain():
        return [f if f.is_floating_point() else f.to(dtype) for f in fs]


def _call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    softness: float,
    samples: int,
    noise: str,
    generator: torch.Generator | None,
    batched: bool,
    vmap: bool,
    antithetic: bool,
    baseline: str,
    estimator: str,
    argnums: int | Sequence[int] | None,
    check_finite: bool,
) -> Any:
    sel = _selected(args, argnums)
    xs = [args[i] for i in sel]
    for x in xs:
        if x.is_complex():
            raise TypeError("perturbed does not support complex inputs")
    reparam = estimator == "reparam"
    # the value and version checks read data (graph breaks): skipped while torch.compile traces
    tracing = torch.compiler.is_compiling()
    check_finite = check_finite and not tracing
    with _plain():
        zs = [
            _noise.draw(
                noise, samples, x.shape, antithetic=antithetic, generator=generator,
                device=x.device, dtype=x.dtype,
            )
            for x in xs
        ]  # fmt: skip
        base = [x if reparam else x.detach() for x in xs]
        points = [b.unsqueeze(0) + softness * z for b, z in zip(base, zs)]
        inputs_finite = all(bool(torch.isfinite(x).all()) for x in xs) if check_finite else True
    watched = [] if tracing else _watched(args, kwargs, sel, points)
    before = _versions(watched)
    with torch.enable_grad() if reparam else torch.no_grad():
        fs, is_tuple = _evaluate(fn, args, kwargs, sel, points, samples, batched, vmap)
    _check_not_mutated(watched, before)
    fs = _floating(fs, xs[0].dtype)
    if check_finite and inputs_finite:
        _check_finite(fs, samples)
    with _plain():
        if reparam:
            vals = tuple(f.mean(0) for f in fs)
        else:
            spec = Spec(len(xs), softness, noise, antithetic, baseline)
            vals = ScoreFunction.apply(spec, *xs, *zs, *fs)
    return vals if is_tuple else vals[0]


def perturbed(
    fn: Callable[..., Any] | None = None,
    *,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    batched: bool = False,
    vmap: bool = False,
    antithetic: bool = True,
    baseline: bool | str = True,
    estimator: str = "score",
    argnums: int | Sequence[int] | None = None,
    check_finite: bool = True,
) -> Any:
    r"""Smooth any function of tensors by random perturbation: value
    :math:`\mathbb{E}[f(x + sZ)]` and an unbiased gradient estimate, for code that ``soft_mode``
    cannot see (Python branches on tensor values, ``.item()``, NumPy, simulators).

    .. math::

        f_s(x) = \mathbb{E}[f(x + sZ)], \qquad
        \nabla f_s(x) = \frac{1}{s}\,\mathbb{E}\big[(f(x + sZ) - b)\,\psi(Z)\big],

    with ``Z`` standard Gaussian (:math:`\psi(z) = z`) or Gumbel (:math:`\psi(z) = 1 - e^{-z}`)
    and ``b`` a baseline independent of ``Z``. Both are Monte-Carlo estimates over ``samples``
    draws; the gradient error shrinks like :math:`1/\sqrt{\text{samples}}`. With Gaussian
    antithetic pairs the gradient is the central difference
    :math:`\frac{1}{N s}\sum_{\text{pairs}} (f(x + sZ) - f(x - sZ))\, Z`.

    Usable as ``perturbed(fn, ...)`` and as a decorator ``@perturbed(softness=...)``. The
    wrapped function is an autograd node: it composes with any graph around it, the gradient
    w.r.t. each perturbed input that requires grad is the estimator above (score function,
    first order only) or, with ``estimator="reparam"``, the average of autograd's gradients at
    the perturbed points.

    Which inputs are perturbed: every positional floating-point tensor argument (independent
    noise per argument), or those listed in ``argnums``. Other arguments (keyword arguments,
    integer tensors, Python objects) are passed through unchanged and get no gradient from the
    score-function estimator. Outputs: a tensor of any shape or a tuple of tensors (integer and
    bool outputs are averaged as floats of the first input's dtype); the result has the same
    structure (a plain tuple for tuples).

    ``fn`` is called under whatever ``soft_mode`` is active (its comparisons are relaxed if one
    is open) and, for the score-function estimator, under :func:`torch.no_grad`; the noise is
    drawn once per call (on each input's device) and the same draws serve the value and the
    gradient, so a seeded ``generator`` makes both reproducible.

    Args:
        fn: the function; omitted when used as ``@perturbed(...)``.
        softness: the noise scale ``s`` > 0, in the units of the inputs.
        samples: Monte-Carlo samples ``N`` (calls of ``fn``, or the batch size with
            ``batched``). Must be even and >= 2 with ``antithetic``.
        noise: ``"gaussian"`` (default) or ``"gumbel"`` (mean :math:`\gamma s` shift; for
            perturbed argmax-type functions).
        generator: a :class:`torch.Generator` for reproducible noise (advanced by each call).
        batched: ``fn`` accepts the perturbed inputs with a leading sample axis of length
            ``samples`` and returns outputs with that axis (one call instead of a loop).
        vmap: evaluate with :func:`torch.func.vmap` over the sample axis (``fn`` must be
            vmap-compatible: no data-dependent Python control flow).
        antithetic: draw the samples in antithetic pairs (``Z``, ``-Z`` for the Gaussian).
        baseline: ``True`` / ``"mean"``: subtract the leave-one-out mean of the other
            samples (or pairs) from each sample's output in the gradient (unbiased; redundant,
            but harmless, with Gaussian pairs). ``"linear"``: also subtract the leave-one-out
            linear control variate :math:`(\psi(Z) Z^\top - I)\hat c` (unbiased; removes the
            locally linear part of ``fn``, a large gain when ``samples`` is large compared with
            the number of perturbed coordinates, a loss with very few samples). ``False``:
            none.
        estimator: ``"score"`` (default; any ``fn``) or ``"reparam"`` (``fn`` must be
            differentiable by autograd and continuous; its jumps are ignored, i.e. biased).
        argnums: positions of the arguments to perturb (default: all floating tensors).
        check_finite: raise when ``fn`` returns nan/inf at some perturbed point while the
            inputs are finite (says how many samples); False lets them propagate. This check
            and the in-place-mutation check read data, so they are skipped while
            ``torch.compile`` traces (a batched torch ``fn`` then compiles without breaks).

    Returns:
        The smoothed function (or a decorator when ``fn`` is None).

    Raises:
        TypeError: non-tensor outputs, no floating input, complex input.
        ValueError: bad ``samples`` / ``softness`` / ``noise`` / ``estimator``, non-finite
            outputs, batched outputs without the sample axis.
        RuntimeError: ``fn`` modified an input in place.

    Example:
        >>> step = perturbed(lambda x: (x > 0).float(), softness=0.5, samples=20000,
        ...                  batched=True, generator=torch.Generator().manual_seed(0))
        >>> x = torch.tensor(0.3, requires_grad=True)
        >>> y = step(x)  # ~ Phi(0.3 / 0.5) = 0.7257
    """
    softness = check_float_softness(softness)
    samples = check_samples(samples, bool(antithetic))
    check_noise(noise)
    check_choice(estimator, ESTIMATORS, "estimator")
    check_generator(generator)
    if batched and vmap:
        raise ValueError("pass at most one of batched=True and vmap=True")
    options = dict(
        softness=softness, samples=samples, noise=noise, generator=generator,
        batched=bool(batched), vmap=bool(vmap), antithetic=bool(antithetic),
        baseline=check_baseline(baseline), estimator=estimator, argnums=argnums,
        check_finite=bool(check_finite),
    )  # fmt: skip

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"perturbed needs a callable, got {type(f).__name__}")

        @functools.wraps(f)
        def smoothed(*args: Any, **kwargs: Any) -> Any:
            return _call(f, args, kwargs, **options)  # type: ignore[arg-type]

        return smoothed

    return wrap if fn is None else wrap(fn)
