"""The benchmarks still run: each bench/ script on a tiny workload, checked for its figures.

A benchmark is not part of the product, so nothing else would notice when a change breaks
one (bench/pipeline.py once stopped running when rule validation got stricter). The figures
are not judged here: performance is measured by the scripts themselves, on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# Each script makes its own SQLite database: once per suite run is enough.
pytestmark = pytest.mark.skipif(DB_KIND == "postgres", reason="the scripts run on SQLite; run once")


@pytest.fixture
def bench_env() -> dict[str, str]:
    return {"SCRM_MODEL_DIR": os.environ.get("SCRM_MODEL_DIR", str(ROOT / "var" / "models"))}


def test_bench_pipeline_processes_every_event(bench_env: dict[str, str]) -> None:
    out = _run("bench/pipeline.py", "--events", "40", "--statements", "3", env=bench_env)
    found = re.search(r"40 events from \d+ fans -> (\d+) inbound messages; (\d+) jobs run", out)
    assert found, out
    assert int(found.group(1)) == 40 and int(found.group(2)) >= 40
    assert re.search(r"pipeline: [\d,]+ events/s, [\d.]+ ms CPU per event", out), out
    assert len(re.findall(r"/event  (SELECT|INSERT|UPDATE|DELETE|BEGIN)", out)) == 3, out


def test_bench_assignment_decides(bench_env: dict[str, str]) -> None:
    out = _run(
        "bench/assignment.py",
        *("--agents", "5", "--open", "20", "--decisions", "30", "--fans", "20"),
        env=bench_env,
    )
    assert re.search(r"including commit: p50 [\d.]+ ms, p99 [\d.]+ ms", out), out
    assert re.search(r"SQL statements per decision: mean [\d.]+", out), out


def test_bench_rules_evaluates(bench_env: dict[str, str]) -> None:
    out = _run("bench/rules.py", env=bench_env)
    found = re.search(r"200 rules, \d+ keywords: ([\d,]+) messages/s wall", out)
    assert found and int(found.group(1).replace(",", "")) > 0, out
    assert re.search(r"assignment: 100 agents .* p99 [\d.]+ ms", out), out


def test_bench_service_day_runs_a_small_day(bench_env: dict[str, str], tmp_path: Path) -> None:
    chart = tmp_path / "day.png"
    out = _run("bench/service_day.py", "--messages", "150", "--chart", str(chart), env=bench_env, timeout=400)
    found = re.search(r"messages (\d+), conversations (\d+)", out)
    assert found and int(found.group(1)) >= 100, out
    assert re.search(r"outcomes delivered: (\d+)/\1 ", out), out  # every outcome reached its fan
    assert chart.stat().st_size > 1000  # the chart, where it was asked for (not over docs/)
