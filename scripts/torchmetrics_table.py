"""Write the torchmetrics coverage table of ``docs/relaxing-third-party-code.md``.

Runs the checks of ``tests/interception/test_torchmetrics.py`` on every metric of its matrix
(``tests/interception/tm_cases.py``) and replaces the text between the markers
``<!-- torchmetrics-table:start -->`` and ``<!-- torchmetrics-table:end -->`` of the page:

* smooth: inside ``soft_mode("smooth", softness=0.1)`` the value and the gradient are finite and
  the gradient is nonzero;
* hard: inside ``soft_mode("hard")`` the value is bit for bit the plain call's;
* 1e-5: at softness 1e-5 the soft value is within 0.02 of the exact one (the error is shown);
* counts: soft confusion counts sum to the number of samples (where the metric returns counts);
* exact ints: the result has torch's dtype, and an integer result equals torch's;
* formula (binary metrics): the soft value equals the metric's formula of the soft confusion
  counts tp = sum p t, fp = sum p (1 - t), ... with p = P(probs > 0.5) (``softtorch.greater``).

Usage::

    python scripts/torchmetrics_table.py                # rewrite the table in the page
    python scripts/torchmetrics_table.py --check        # exit 1 if the page's table is stale
    python scripts/torchmetrics_table.py --print        # print the table only
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import softtorch  # noqa: E402
from tests.interception import test_torchmetrics as tm  # noqa: E402
from tests.interception.tm_cases import CASES, NOT_RELAXABLE, Case, N, make_inputs  # noqa: E402

PAGE = ROOT / "docs" / "relaxing-third-party-code.md"
START, END = "<!-- torchmetrics-table:start -->", "<!-- torchmetrics-table:end -->"
OK, FAIL = "yes", "**no**"


def _try(check: Callable[[], str]) -> str:
    try:
        return check()
    except Exception as e:  # noqa: BLE001 - the table reports every failure
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"**{type(e).__name__}**" + (f": {msg[:40]}" if msg else "")


def check_smooth(case: Case) -> str:
    x, t = make_inputs(case.kind)
    _, y = tm.soft_eval(case, x, t, tm.SOFTNESS)
    if not torch.isfinite(tm._plain(y)).all():
        return f"{FAIL} (value not finite)"
    if not y.requires_grad:
        return f"{FAIL} (no gradient)"
    g = tm.grad_of(y, x)
    if g is None:
        return f"{FAIL} (no gradient)"
    if not torch.isfinite(g).all():
        return f"{FAIL} (gradient not finite)"
    return OK if bool((g != 0).any()) else f"{FAIL} (zero gradient)"


def check_hard(case: Case) -> str:
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("hard"):
        hard = case.call(x, t)
    same = hard.dtype == plain.dtype and torch.equal(tm._plain(hard).detach(), plain.detach())
    return OK if same else FAIL


def check_converges(case: Case) -> str:
    x, t = make_inputs(case.kind)
    exact = case.call(x, t).detach().double()
    _, y = tm.soft_eval(case, x, t, 1e-5)
    err = (tm._plain(y).detach().double() - exact).abs().max().item()
    return f"{err:.1e}" if err <= 0.02 else f"**{err:.2g}**"


def check_counts(case: Case) -> str:
    if case.counts is None:
        return "-"
    x, t = make_inputs(case.kind)
    _, y = tm.soft_eval(case, x, t, tm.SOFTNESS)
    totals = case.counts(tm._plain(y).detach().double())
    return OK if bool(((totals - N).abs() <= 1e-6).all()) else FAIL


def check_exact(case: Case) -> str:
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("smooth", softness=tm.SOFTNESS):
        out = case.call(x, t)
    if out.dtype != plain.dtype:
        return f"{FAIL} ({str(out.dtype)[6:]} vs {str(plain.dtype)[6:]})"
    if not plain.is_floating_point() and not torch.equal(tm._exact(out), plain):
        return FAIL
    return OK


def check_formula(case: Case) -> str:
    """Binary metrics: the soft value against its formula of the Bernoulli counts."""
    formula = tm.BINARY_FORMULAS.get(case.name)
    if formula is None:
        return "-"
    x, t = make_inputs(case.kind)
    _, y = tm.soft_eval(case, x, t, tm.SOFTNESS)
    want = formula(*tm._binary_soft_counts(x, t))
    err = (tm._plain(y).detach().double() - want).abs().max().item()
    return OK if err <= 1e-5 else f"**off by {err:.2g}**"


def check_not_relaxable(case: Case) -> str:
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("smooth", softness=tm.SOFTNESS):
        out = case.call(x, t)
    same = out.dtype == plain.dtype and torch.equal(tm._plain(out).detach(), plain.detach())
    return "exact value" if same else f"{FAIL} (differs from plain)"


def table() -> str:
    rows = [
        "| metric | smooth: finite, nonzero gradient | hard: bit-exact | softness 1e-5: error "
        "| counts sum to N | dtype / integers exact | = Bernoulli-count formula |",
        "|---|---|---|---|---|---|---|",
    ]
    checks = (check_smooth, check_hard, check_converges, check_counts, check_exact, check_formula)
    for case in CASES:
        cells = [_try(lambda c=c, k=case: c(k)) for c in checks]
        rows.append(f"| `{case.name}` | " + " | ".join(cells) + " |")
    rows += [
        "",
        "Not relaxable (run inside the mode with torch's exact value, no gradient):",
        "",
        "| metric | inside soft_mode | why |",
        "|---|---|---|",
    ]
    for case, reason in NOT_RELAXABLE:
        rows.append(f"| `{case.name}` | {_try(lambda c=case: check_not_relaxable(c))} | {reason} |")
    return "\n".join(rows)


def render(page: str, body: str) -> str:
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    note = "<!-- generated by scripts/torchmetrics_table.py from tests/interception/tm_cases.py -->"
    return f"{head}{START}\n{note}\n\n{body}\n\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the page's table is stale")
    p.add_argument("--print", action="store_true", help="print the table, do not write")
    args = p.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = table()
    if args.print:
        print(body)
        return 0
    page = PAGE.read_text()
    new = render(page, body)
    if args.check:
        if new != page:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python scripts/torchmetrics_table.py")
            return 1
        return 0
    PAGE.write_text(new)
    print(f"wrote the torchmetrics table of {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
