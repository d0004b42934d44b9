"""Timing and memory harness shared by the benchmark suites.

A *case* is a dict (the contract every ``bench_*.py`` module's ``cases(quick)`` follows):

* ``name`` (str) and ``shape`` (str; inferred from the first input if absent); the pair
  (name, shape) is unique within a suite,
* ``make``: zero-arg callable returning a tuple of input tensors (grad-needing ones have
  ``requires_grad`` set),
* ``fn``: callable(*inputs) -> Tensor or (named)tuple of tensors; the backward pass differentiates
  the sum of every floating output that requires grad,
* ``baseline``: the hard torch op, callable(*inputs), or None,
* optional ``group`` (e.g. ``"fast_soft_sort"``), ``peer`` (e.g. ``"torchsort"``) and ``skip``
  (a reason string: the case is listed as skipped without being run).

Times are medians over ``repeat`` measurements, each averaging enough back-to-back calls to last
``target_s`` (like :mod:`timeit`: warm-up first, garbage collector off while timing). The forward
column runs under :func:`torch.no_grad`. Memory is the peak resident-set-size increase of one
forward+backward step after a warm-up step (see :func:`peak_rss_step`); run it in a fresh process.
"""

from __future__ import annotations

import csv
import gc
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

Case = dict[str, Any]

#: Columns of the printed / markdown table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "case",
    "shape",
    "fwd ms",
    "fwd+bwd ms",
    "base fwd ms",
    "base fwd+bwd ms",
    "fwd ratio",
    "fwd+bwd ratio",
    "peak MB",
    "base peak MB",
    "note",
)

#: Marker on baseline fwd+bwd figures when the hard op has no gradient (forward only).
NO_GRAD_MARK = "†"

_MAX_MEM_ENV = "SOFTTORCH_BENCH_MAX_MEM_GB"


# --------------------------------------------------------------------------------------- results


