"""Run reports: ``report.json`` for machines, a table for people, and live progress."""

from __future__ import annotations

import re
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from tessera.engine import cost
from tessera.engine.budget import usage_of
from tessera.engine.events import (
    Event,
    Message,
    RunStarted,
    ShardCommitted,
    ShardFailed,
    StageStarted,
)
from tessera.engine.plan import Plan
from tessera.engine.spec import Job

PER_SHARD_LIMIT = 10_000  # report.json lists shards one by one up to this many


def build(
    *,
    job: Job,
    plan: Plan,
    records: Mapping[int, Mapping[str, Any]],
    this_run: Sequence[ShardCommitted],
    executor: str,
    wall_seconds: float,
    driver_host: str,
    failures: Mapping[int, str],
    catalogue: cost.Catalogue | None = None,
) -> dict[str, Any]:
    """The run report: how the job was run, never what it computed (that is result.json).

    ``records`` are all commit records in the store (this and earlier runs); ``this_run`` the
    shards this run computed. Rates are in the kernel's work unit per second.
    """
    seconds = [float(r.get("seconds", 0.0)) for r in records.values()]
    cpu = [float(r.get("cpu_seconds", 0.0)) for r in records.values()]
    work_done = sum(int(r.get("work", 0)) for r in records.values())
    run_work = sum(e.work for e in this_run)
    run_cpu = sum(e.cpu_seconds for e in this_run)
    shard_seconds = sum(seconds)
    compiled = [float(r["compile_seconds"]) for r in records.values() if "compile_seconds" in r]
    out: dict[str, Any] = {
        "job": job.name,
        "kernel": job.kernel_name,
        "spec_hash": job.spec_hash,
        "store": job.store,
        "executor": executor,
        "driver_host": driver_host,
        "n_shards": plan.n_shards,
        "committed": len(records),
        "failed": {str(i): reason for i, reason in sorted(failures.items())},
        "work_unit": plan.work_unit,
        "work_total": plan.work,
        "this_run": {
            "shards": len(this_run),
            "wall_seconds": round(wall_seconds, 6),
            "work": run_work,
            "rate_per_s": round(run_work / wall_seconds, 3) if wall_seconds > 0 else None,
            "cpu_seconds": round(run_cpu, 6),
        },
        "shards": {
            "seconds_total": round(shard_seconds, 6),
            "seconds_min": round(min(seconds), 6) if seconds else None,
            "seconds_median": round(statistics.median(seconds), 6) if seconds else None,
            "seconds_max": round(max(seconds), 6) if seconds else None,
            "cpu_seconds_total": round(sum(cpu), 6),
            "peak_rss_mib_max": max(
                (float(r.get("peak_rss_mib", 0)) for r in records.values()), default=None
            ),
            "rate_per_s_per_shard": round(work_done / shard_seconds, 3) if shard_seconds else None,
            "hosts": sorted({str(r.get("host", "")) for r in records.values()}),
            "attempts_max": max((int(r.get("attempt", 1)) for r in records.values()), default=0),
        },
        # compiling the kernel (once per worker process, before its first shard): never in the
        # shard seconds above, so not in the throughput or the cost either
        "compile": {
            "seconds_total": round(sum(compiled), 6),
            "seconds_max": round(max(compiled), 6) if compiled else None,
            "processes": len(compiled),
        },
    }
    if catalogue is not None and records:
        out["cost"] = cost_section(job, records, catalogue)
    if plan.n_shards <= PER_SHARD_LIMIT:
        out["per_shard"] = [
            {
                k: records[i].get(k)
                for k in (
                    "shard",
                    "attempt",
                    "host",
                    "seconds",
                    "cpu_seconds",
                    "peak_rss_mib",
                    "bytes",
                )
            }
            | ({"stage": records[i]["stage"]} if "stage" in records[i] else {})
            for i in sorted(records)
        ]
    return out


