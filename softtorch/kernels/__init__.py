r"""Fused elementwise kernels for the relaxations of :mod:`softtorch.elementwise`,
:mod:`softtorch.comparison` and :mod:`softtorch.sigmoidal`.

The math, per mode, with :math:`s` the softness (all relaxations are built from the sigmoidal
:math:`\sigma_s` and its integral :math:`R_s`):

* ``smooth``: :math:`\sigma_s(x) = 1 / (1 + e^{-x/s})`, :math:`\sigma_s' = \sigma_s(1-\sigma_s)/s`,
  :math:`R_s(x) = s\,\mathrm{softplus}(x/s)` (``= x`` for :math:`x/s > 20`, torch's threshold).
* ``c0`` / ``c1`` / ``c2``: :math:`t = \mathrm{clip}(\tfrac12 + x/(10s), 0, 1)`,
  :math:`\sigma = t`, :math:`3t^2 - 2t^3`, :math:`6t^5 - 15t^4 + 10t^3`, derivative
  :math:`1`, :math:`6t(1-t)`, :math:`30t^2(1-t)^2` times :math:`1/(10s)` inside the band;
  :math:`R = x` for :math:`x \ge 5s`, else :math:`w t^2`, :math:`2wt^3(1 - t/2)`,
  :math:`2wt^4(t^2 - 3t + 5/2)` with :math:`w = 5s`.
* ``_c1_pnorm`` / ``_c2_pnorm``: :math:`h = \mathrm{clip}(x/s, -1, 1)/2`, :math:`\sigma = (m+h)^e`
  with :math:`e = 2`, :math:`m = \sqrt{1/2 - h^2}` resp. :math:`e = 3`,
  :math:`m = c - h^2/c`, :math:`c = (1/4 + \sqrt{1/16 + h^6})^{1/3}`;
  :math:`R = x` for :math:`x \ge s`, else :math:`s(h - (2 - 4h^2)^{3/2}/6 + 2/3)` resp.
  :math:`s(h - (m + m^4)/2 + h^4/2 + 3/4)`.

Families (value; derivative):

* heaviside / sigmoidal: :math:`\sigma_s(x)`; :math:`\sigma_s'(x)`;
* sign: :math:`2\sigma_s(x) - 1`; :math:`2\sigma_s'(x)`;
* abs: :math:`x(2\sigma_s(x) - 1)`; :math:`2\sigma_s(x) - 1 + 2x\sigma_s'(x)`;
* relu / softrelu: :math:`R_s(x)`; :math:`\sigma_s(x)`; gated: :math:`x\sigma_s(x)`;
  :math:`\sigma_s(x) + x\sigma_s'(x)`;
* clamp: :math:`b - R(b - (a + R(x - a)))`; with :math:`u = x - a`, :math:`v = b - (a + R(u))`:
  :math:`\partial_x = R'(v)R'(u)`, :math:`\partial_a = R'(v)(1 - R'(u))`,
  :math:`\partial_b = 1 - R'(v)`; one-sided :math:`a + R(x - a)`, :math:`b - R(b - x)`;
* comparisons: :math:`\sigma_s(x - y \mp \epsilon)` (``greater`` / ``greater_equal``; ``less`` swaps
  the operands); ``eq``: :math:`\min(1, 2\sigma_s(\epsilon - |x-y|_s))`, ``not_equal`` = 1 - ``eq``;
* round: :math:`\lfloor x\rfloor - r + \sum_{j=-r}^{r-1}
  \sigma_s(x - \lfloor x\rfloor - j - \tfrac12)`;
  derivative :math:`\sum_j \sigma_s'(\cdot)`.

* isclose: :math:`\min(1, 2\sigma_s(\tau - |x - y|_s))`, :math:`\tau = tol + rtol|y|` (``eq`` is
  ``rtol = 0``); :math:`\partial_y` adds :math:`2\sigma_s'(\cdot)\,rtol\,\mathrm{sign}(y)`;
* geometric AND: :math:`\mathrm{clip}(\sqrt{(a + \epsilon)(b + \epsilon)} - \epsilon, 0, 1)`.

:mod:`.fused` holds the autograd Functions and the entry points of the one-input families,
:mod:`.fused_close` and :mod:`.fused_logic` those of isclose / eq and of the geometric AND,
:mod:`.composite` the torch formulas (fallback, double backward, reference),
:mod:`._numba_kernels`, :mod:`._numba_close` and :mod:`._numba_round` the CPU kernels
(per-element math in :mod:`._numba_math`) and :mod:`.pool` a faster soft max pooling.

``smooth`` round evaluates its steps in groups of four with one division
(:math:`\sigma_t = R\prod_{u \ne t}(1 + a_u)`, :math:`R = 1/\prod_u (1 + a_u)`,
:mod:`._numba_round`), and in float32 only the steps not within 1e-7 of 0 / 1
(:math:`|z| < c s`, :math:`c = \min(20, 16.2 + \max(0, \ln(1/s)))`). ``smooth`` round and soft
``eq`` / ``not_equal`` (every mode) write the derivative in the forward when a gradient will be
needed; the backward scales it in place (round: one torch multiply; eq: one pass that also writes
:math:`\partial_y = -\partial_x`).
"""

from .fused import BACKENDS, binary, clamp, ramp, round, set_backend, unary, use_kernel

__all__ = ["BACKENDS", "binary", "clamp", "ramp", "round", "set_backend", "unary", "use_kernel"]
