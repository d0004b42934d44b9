r"""Noise distributions of the perturbation estimators: sampling, antithetic partners, scores.

Every estimator in :mod:`softtorch.perturbation` smooths a function by a noise ``Z`` with a density
:math:`p(z) \propto e^{-\nu(z)}` (i.i.d. per coordinate) and differentiates the smoothed function
through the *score* :math:`\psi(z) = \nabla\nu(z) = -\nabla\log p(z)`:

.. math::

    \nabla_x \, \mathbb{E}[f(x + sZ)] = \frac{1}{s}\, \mathbb{E}[f(x + sZ)\, \psi(Z)],
    \qquad \mathbb{E}[\psi(Z)] = 0.

* ``gaussian``: :math:`Z = \Phi^{-1}(U)` (``torch.randn``), :math:`\psi(z) = z`,
  :math:`\mathbb{E}[Z] = 0`;
* ``gumbel``: :math:`Z = -\log(-\log U)`, :math:`\psi(z) = 1 - e^{-z}`,
  :math:`\mathbb{E}[Z] = \gamma \approx 0.5772` (Euler's constant);

with :math:`U \sim \mathcal{U}(0, 1)`. Both scores have mean 0 and variance 1 per coordinate.

Antithetic partners use the inverse-CDF trick: the partner of :math:`Z = F^{-1}(U)` is
:math:`Z' = F^{-1}(1 - U)`, which has the same law as ``Z``. For the (symmetric) Gaussian this is
:math:`Z' = -Z` and :math:`\psi(Z') = -\psi(Z)`; for the Gumbel it is
:math:`-\log(-\log(1 - U))`.
"""

from __future__ import annotations

import torch

#: Noise distributions accepted by every ``noise=`` argument of the perturbation estimators.
NOISES: tuple[str, ...] = ("gaussian", "gumbel")
#: Euler-Mascheroni constant: the mean of the standard Gumbel distribution.
EULER_GAMMA: float = 0.5772156649015329


def noise_mean(noise: str) -> float:
    """:math:`\\mathbb{E}[Z]` of a standard ``noise`` variable (0 Gaussian, gamma Gumbel)."""
    return EULER_GAMMA if noise == "gumbel" else 0.0


def _uniform(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Uniforms in the open interval (0, 1) (no ``log(0)`` downstream)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return u.clamp_(tiny, 1.0 - torch.finfo(dtype).eps / 2)


def draw(
    noise: str,
    samples: int,
    shape: tuple[int, ...] | torch.Size,
    *,
    antithetic: bool,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``samples`` standard noise draws of ``shape``: a tensor of shape ``(samples, *shape)``.

    With ``antithetic`` (``samples`` even), rows ``i`` and ``i + samples // 2`` are antithetic
    partners (``Z`` and :math:`F^{-1}(1 - F(Z))`). The noise is drawn on the generator's device
    (CPU when it is None and ``device`` is CPU) and moved to ``device``; half precision is drawn in
    float32 and cast, so seeded draws agree across dtypes.

    Args:
        noise: ``"gaussian"`` or ``"gumbel"``.
        samples: number of draws (the leading axis).
        shape: shape of one draw.
        antithetic: draw ``samples // 2`` and append their antithetic partners.
        generator: optional :class:`torch.Generator` for reproducible draws.
        device: device of the result (default: the generator's, else CPU).
        dtype: floating dtype of the result.
    """
    device = torch.device(device) if device is not None else None
    gen_device = generator.device if generator is not None else (device or torch.device("cpu"))
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    n_draw = samples // 2 if antithetic else samples
    full = (n_draw, *tuple(shape))
    if noise == "gaussian":
        z = torch.randn(full, generator=generator, device=gen_device, dtype=work)
        if antithetic:
            z = torch.cat([z, -z])
    else:
        u = _uniform(full, generator, gen_device, work)
        if antithetic:
            u = torch.cat([u, 1.0 - u])
        z = -torch.log(-torch.log(u))
    return z.to(device=device if device is not None else gen_device, dtype=dtype)


def score(z: torch.Tensor, noise: str) -> torch.Tensor:
    r"""The score :math:`\psi(z) = -\nabla \log p(z)` (elementwise): ``z`` for the Gaussian,
    :math:`1 - e^{-z}` for the Gumbel.

    Args:
        z: standard noise draws.
        noise: ``"gaussian"`` or ``"gumbel"``.
    """
    if noise == "gaussian":
        return z
    return -torch.expm1(-z)