def stages_section(layout: Any, records: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stage of a staged job: its name, shards, how many committed, their seconds and
    work."""
    out = []
    for name, shards in layout.stage_ranges():
        done = [records[i] for i in shards if i in records]
        out.append(
            {
                "name": name,
                "shards": [shards.start, shards.stop],
                "committed": len(done),
                "seconds_total": round(sum(float(r.get("seconds", 0.0)) for r in done), 6),
                "work": sum(int(r.get("work", 0)) for r in done),
            }
        )
    return out


def cost_section(
    job: Job, records: Mapping[int, Mapping[str, Any]], catalogue: cost.Catalogue
) -> dict[str, Any]:
    """What the committed shards would cost on every instance type and pricing model, the best
    by work per dollar for each model, and (when not every shard is done) the projected total
    of the whole job at the measured rate."""
    usages = [usage_of(job, r) for r in records.values()]
    work = sum(int(r.get("work", 0)) for r in records.values())
    rows = cost.run_costs(usages, work, catalogue)
    return {
        "shards_priced": len(records),
        "work": work,
        "region": catalogue.region,
        "resources": {
            "vcpus": job.resources.vcpus,
            "memory_mib": job.resources.memory_mib,
            "gpus": job.resources.gpus,
        },
        "best": [r.to_dict() for r in cost.best(rows)],
        "all": [r.to_dict() for r in sorted(rows, key=lambda r: (r.pricing, r.target))],
    }


def render_cost(section: Mapping[str, Any], unit: str) -> list[str]:
    """The cost table: the best three options of each pricing model by work per dollar."""
    lines = [
        "",
        f"cost of these {section['shards_priced']} shards ({_si(section['work'])}{unit}), "
        f"{section['region']}, {section['resources']['vcpus']:g} vCPU / "
        f"{section['resources']['memory_mib']} MiB a shard, best by {unit}/$:",
        f"  {'pricing':<13} {'target':<14} {'cost':>12} {unit + '/$':>16}",
    ]
    for row in section["best"]:
        lines.append(
            f"  {row['pricing']:<13} {row['target']:<14} ${row['cost_usd']:>11.6f} "
            f"{_si(row['work_per_usd']):>15}"
        )
    return lines


def _si(value: float) -> str:
    for factor, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix} "
    if float(value).is_integer():
        return f"{int(value)} "
    return f"{value:.2f} "


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 shard``, ``2 shards``, ``1,204 inputs``."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_dims(value: Any) -> bool:
    """A short list of numbers (a shape, a tile grid): a table shows it as ``28 x 40``."""
    return (
        isinstance(value, list)
        and 0 < len(value) <= 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


_DIGEST = re.compile(r"(?:[a-z0-9]+:)?[0-9a-f]{32,}")


def _cell(value: Any) -> str:
    """A table cell: ``-`` for None, ``28 x 40`` for dims, a digest by its first 12 hex digits
    (as git shows commits: the whole one is in result.json)."""
    if value is None:
        return "-"
    if _is_dims(value):
        return " x ".join(_scalar(v) for v in value)
    if isinstance(value, str) and _DIGEST.fullmatch(value):
        return value[: value.find(":") + 13] + "..."
    return _scalar(value)


def _table(rows: Sequence[Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """Rows of scalars as aligned columns; nested values are summarised, never repr'd."""
    columns = [k for k in rows[0] if all(_is_scalar(r.get(k)) or _is_dims(r.get(k)) for r in rows)]
    cells = [[_cell(r.get(k)) for k in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out = [indent + "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    out += [indent + "  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return out


def _at(store: str | None, path: str) -> str:
    """``path`` (relative to the store) where a person finds it: joined to the store's location."""
    return f"{store.rstrip('/')}/{path}" if store else path


def render_next(result: Mapping[str, Any] | None, store: str | None) -> list[str]:
    """The answer's ``next`` (a list of strings, any kernel's): what a person can do now, with
    ``{store}`` replaced by the store's location (quoted for a shell where needed)."""
    steps = (result or {}).get("next")
    if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
        return []
    where = shlex.quote(store) if store else "STORE"
    return ["next:", *(f"  {str(step).replace('{store}', where)}" for step in steps)]


def _one_line(prefix: str, table: Mapping[str, Any], width: int = 100) -> str | None:
    """A small table of scalars (and lists of them) on one line, ``image: width 700; height
    530``, when it fits in ``width`` characters; else ``None``."""
    parts = []
    for key, value in table.items():
        if value is None:
            continue
        if _is_scalar(value):
            parts.append(f"{key} {_scalar(value)}")
        elif isinstance(value, list) and 0 < len(value) <= 8 and all(map(_is_scalar, value)):
            parts.append(f"{key} {', '.join(_scalar(v) for v in value)}")
        else:
            return None
    line = f"{prefix}: {'; '.join(parts)}"
    return line if prefix and parts and len(line) <= width else None


def render_answer(
    result: Mapping[str, Any], skip: tuple[str, ...] = (), store: str | None = None
) -> list[str]:
    """A kernel's answer for people: scalars as ``key: value``, lists of records as small
    tables, a small nested table on one line (else as dotted keys); ``None`` left out. Never a
    Python repr.

    Two keys any kernel may use: ``outputs``, a table of label -> path relative to the store,
    shown with each path joined to ``store``; and ``next``, steps for a person, left to
    ``render_next`` (shown last)."""
    lines: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if prefix == "outputs" and isinstance(value, Mapping):
            width = max((len(str(k)) for k in value), default=0)
            lines.append("outputs:")
            lines.extend(f"  {str(k):<{width}}  {_at(store, str(v))}" for k, v in value.items())
        elif _is_scalar(value):
            lines.append(f"{prefix}: {_scalar(value)}")
        elif isinstance(value, Mapping):
            line = _one_line(prefix, value)
            if line is not None:
                lines.append(line)
                return
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, Sequence) and value and all(isinstance(v, Mapping) for v in value):
            lines.append(f"{prefix}: {plural(len(value), 'entry', 'entries')}")
            lines.extend(_table(value))
        elif isinstance(value, Sequence):
            items = [_scalar(v) for v in value[:8] if _is_scalar(v)]
            more = f", ... ({len(value):,} in all)" if len(value) > 8 else ""
            lines.append(f"{prefix}: {', '.join(items)}{more}" if items else f"{prefix}: -")

    for key, value in result.items():
        if key not in ("kernel", "params", "seed", "next", *skip):
            walk(str(key), value)
    return lines


def render(
    result: Mapping[str, Any] | None, run_report: Mapping[str, Any], failures: bool = True
) -> str:
    """A plain-text table of the answer and the run, for the end of ``tessera run``/``status``;
    with ``failures``, one ``FAILED shard`` line per failed shard at the end."""
    lines: list[str] = []
    products = (result or {}).get("products")
    if isinstance(products, Mapping):
        lines.append(f"{'product':<24} {'price':>12} {'stderr':>10}   95% CI")
        for name, p in products.items():
            lo, hi = p["ci95"]
            lines.append(
                f"{name:<24} {p['price']:>12.6f} {p['stderr']:>10.6f}   [{lo:.6f}, {hi:.6f}]"
            )
        lines.append("")
    elif result:
        lines.extend(render_answer(result, store=run_report.get("store")))
        lines.append("")
    run = run_report["this_run"]
    shards = run_report["shards"]
    unit = run_report["work_unit"]
    rate = run.get("rate_per_s")
    peak = shards["peak_rss_mib_max"]
    compiled = run_report.get("compile", {"processes": 0, "seconds_total": 0.0})
    compile_total = float(compiled["seconds_total"])
    rows = [
        (
            "shards",
            f"{run_report['committed']} of {plural(run_report['n_shards'], 'shard')} committed, "
            f"{run['shards']} computed in this run, {len(run_report['failed'])} failed",
        ),
        ("wall time", f"{run['wall_seconds']:.2f} s ({run_report['executor']} executor)"),
        (f"{unit}/s", f"{_si(rate)}(this run, end to end)" if rate else "-"),
        (
            f"{unit}/s per shard",
            f"{_si(shards['rate_per_s_per_shard'])}(kernel+store, one worker)"
            if shards["rate_per_s_per_shard"]
            else "-",
        ),
        (
            "CPU-seconds",
            f"{run['cpu_seconds']:.2f} this run, {shards['cpu_seconds_total']:.2f} all",
        ),
        (
            "shard seconds",
            f"min {shards['seconds_min']} / median {shards['seconds_median']} / "
            f"max {shards['seconds_max']}"
            if shards["seconds_min"] is not None
            else "-",
        ),
        (
            "compile",
            f"{compile_total:.2f} s in {plural(compiled['processes'], 'process', 'processes')}"
            f" (before their first shard; not in shard seconds, {unit}/s or cost)"
            if compiled["processes"]
            else "-",
        ),
        (
            "peak memory/shard",
            f"{peak} MiB (worker process peak RSS)" if peak is not None else "-",
        ),
    ]
    for stage in run_report.get("stages", ()):
        first, stop = stage["shards"]
        rows.append(
            (
                f"stage {stage['name']}",
                f"shards {first}..{stop - 1}: {stage['committed']} of {stop - first} "
                f"committed, {stage['seconds_total']:.2f} shard-seconds",
            )
        )
    target = run_report.get("target")
    if target:
        reached = target["reached_stderr"]
        rows.append(
            (
                "target stderr",
                f"{target['stderr']:g}: {'met' if target['met'] else 'not met'}, "
                f"{'-' if reached is None else f'{reached:.6g}'} after {target['waves']} "
                f"wave(s), {plural(target['shards'], 'shard')}",
            )
        )
    lines.extend(f"{k:<24} {v}" for k, v in rows)
    if "cost" in run_report:
        lines.extend(render_cost(run_report["cost"], unit))
    steps = render_next(result, run_report.get("store"))
    if steps:
        lines.extend(["", *steps])
    if failures:  # ``tessera status`` lists them itself, with attempts and hosts
        for shard, reason in run_report["failed"].items():
            lines.append(f"FAILED shard {shard}: {reason}")
    return "\n".join(lines)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython is imported and runs an IPKernelApp)."""
    module = sys.modules.get("IPython")
    shell = module.get_ipython() if module is not None else None  # type: ignore[attr-defined]
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NotebookProgress:
    """Progress listener for Jupyter: a ``tqdm.auto`` widget of shards committed."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.bar: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.bar = self._tqdm(
                total=event.n_shards,
                initial=event.n_shards - event.pending,
                desc=f"job {event.job}",
                unit="shard",
            )
        elif isinstance(event, ShardCommitted) and self.bar is not None:
            self.bar.update(1)
        elif isinstance(event, (ShardFailed, Message)) and self.bar is not None:
            text = (
                event.text if isinstance(event, Message) else f"shard {event.shard}: {event.reason}"
            )
            self.bar.write(text)

    def close(self) -> None:
        """Close the widget."""
        if self.bar is not None:
            self.bar.close()


class _NoProgress:
    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


def progress_listener(show: bool | None) -> Progress | NotebookProgress | _NoProgress:
    """The progress display for a run: ``True`` shows one (a widget in Jupyter, a bar on a
    terminal, log lines otherwise), ``False`` none, ``None`` one only in Jupyter or on a
    terminal."""
    if show is False:
        return _NoProgress()
    if in_notebook():
        return NotebookProgress()
    if show is None and not sys.stderr.isatty():
        return _NoProgress()
    return Progress()


class Progress:
    """Progress listener: a bar (done/total, rate, ETA) on a terminal, log lines otherwise."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = 0
        self.done = 0
        self.pending = 0
        self.work = 0
        self.job = ""
        self.unit = "units"
        self.started = time.perf_counter()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.job, self.total, self.pending = event.job, event.n_shards, event.pending
            self.unit = event.work_unit
            self.done = event.n_shards - event.pending
            self.started = time.perf_counter()
            self._line(
                f"job {self.job}: {self.pending} of {plural(self.total, 'shard')} to run "
                f"({event.executor} executor)"
            )
        elif isinstance(event, StageStarted):
            self._line(
                f"job {self.job} stage {event.name} ({event.index + 1} of {event.stages}): "
                f"{event.pending} of {plural(event.n_shards, 'shard')} to run"
            )
        elif isinstance(event, ShardCommitted):
            self.done += 1
            self.work += event.work
            stage = event.record.get("stage")
            if self.tty:
                self._bar()
            else:
                self._line(
                    f"job {self.job} shard {event.shard}"
                    f"{f' (stage {stage})' if stage else ''} committed in "
                    f"{event.seconds:.2f} s ({self.done} of {self.total} done)"
                )
        elif isinstance(event, ShardFailed) and event.retryable:
            self._line(f"job {self.job} shard {event.shard} will retry: {event.reason}")
        elif isinstance(event, ShardFailed):  # the reason is told once, in the run's summary
            self._line(f"job {self.job} shard {event.shard} failed (not retried; see below)")
        elif isinstance(event, Message):
            self._line(event.text)

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self, width: int = 30) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        frac = self.done / self.total if self.total else 1.0
        ran = self.done - (self.total - self.pending)
        eta = (self.total - self.done) * elapsed / ran if ran > 0 else 0.0
        filled = int(frac * width)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r\033[K[{bar}] {self.done}/{self.total} shards  "
            f"{_si(self.work / elapsed)}{self.unit}/s  ETA {eta:.0f} s"
        )
        self.stream.flush()
