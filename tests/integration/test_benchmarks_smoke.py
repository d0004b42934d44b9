"""Smoke tests of the benchmark harness (benchmarks/): in-process, tiny cases, no timing asserts."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    """A module of ``benchmarks/`` loaded from its file (no ``sys.path`` edit; the benchmark
    runner adds its own folder when it is imported)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


h = _load("_harness")

FAST = {"repeat": 2, "target_s": 0.001, "budget_s": 0.5, "warmup_s": 0.0}


def _tiny_case(**extra: object) -> dict:
    case = {
        "name": "sigmoid_step",
        "shape": "4x8",
        "make": lambda: (torch.randn(4, 8, requires_grad=True),),
        "fn": lambda x: torch.sigmoid(x / 0.1),
        "baseline": lambda x: (x > 0).float(),
    }
    case.update(extra)
    return case


def _table_lines(results: list[h.Result]) -> list[str]:
    return h.format_table(results).splitlines()


def test_table_has_expected_columns() -> None:
    res = h.time_case(_tiny_case(), "smoke", **FAST)
    assert not res.skipped and res.fwd_ms is not None and res.fwdbwd_ms is not None
    assert res.base_bwd_is_fwd  # (x > 0).float() has no gradient
    lines = _table_lines([res])
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(h.TABLE_COLUMNS)
    assert set(lines[1]) <= {"|", "-", ":"}
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row[0] == "sigmoid_step" and row[1] == "4x8"
    assert row[7].endswith(h.NO_GRAD_MARK)  # fwd+bwd ratio against a forward-only baseline
    float(row[6])  # fwd ratio is a number
    assert len({len(line) for line in lines[:3]}) == 1  # aligned
    assert any("no gradient" in line for line in lines)


def test_namedtuple_outputs_and_differentiable_baseline() -> None:
    case = _tiny_case(
        name="sort", fn=lambda x: torch.sort(x, dim=-1), baseline=lambda x: torch.sort(x, dim=-1)
    )
    res = h.time_case(case, "smoke", **FAST)
    assert not res.skipped and not res.base_bwd_is_fwd
    assert res.fwdbwd_ratio is not None


def test_hard_op_without_derivative_is_forward_only() -> None:
    case = _tiny_case(baseline=lambda x: torch.heaviside(x, torch.tensor(0.5)))
    res = h.time_case(case, "smoke", **FAST)
    assert res.base_bwd_is_fwd and res.base_fwdbwd_ms == res.base_fwd_ms


def test_failing_and_skipped_cases_do_not_crash() -> None:
    def boom(x: torch.Tensor) -> torch.Tensor:
        raise AttributeError("softtorch.nothing is not available")

    failing = h.time_case(_tiny_case(fn=boom), "smoke", **FAST)
    assert failing.skipped.startswith("AttributeError")
    skipped = h.time_case(_tiny_case(skip="predicted memory too large"), "smoke", **FAST)
    assert skipped.skipped == "predicted memory too large"
    lines = _table_lines([failing, skipped])
    assert "skipped: AttributeError" in lines[2] and "skipped: predicted" in lines[3]


def test_memory_and_csv(tmp_path: Path) -> None:
    case = _tiny_case()
    res = h.time_case(case, "smoke", **FAST)
    h.measure_memory(case, res)
    assert res.peak_mb is not None and res.peak_mb >= 0
    path = tmp_path / "out.csv"
    h.write_csv([res], str(path))
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["case"] == "sigmoid_step" and rows[0]["status"] == "ok"
    assert set(h.CSV_COLUMNS) == set(rows[0])


@pytest.mark.parametrize(
    "suite", ["elementwise", "ordering", "metrics", "fused", "scaling", "ranking", "targets"]
)
def test_suites_follow_the_case_contract(suite: str) -> None:
    run = _load("run")

    for quick in (True, False):
        cases = run.load_cases(suite, quick)  # validates keys and (name, shape) uniqueness
        assert cases
        for c in cases:
            assert isinstance(c["name"], str) and isinstance(c["shape"], str)
            assert callable(c["make"]) and callable(c["fn"])
            assert c["baseline"] is None or callable(c["baseline"])


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    run = _load("run")

    assert run.main(["--list", "--quick", "--suite", "ordering", "--filter", "sort["]) == 0
    out = capsys.readouterr().out
    assert "sort[neuralsort]" in out and "max[" not in out


def test_scaling_cap_skips_larger_n_and_chart_reads_the_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _load("run")
    scaling = _load("bench_scaling")
    monkeypatch.setattr(scaling, "QUICK_NS", (8, 16, 32))
    monkeypatch.setattr(scaling, "CAP_S", 0.0)  # every measured n is "too slow": stop after one
    path = tmp_path / "vm-scaling-quick.csv"
    argv = ["--quick", "--suite", "scaling", "--filter", "sort[torch]|fast_soft_sort]"]
    argv += ["--repeat", "1", "--threads", "1", "--no-save", "--csv", str(path)]
    assert run.main(argv) == 0
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["group"] == "fast_soft_sort"]
    assert [r["shape"] for r in rows] == ["1x8", "1x16", "1x32"]
    assert rows[0]["status"] == "ok" and float(rows[0]["fwdbwd_ms"]) > 0
    assert all(r["status"] == "skipped" and "n = 8 took" in r["note"] for r in rows[1:])

    monkeypatch.setattr(scaling, "CAP_S", 20.0)
    cap = scaling._Cap()  # memory: extrapolated from the last two measured n
    for n, mb in ((100, 10.0), (1000, 1000.0)):
        cap.record(n, h.Result(suite="scaling", name="x", fwdbwd_ms=1.0, peak_mb=mb))
    assert "predicted peak" in (cap.skip_reason(10_000) or "")
    assert cap.skip_reason(1200) is None  # 1000 MB x 1.2^2 < 2 GB

    spec = importlib.util.spec_from_file_location(
        "scaling_chart", BENCH.parent / "scripts" / "scaling_chart.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    series, stopped, _ = mod.read_series(path)
    assert [n for n, _ in series["fast_soft_sort"]] == [8] and stopped["fast_soft_sort"] == 16
    assert len(series["torch.sort"]) == 1  # capped too (CAP_S = 0)
    out = tmp_path / "scaling.png"
    assert mod.main(["--csv", str(path), "--out", str(out)]) == 0 and out.stat().st_size > 0


def test_nxn_floor_writes_rows_and_reads_the_gradient() -> None:
    floor = _load("_floor")
    x = torch.randn(2, 5, requires_grad=True)
    y = floor.nxn_floor(x)
    assert y.shape == (2, 5, 5) and y.is_contiguous()
    torch.testing.assert_close(y, x.detach().unsqueeze(-2).expand(2, 5, 5))
    w = torch.randn(2, 5, 5)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    torch.testing.assert_close(g, w.sum(-2))
