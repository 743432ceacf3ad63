"""Helpers shared by the benchmarks: paths, timing statistics and a peak-RSS sampler. No Django here."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT.parent / "shared" / "eval"
SEC_DIR = EVAL_DIR / "qa" / "docugami-sec-10q"
POLICYQA_DEV = EVAL_DIR / "qa" / "policyqa" / "dev.json"


class Skipped(Exception):
    """A benchmark that cannot run here; the message says why (it goes into the report)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1024 / 1024


@dataclass
class RssPeak:
    """Peak RSS seen while the block ran (sampled every 10 ms), and the RSS when it began."""

    start_mb: float = 0.0
    peak_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@contextmanager
def rss_peak() -> Iterator[RssPeak]:
    proc = psutil.Process()
    peak = RssPeak(start_mb=rss_mb())
    peak.peak_mb = peak.start_mb

    def sample() -> None:
        while not peak._stop.wait(0.01):
            peak.peak_mb = max(peak.peak_mb, proc.memory_info().rss / 1024 / 1024)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        peak._stop.set()
        thread.join()
        peak.peak_mb = max(peak.peak_mb, rss_mb())


@contextmanager
def timed(into: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - t0
