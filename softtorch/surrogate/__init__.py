r"""Surrogate gradients for spiking neural networks.

``threshold(x, method, alpha)`` returns the hard spike ``(x > 0)`` (0 at ``x == 0``) and
backpropagates the exact derivative of a smooth step :math:`h(x, \alpha)`, w.r.t. ``x`` and w.r.t.
a learnable tensor ``alpha``. ``sign = 2 * threshold - 1``. API compatible with norse's
``norse.torch.functional.threshold`` (``threshold``, ``sign``, ``HeaviTanh`` ... ``*_fn(x, k)``),
plus snntorch's surrogate families.

Every :math:`h` is a proper soft step (0 at :math:`-\infty`, 1/2 at 0, 1 at :math:`+\infty`), so
every surrogate derivative integrates to 1: the backward approximates the Dirac delta that is the
true derivative of the step. ``a`` below is ``alpha``.

================  ====================================  ==================================  =======
method            :math:`h(x, a)`                       :math:`\partial_x h` (backward)      a=None
================  ====================================  ==================================  =======
heaviside         1[x > 0]                              0 (no surrogate)                    1
super             1/2 + 1/2 ax / (1 + a|x|)             a / (2 (1 + a|x|)^2)                2
fast_sigmoid      same as super                         same as super                       2
tanh              1/2 + 1/2 tanh(ax)                    a/2 sech^2(ax)                      2
erfc              1/2 erfc(-ax)                         a/sqrt(pi) exp(-a^2 x^2)            sqrt(pi)
circ              1/2 + x / (2 sqrt(x^2 + a^2))         a^2 / (2 (x^2 + a^2)^(3/2))         0.5
tent              1/2 + u - u|u|/2, u = clip(ax,-1,1)   a max(0, 1 - |ax|)                  1
atan              1/2 + arctan(pi a x / 2) / pi         (a/2) / (1 + (pi a x / 2)^2)        2
sigmoid           sigmoid(ax)                           a sigmoid(ax) sigmoid(-ax)          4
straight_through  clip(ax + 1/2, 0, 1)                  a 1[|ax| <= 1/2]                    1
logistic          spike z ~ Bernoulli(p), p = tanh's h  dp/dx = tanh's                      2
circ_dist         spike z ~ Bernoulli(p), p = circ's h  dp/dx = circ's                      0.5
================  ====================================  ==================================  =======

Conventions and choices:

* ``alpha`` is a sharpness (transition half-width about ``1/alpha``) except for ``circ`` and
  ``circ_dist``, where it is a width (norse's formula :math:`x / \sqrt{x^2 + \alpha^2}`).
* Default ``alpha``: every default gives a peak surrogate derivative :math:`\partial_x h(0) = 1`,
  the gradient of a straight-through estimator, and a transition about as wide as a unit firing
  threshold. Much sharper surrogates starve the network of gradient (neurons far from threshold
  get none) and their peak :math:`\propto \alpha` grows the gradient through every spike layer
  and time step; in ``examples/spiking_network.py`` the heavy-tailed ``super``, ``atan`` and
  ``circ`` train best.
* Scale: norse / snntorch write SuperSpike and fast_sigmoid as :math:`1 / (1 + \alpha|x|)^2`
  (peak 1, integral :math:`2/\alpha`); ours is that times :math:`\alpha/2` so that :math:`h` is a
  step from 0 to 1 (so norse's ``alpha = 100`` has peak 50 here). To reproduce their gradients
  multiply the upstream gradient by :math:`2/\alpha`. ``atan`` and ``sigmoid`` are snntorch's
  formulas exactly (snntorch's default sigmoid slope is 25, ours 4). ``fast_sigmoid`` is an alias
  of ``super`` kept for snntorch users.
* norse documents erfc as :math:`\tfrac12 + \tfrac12\mathrm{erfc}(kx)`, which runs from 3/2 down
  to 1/2 and is not a step; we use :math:`\tfrac12\mathrm{erfc}(-\alpha x)` (Gaussian CDF of
  standard deviation :math:`1/(\sqrt2\alpha)`).
* ``straight_through`` is the saturating (hard-tanh) straight-through estimator: gradient ``alpha``
  on the closed window :math:`|\alpha x| \le 1/2` (torch.clamp's convention at the edges), 0
  outside.
* Stochastic methods: :math:`\mathbb E[z] = p`, so their backward :math:`\partial p` is the
  gradient of the expected spike (norse's ``CircDist`` passes none). Under ``torch.func.vmap``
  they need ``randomness="different"`` or ``"same"``, as any random op does.
* NaN inputs give NaN spikes and NaN gradients; for finite ``x`` the gradients are finite for
  ``|x|`` up to 1e6 and ``alpha`` from 1e-6 to 1e6 in float32/float64 (float16 can only
  overflow where the true value exceeds 65504). Half-precision inputs are differentiated in
  float32 and cast back.
* A tensor ``alpha`` is range-checked eagerly; the check is skipped while tracing under
  ``torch.compile`` and inside ``torch.func`` transforms (values are not available there).
* Forward-mode AD (``jvp``, ``jacfwd``, ``torch.func.hessian``): the ``autograd.Function`` s have
  no ``jvp`` (see :mod:`._functions`), so under forward-mode AD :func:`threshold` computes the same
  spike as ``z + (h - h.detach())`` with plain torch ops: same values, same derivatives.
"""

from ._api import (
    METHODS,
    SURROGATES,
    Surrogate,
    circ_dist_fn,
    heavi_circ_fn,
    heavi_erfc_fn,
    heavi_tanh_fn,
    heavi_tent_fn,
    logistic_fn,
    sign,
    super_fn,
    surrogate_heaviside,
    surrogate_sign,
    threshold,
)
from ._functions import (
    ATan,
    CircDist,
    FastSigmoid,
    HeaviCirc,
    HeaviErfc,
    Heaviside,
    HeaviTanh,
    HeaviTent,
    Logistic,
    Sigmoid,
    StraightThrough,
    SuperSpike,
)

__all__ = [
    "ATan",
    "CircDist",
    "FastSigmoid",
    "HeaviCirc",
    "HeaviErfc",
    "HeaviTanh",
    "HeaviTent",
    "Heaviside",
    "Logistic",
    "METHODS",
    "SURROGATES",
    "Sigmoid",
    "StraightThrough",
    "SuperSpike",
    "Surrogate",
    "circ_dist_fn",
    "heavi_circ_fn",
    "heavi_erfc_fn",
    "heavi_tanh_fn",
    "heavi_tent_fn",
    "logistic_fn",
    "sign",
    "super_fn",
    "surrogate_heaviside",
    "surrogate_sign",
    "threshold",
]
