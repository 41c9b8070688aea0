"""The one measuring harness of every fastloader benchmark: interleaved rounds, medians with their
min-max spread, per-round ratios, and tables as aligned text or markdown.

Its rules: every case of a comparison runs once per round, in turn, and rounds repeat, so a slow
phase of a shared machine hits all cases alike; a figure is the median over the rounds with the
min-max spread; a ratio is the median of the per-round ratios (same round, same load), never a
ratio of medians. The main job (`python -m fastloader.bench`) and every script in the
repository's bench/ folder use it; the stock ways they compare against are in
`fastloader.bench.stock`.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._util.tables import markdown_table, text_table

__all__ = [
    "DEFAULT_OUT",
    "Section",
    "duration",
    "interleaved",
    "load_average",
    "machine_line",
    "markdown_table",
    "number",
    "per_round_ratios",
    "ratio",
    "run_rounds",
    "spread",
    "text_table",
    "time_call",
    "write_report",
]

K = TypeVar("K", bound=Hashable)

#: Where results go unless a command says otherwise: under build/ (ignored by git), so running a
#: benchmark leaves a clone clean. The committed bench/results/ is refreshed deliberately
#: (`make bench-publish`).
DEFAULT_OUT = Path("build") / "bench-results"


# --------------------------------------------------------------------------------------------
# Measuring


def time_call(
    function: Callable[[], object],
    budget_s: float = 0.0,
    min_calls: int = 1,
    max_calls: int = 10_000,
    cpu: list[float] | None = None,
) -> float:
    """Median wall seconds per call of ``function``, called until ``budget_s`` has passed (at
    least ``min_calls``, at most ``max_calls`` times). Each result is dropped before the next
    call, as a training loop drops its batch. With ``cpu``, the median CPU seconds per call (all
    threads of this process) is appended to it."""
    walls: list[float] = []
    cpus: list[float] = []
    started = time.perf_counter()
    while len(walls) < min_calls or (
        len(walls) < max_calls and time.perf_counter() - started < budget_s
    ):
        cpu_start = time.process_time() if cpu is not None else 0.0
        start = time.perf_counter()
        result = function()
        walls.append(time.perf_counter() - start)
        if cpu is not None:
            cpus.append(time.process_time() - cpu_start)
        del result
    if cpu is not None:
        cpu.append(statistics.median(cpus))
    return statistics.median(walls)


def run_rounds(cases: Mapping[K, Callable[[], float]], rounds: int) -> dict[K, list[float]]:
    """One figure per case per round: each case (returning its own figure: a time, a rate) runs
    once per round, in the mapping's order, and the rounds repeat."""
    if rounds < 1:
        raise ValueError(f"rounds should be at least 1, but got {rounds}")
    figures: dict[K, list[float]] = {key: [] for key in cases}
    for _ in range(rounds):
        for key, case in cases.items():
            figures[key].append(case())
    return figures


def interleaved(
    cases: Mapping[K, Callable[[], object]],
    rounds: int,
    *,
    budget_s: float = 0.0,
    min_calls: int = 1,
    warmup: int = 0,
    cpu: dict[K, list[float]] | None = None,
) -> dict[K, list[float]]:
    """Seconds per call of every case, one figure per round (see :func:`time_call` for
    ``budget_s`` and ``min_calls``): short calls get a budget so that one round's figure is a
    median of many calls; an epoch of seconds runs once. ``warmup`` untimed calls of each case
    come first. With ``cpu``, each case's CPU seconds per round are filled in too."""
    for case in cases.values():
        for _ in range(warmup):
            case()
    if cpu is not None:
        for key in cases:
            cpu.setdefault(key, [])

    def timed(key: K, case: Callable[[], object]) -> Callable[[], float]:
        into = None if cpu is None else cpu[key]
        return lambda: time_call(case, budget_s, min_calls, cpu=into)

    return run_rounds({key: timed(key, case) for key, case in cases.items()}, rounds)