@dataclass
class Result:
    """One benchmark row; times in milliseconds, memory in MB (None = not measured / failed)."""

    suite: str
    name: str
    shape: str = ""
    group: str = ""
    peer: str = ""
    fwd_ms: float | None = None
    fwdbwd_ms: float | None = None
    base_fwd_ms: float | None = None
    base_fwdbwd_ms: float | None = None
    base_bwd_is_fwd: bool = False
    peak_mb: float | None = None
    base_peak_mb: float | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def fwd_ratio(self) -> float | None:
        return _ratio(self.fwd_ms, self.base_fwd_ms)

    @property
    def fwdbwd_ratio(self) -> float | None:
        return _ratio(self.fwdbwd_ms, self.base_fwdbwd_ms)

    @property
    def note(self) -> str:
        parts = [f"skipped: {self.skipped}"] if self.skipped else []
        if self.peer:
            parts.append(f"peer: {self.peer}")
        return "; ".join(parts + self.notes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


# ---------------------------------------------------------------------------------- case helpers


def case_shape(case: Case, inputs: Sequence[Any] | None = None) -> str:
    """The case's ``shape`` string, else the first input tensor's shape as ``AxB``."""
    if case.get("shape"):
        return str(case["shape"])
    if inputs:
        first = inputs[0]
        if isinstance(first, torch.Tensor):
            return "x".join(str(s) for s in first.shape) or "scalar"
    return "?"


def case_key(case: Case) -> tuple[str, str]:
    """(name, declared shape): identifies a case within its suite (the shape may be "")."""
    return str(case.get("name", "")), str(case.get("shape", "") or "")


def check_cases(cases: Sequence[Case], suite: str) -> None:
    """Raise ValueError if a case misses a required key or two cases share (name, shape)."""
    seen: set[tuple[str, str]] = set()
    for c in cases:
        missing = [k for k in ("name", "make", "fn") if k not in c]
        if missing:
            raise ValueError(f"suite {suite!r}: case {c.get('name', c)!r} lacks keys {missing}")
        key = case_key(c)
        if key in seen:
            raise ValueError(f"suite {suite!r}: duplicate case {key}")
        seen.add(key)


def _as_tuple(inputs: Any) -> tuple[Any, ...]:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _flatten(out: Any) -> Iterable[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _flatten(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _flatten(o)


def grad_outputs(out: Any) -> list[torch.Tensor]:
    """Floating outputs that require grad (the ones the backward pass sums)."""
    return [t for t in _flatten(out) if t.is_floating_point() and t.requires_grad]


def all_finite(out: Any) -> bool:
    """True if every floating output is free of NaN/inf."""
    return all(bool(torch.isfinite(t).all()) for t in _flatten(out) if t.is_floating_point())


def _short(e: BaseException, limit: int = 120) -> str:
    msg = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clear_grads(leaves: Sequence[torch.Tensor]) -> None:
    for t in leaves:
        t.grad = None


def make_steps(
    fn: Callable[..., Any], inputs: tuple[Any, ...], hard_op: bool = False
) -> tuple[Callable[[], Any], Callable[[], Any] | None]:
    """Return (forward step under no_grad, forward+backward step or None if nothing to diff).

    Runs ``fn`` once (with grad) to see whether any output requires grad. With ``hard_op`` (the
    baselines) it also runs one backward and treats "derivative ... not implemented" (e.g.
    ``torch.heaviside``) as having no gradient.
    """
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]

    def fwd() -> Any:
        with torch.no_grad():
            return fn(*inputs)

    def fwdbwd() -> None:
        outs = grad_outputs(fn(*inputs))
        loss = outs[0].sum()
        for o in outs[1:]:
            loss = loss + o.sum()
        loss.backward()
        _clear_grads(leaves)

    if not grad_outputs(fn(*inputs)):
        return fwd, None
    if hard_op:
        try:
            fwdbwd()
        except RuntimeError as e:
            _clear_grads(leaves)
            if "not implemented" in str(e):
                return fwd, None
            raise
    return fwd, fwdbwd


# ------------------------------------------------------------------------------------------ timing


def median_ms(
    call: Callable[[], Any],
    repeat: int = 5,
    target_s: float = 0.05,
    budget_s: float = 20.0,
    warmup_s: float | None = None,
) -> float:
    """Median time of one ``call()`` in ms, timeit-style.

    Warm-up: at least two calls and ``warmup_s`` seconds (default ``2 * target_s``; one call only
    if it takes over ``budget_s / 4``). Then ``repeat`` measurements of ``loops`` back-to-back calls
    with ``loops * t_call ~ target_s`` (``t_call`` = fastest of the last warm-up calls). Slow calls
    get fewer repeats so that all measurements stay within ``budget_s`` (at least one).
    """
    warmup_s = 2 * target_s if warmup_s is None else warmup_s
    warm: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        call()
        warm.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if (len(warm) >= 2 and elapsed >= warmup_s) or elapsed >= budget_s / 4:
            break
    t_call = min(warm[-3:])
    loops = max(1, int(target_s / max(t_call, 1e-9)))
    reps = max(1, min(repeat, int(budget_s / max(t_call * loops, 1e-9))))
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(loops):
                call()
            samples.append((time.perf_counter() - t0) / loops)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples) * 1e3


def new_result(case: Case, suite: str = "") -> Result:
    """An empty Result carrying the case's name, declared shape, group and peer."""
    return Result(
        suite=suite,
        name=str(case.get("name", "?")),
        shape=str(case.get("shape", "") or ""),
        group=str(case.get("group", "") or ""),
        peer=str(case.get("peer", "") or ""),
    )


def time_case(
    case: Case,
    suite: str = "",
    repeat: int = 5,
    target_s: float = 0.05,
    budget_s: float = 20.0,
    warmup_s: float | None = None,
) -> Result:
    """Time the soft op and its baseline on one case, in-process (never raises for case errors)."""
    res = new_result(case, suite)
    if case.get("skip"):
        res.skipped = str(case["skip"])
        return res
    try:
        inputs = _as_tuple(case["make"]())
    except Exception as e:  # a case that cannot be built is skipped, not fatal
        res.skipped = f"make failed: {_short(e)}"
        return res
    res.shape = case_shape(case, inputs)
    timing = {"repeat": repeat, "target_s": target_s, "budget_s": budget_s, "warmup_s": warmup_s}

    try:
        fwd, fwdbwd = make_steps(case["fn"], inputs)
        if not all_finite(fwd()):
            res.notes.append("NON-FINITE OUTPUT")
        res.fwd_ms = median_ms(fwd, **timing)
    except Exception as e:
        res.skipped = _short(e)
        return res
    if fwdbwd is None:
        res.fwdbwd_ms = res.fwd_ms
        res.notes.append("output has no grad: fwd+bwd = fwd")
    else:
        try:
            res.fwdbwd_ms = median_ms(fwdbwd, **timing)
        except Exception as e:
            res.notes.append(f"backward failed: {_short(e)}")

    baseline = case.get("baseline")
    if baseline is not None:
        try:
            bfwd, bfwdbwd = make_steps(baseline, inputs, hard_op=True)
            res.base_fwd_ms = median_ms(bfwd, **timing)
            if bfwdbwd is None:
                res.base_fwdbwd_ms = res.base_fwd_ms
                res.base_bwd_is_fwd = True
            else:
                res.base_fwdbwd_ms = median_ms(bfwdbwd, **timing)
        except Exception as e:
            res.notes.append(f"baseline failed: {_short(e)}")
    return res


# ------------------------------------------------------------------------------------------ memory


def _maxrss_mb() -> float:
    """Peak RSS of this process (``getrusage(RUSAGE_SELF).ru_maxrss``) in MB."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_rss_mb() -> float | None:
    """Current RSS in MB (``VmRSS``; None where /proc is unavailable)."""
    return _proc_status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak RSS in MB: the resettable ``VmHWM`` on Linux, else ``ru_maxrss``.

    ``ru_maxrss`` is ``max(VmHWM, peak recorded when a thread exited)``; the second term survives
    a reset, so after threads come and go (thread pools) it can report a stale import-time peak.
    """
    hwm = _proc_status_mb("VmHWM")
    return _maxrss_mb() if hwm is None else hwm


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _proc_status_mb("VmHWM") is not None


def peak_rss_step(step: Callable[[], Any]) -> tuple[float, bool]:
    """Peak RSS increase (MB) of one ``step()`` after a warm-up step; (mb, warm).

    With a resettable high-water mark (Linux): warm-up step, ``gc.collect()``, reset the mark, run
    the step and report ``VmHWM - VmRSS_before``: the transient memory of one steady-state step
    (inputs, which exist before, are not counted; nor is JIT compilation in the warm-up).
    Elsewhere: a cold first call, ``ru_maxrss`` after minus before (``warm=False``; an
    underestimate if the process peaked higher earlier).
    """
    if reset_peak_rss():
        step()
        gc.collect()
        reset_peak_rss()
        before = current_rss_mb() or peak_rss_mb()
        step()
        return max(0.0, peak_rss_mb() - before), True
    gc.collect()
    before = _maxrss_mb()
    step()
    return max(0.0, _maxrss_mb() - before), False


def measure_memory(case: Case, res: Result) -> None:
    """Fill ``res.peak_mb`` / ``res.base_peak_mb`` with :func:`peak_rss_step` of fwd+bwd.

    Meant for a fresh child process, before any timing (see ``benchmarks/run.py``).
    """
    if res.skipped or case.get("skip"):
        return
    try:
        inputs = _as_tuple(case["make"]())
        fwd, fwdbwd = make_steps(case["fn"], inputs)
        res.peak_mb, warm = peak_rss_step(fwdbwd or fwd)
        if not warm:
            res.notes.append("memory: cold first call")
        baseline = case.get("baseline")
        if baseline is not None and warm:
            bfwd, bfwdbwd = make_steps(baseline, inputs, hard_op=True)
            res.base_peak_mb, _ = peak_rss_step(bfwdbwd or bfwd)
        del inputs
    except Exception as e:
        res.notes.append(f"memory failed: {_short(e)}")


class RssWatchdog:
    """Background thread that hard-exits the process (code 3) once RSS exceeds ``limit_mb``.

    Guards the shared machine in child processes: a case that allocates far more than predicted
    dies alone instead of driving the box into the OOM killer.
    """

    EXIT_CODE = 3

    def __init__(self, limit_mb: float, interval_s: float = 0.005) -> None:
        self.limit_mb = limit_mb
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss_mb()
            if rss is not None and rss > self.limit_mb:
                sys.stderr.write(f"RSS {rss:.0f} MB exceeded limit {self.limit_mb:.0f} MB\n")
                sys.stderr.flush()
                os._exit(self.EXIT_CODE)

    def __enter__(self) -> RssWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def max_mem_bytes() -> int:
    """Memory budget for one case: ``$SOFTTORCH_BENCH_MAX_MEM_GB`` (set by run.py) or 6 GB,
    capped at half the currently available memory."""
    gb = float(os.environ.get(_MAX_MEM_ENV, "6"))
    budget = int(gb * 2**30)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    budget = min(budget, int(line.split()[1]) * 1024 // 2)
                    break
    except OSError:
        pass
    return budget


def set_max_mem_gb(gb: float) -> None:
    os.environ[_MAX_MEM_ENV] = str(gb)


def memory_skip(predicted_bytes: float, what: str = "") -> str | None:
    """A skip reason if ``predicted_bytes`` exceeds :func:`max_mem_bytes`, else None."""
    budget = max_mem_bytes()
    if predicted_bytes <= budget:
        return None
    extra = f" ({what})" if what else ""
    gb = 2**30
    return f"predicted memory {predicted_bytes / gb:.1f} GB > budget {budget / gb:.1f} GB{extra}"


# ----------------------------------------------------------------------------------- reporting


def machine_info(threads: int | None = None) -> dict[str, str]:
    """Host name, CPU model, core count, torch / python versions, torch threads, load average
    (1/5/15 min: a load above the core count means other processes share the CPUs)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:
        load = "?"
    return {
        "load": load,
        "machine": platform.node() or "unknown",
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": str(threads if threads is not None else torch.get_num_threads()),
    }


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 0.01:
        return f"{v:.4f}"
    if v < 1:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt_mb(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    """Formatted cells, one list per result, in :data:`TABLE_COLUMNS` order."""
    rows = []
    for r in results:
        mark = NO_GRAD_MARK if r.base_bwd_is_fwd else ""
        bfb = _fmt_ms(r.base_fwdbwd_ms)
        rfb = _fmt_ratio(r.fwdbwd_ratio)
        rows.append(
            [
                r.name,
                r.shape or "-",
                _fmt_ms(r.fwd_ms),
                _fmt_ms(r.fwdbwd_ms),
                _fmt_ms(r.base_fwd_ms),
                bfb + mark if bfb != "-" else bfb,
                _fmt_ratio(r.fwd_ratio),
                rfb + mark if rfb != "-" else rfb,
                _fmt_mb(r.peak_mb),
                _fmt_mb(r.base_peak_mb),
                r.note,
            ]
        )
    return rows


def format_table(results: Sequence[Result]) -> str:
    """Aligned markdown table (numbers right-aligned) plus a footnote for the † marker."""
    rows = table_rows(results)
    widths = [len(c) for c in TABLE_COLUMNS]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    text_cols = {0, 1, len(TABLE_COLUMNS) - 1}

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if i in text_cols else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (w + 2) if i in text_cols else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    lines = [line(TABLE_COLUMNS), "|" + "|".join(sep) + "|"]
    lines += [line(r) for r in rows]
    if any(r.base_bwd_is_fwd for r in results):
        lines.append("")
        lines.append(
            f"{NO_GRAD_MARK} the hard op has no gradient: its fwd+bwd column is the forward only."
        )
    return "\n".join(lines)


CSV_COLUMNS: tuple[str, ...] = (
    "suite", "case", "group", "peer", "shape", "fwd_ms", "fwdbwd_ms", "base_fwd_ms",
    "base_fwdbwd_ms", "base_bwd_is_fwd", "fwd_ratio", "fwdbwd_ratio", "peak_mb", "base_peak_mb",
    "status", "note", "machine", "cpu", "torch", "threads",
)  # fmt: skip


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"


def write_csv(results: Sequence[Result], path: str, info: dict[str, str] | None = None) -> None:
    """One row per result with raw numbers (ms, MB, ratios) and the machine description."""
    info = info or machine_info()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in results:
            w.writerow(
                [
                    r.suite, r.name, r.group, r.peer, r.shape, _num(r.fwd_ms), _num(r.fwdbwd_ms),
                    _num(r.base_fwd_ms), _num(r.base_fwdbwd_ms), int(r.base_bwd_is_fwd),
                    _num(r.fwd_ratio), _num(r.fwdbwd_ratio), _num(r.peak_mb),
                    _num(r.base_peak_mb), "skipped" if r.skipped else "ok", r.note,
                    info["machine"], info["cpu"], info["torch"], info["threads"],
                ]
            )  # fmt: skip


def format_header(info: dict[str, str]) -> str:
    """One-line machine description printed above the tables."""
    return (
        f"machine {info['machine']} | CPU {info['cpu']} ({info['cores']} cores) | "
        f"torch {info['torch']} | python {info['python']} | torch threads {info['threads']} | "
        f"load avg {info['load']}"
    )
