"""Fit the launch angle of a bouncing ball simulated with Python ``if``s (``softtorch.perturbed``).

The simulator is ordinary Python on floats, the way many legacy simulators are written: a ball is
launched at ``speed`` and angle ``theta``, integrated with explicit Euler steps, bounces off the
floor with a restitution coefficient, and bounces *back* off a wall of height ``wall_h`` at
``wall_x`` when it does not clear it. Every event is a Python ``if``. We observe where the ball is
at ``t_end`` when launched at the true angle (55 degrees) and recover the angle from a start of
25 degrees, from which the ball hits the wall and ends up behind the launch point: the position is
discontinuous in the angle (a jump of 17 m where the ball starts to clear the wall).

Plain autograd gives no gradient (the result is not connected to ``theta``), and ``soft_mode``
cannot help: there is no torch operation in the simulator to relax. ``perturbed`` smooths the
loss, ``L_s(theta) = E[L(theta + s Z)]``, and estimates its gradient from ``samples`` simulator
runs per step (score function with antithetic pairs and the leave-one-out linear control
variate). Adam follows the estimate while ``softness`` is annealed from 8 to 0.3 degrees.

Run::

    python examples/branching_simulator.py            # full: 300 steps x 64 simulations
    python examples/branching_simulator.py --quick    # 150 steps x 32 simulations

Requires ``tqdm`` (``pip install softtorch[examples]``).

Measured (torch 2.13, a shared 2-core machine): full mode fits 54.99 degrees for the true 55
(6 seeds: 54.991-54.992; the remaining 0.01 degrees is the Euler discretisation) in 2-5 s;
``--quick`` fits 54.79-54.91 degrees over 6 seeds (54.83 for seed 0; the shorter schedule leaves
0.1-0.2 degrees) in 1-2 s. Each step costs ``samples`` simulator runs and nothing else.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

try:
    import softtorch as st
except ModuleNotFoundError:  # run from a source checkout without installing softtorch
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import softtorch as st

TRUE_ANGLE = 55.0
START_ANGLE = 25.0


def simulate(
    angle_deg: float,
    speed: float = 10.0,
    restitution: float = 0.6,
    wall_x: float = 5.0,
    wall_h: float = 2.0,
    t_end: float = 2.0,
    dt: float = 2e-3,
    g: float = 9.81,
) -> float:
    """Horizontal position (m) of the ball at ``t_end``: explicit Euler, Python floats and ifs."""
    th = math.radians(angle_deg)
    x = y = 0.0
    vx, vy = speed * math.cos(th), speed * math.sin(th)
    for _ in range(int(round(t_end / dt))):
        vy -= g * dt
        x_new, y_new = x + vx * dt, y + vy * dt
        if x < wall_x <= x_new and y_new < wall_h:  # hits the wall: bounce back
            x_new = 2 * wall_x - x_new
            vx = -restitution * vx
        if y_new < 0.0:  # hits the floor: bounce up
            y_new = -restitution * y_new
            vy = -restitution * vy
        x, y = x_new, y_new
    return x


def make_loss(target: float):  # noqa: ANN201
    def loss(theta: torch.Tensor) -> torch.Tensor:
        """Squared miss distance; ``theta`` is a 0-d tensor of degrees."""
        return torch.tensor((simulate(theta.item()) - target) ** 2, dtype=torch.float64)

    return loss


def show_plain_gradients(loss) -> None:  # noqa: ANN001
    theta = torch.tensor(START_ANGLE, dtype=torch.float64, requires_grad=True)
    out = loss(theta)
    print(f"plain autograd at {START_ANGLE:.0f} deg: loss.requires_grad={out.requires_grad} "
          "-> no gradient")  # fmt: skip
    with st.soft_mode("smooth", softness=0.1):
        out = loss(theta)
    print(f"soft_mode at {START_ANGLE:.0f} deg: loss.requires_grad={out.requires_grad} "
          "-> no gradient (nothing to relax)")  # fmt: skip


def fit(loss, steps: int, samples: int, seed: int) -> float:  # noqa: ANN001
    gen = torch.Generator().manual_seed(seed)
    theta = torch.tensor(START_ANGLE, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=2.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.04)
    s0, s1 = 8.0, 0.3
    bar = tqdm(range(steps), desc="fitting", leave=False)
    for i in bar:
        softness = s0 * (s1 / s0) ** (i / (steps - 1))
        smooth = st.perturbed(
            loss, softness=softness, samples=samples, generator=gen, baseline="linear"
        )
        opt.zero_grad()
        value = smooth(theta)
        value.backward()
        opt.step()
        sched.step()
        bar.set_postfix(theta=f"{theta.item():.2f}", loss=f"{value.item():.3g}")
    return theta.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 steps x 32 simulations")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = args.steps or (150 if args.quick else 300)
    samples = args.samples or (32 if args.quick else 64)

    target = simulate(TRUE_ANGLE)
    loss = make_loss(target)
    print(f"true launch angle: {TRUE_ANGLE:.2f} deg, observed x(t_end) = {target:.3f} m")
    print(f"start: {START_ANGLE:.2f} deg, x(t_end) = {simulate(START_ANGLE):.3f} m (hits the wall)")
    show_plain_gradients(loss)
    t0 = time.perf_counter()
    fitted = fit(loss, steps, samples, args.seed)
    elapsed = time.perf_counter() - t0
    print(f"perturbed: {steps} steps x {samples} simulations in {elapsed:.1f} s")
    print(f"fitted launch angle: {fitted:.3f} deg (true {TRUE_ANGLE:.3f} deg), "
          f"x(t_end) = {simulate(fitted):.3f} m (target {target:.3f} m)")  # fmt: skip


if __name__ == "__main__":
    main()