def per_round_ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """``top / bottom`` of each round (same round, same load); rounds with a zero bottom skipped.
    For times, pass the stock times on top: the result is the speed-up."""
    if len(top) != len(bottom):
        raise ValueError(f"per_round_ratios: {len(top)} rounds against {len(bottom)}")
    return [a / b for a, b in zip(top, bottom, strict=True) if b > 0]


# --------------------------------------------------------------------------------------------
# Formatting


def number(value: float) -> str:
    """Two decimals between 0.1 and 100, else two significant digits."""
    return f"{value:.2f}" if 0.1 <= value < 100 else f"{value:.2g}"


def spread(values: Sequence[float], unit: str = "x", fmt: Callable[[float], str] = number) -> str:
    """``median<unit> (min-max)`` of the values; "-" for none."""
    if not values:
        return "-"
    middle = statistics.median(values)
    return f"{fmt(middle)}{unit} ({fmt(min(values))}-{fmt(max(values))})"


def ratio(top: Sequence[float], bottom: Sequence[float]) -> str:
    """The median per-round ratio with its spread: ``ratio(stock_times, fast_times)`` is the
    speed-up, ``ratio(fast_rates, stock_rates)`` too."""
    return spread(per_round_ratios(top, bottom))


def duration(values: Sequence[float], unit: str | None = None) -> str:
    """Seconds as ``median unit (min-max)`` in s, ms or us (chosen by the median unless given)."""
    if not values:
        return "-"
    if unit is None:
        middle = statistics.median(values)
        unit = "s" if middle >= 1 else "ms" if middle >= 1e-3 else "us"
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]

    def fmt(value: float) -> str:
        value *= scale
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3g}"

    return spread(values, f" {unit}", fmt)


class Section:
    """A titled run of tables and notes, printed as text and written as markdown."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[tuple[str, Any]] = []

    def table(
        self, header: Sequence[object], rows: Sequence[Sequence[object]], left: int = 0
    ) -> None:
        self.parts.append(
            ("table", ([str(h) for h in header], [list(map(str, r)) for r in rows], left))
        )

    def note(self, text: str, markdown: str | None = None) -> None:
        self.parts.append(("note", (text, text if markdown is None else markdown)))

    def text(self) -> str:
        out = [f"== {self.title} =="]
        for kind, value in self.parts:
            out.append(text_table(value[0], value[1]) if kind == "table" else value[0])
        return "\n".join(out) + "\n"

    def markdown(self, level: int = 2) -> str:
        out = [f"{'#' * level} {self.title}", ""]
        for kind, value in self.parts:
            out.append(markdown_table(*value) if kind == "table" else value[1])
            out.append("")
        return "\n".join(out)


def load_average() -> str:
    """The 1-minute load average, as words: on a shared machine, how busy other programs were."""
    try:
        return f"load average {os.getloadavg()[0]:.1f} at the start"
    except (OSError, AttributeError):
        return "load average unknown"


def machine_line(command: str, extra: str = "", load: str | None = None) -> str:
    """``Measured by `command` on <UTC time>: <platform>, <CPUs> (<load>), Python, torch.``: the
    line every results file starts with, so a figure always says where it came from. ``load``:
    :func:`load_average` taken when the measuring began (default: now)."""
    import torch

    when = datetime.datetime.now(datetime.timezone.utc)
    return (
        f"Measured by `{command}` on {when:%Y-%m-%d %H:%M} UTC: {platform.platform()}, "
        f"{os.cpu_count()} CPUs ({load or load_average()}), Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads, CUDA "
        f"{'available' if torch.cuda.is_available() else 'not available'}){extra}."
    )


def write_report(path: Path | str, title: str, command: str, sections: Sequence[Section],
                 extra: str = "", load: str | None = None) -> Path:  # fmt: skip
    """Writes ``# title``, the machine line and every section's markdown to ``path`` (folders
    created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(section.markdown() for section in sections)
    path.write_text(f"# {title}\n\n{machine_line(command, extra, load)}\n\n{body}")
    return path
