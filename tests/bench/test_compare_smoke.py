"""bench/compare must never rot: a few seconds of salas alone on one scenario.

The figures themselves live in the benchmark (bench/compare), not here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchrun import ROOT, needs_ircload, run_bench


@needs_ircload
def test_compare_runs_salas_on_f100(tmp_path: Path) -> None:
    done = run_bench(
        "compare.py",
        "--servers",
        "salas",
        "--scenarios",
        "f100",
        "--reps",
        "1",
        "--quick",
        "--out",
        str(tmp_path),
        timeout=120,
    )
    assert "| f100 | deliveries_per_s |" in done.stdout
    (run,) = list(tmp_path.iterdir())
    results = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    assert results and all(r["ok"] for r in results), results
    assert all(r["lost"] == 0 and r["deliveries_per_s"] > 0 for r in results)
    assert (run / "summary.md").read_text().startswith("# salas beside its peers")


def test_the_table_says_whether_each_goal_was_met_and_by_how_much_it_was_missed() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import compare
    finally:
        sys.path.remove(str(ROOT / "bench"))
    medians = {
        ("salas", "f100"): 6.0e6,
        ("inspircd", "f100"): 5.0e6,
        ("salas", "f1000"): 9.0e6,
        ("inspircd", "f1000"): 3.0e6,
        ("salas", "r100"): 1500.0,
        ("ngircd", "r100"): 1000.0,
        ("salas", "idle10k"): 2.2,
        ("inspircd", "idle10k"): 2.3,
    }
    assert compare.goal_text("f100", medians) == "≥ 1.5× InspIRCd: missed, 20% below it"
    assert compare.goal_text("f1000", medians) == "≥ 2.5× InspIRCd: met"
    assert compare.goal_text("r100", medians) == "≤ ngIRCd: missed, 50% above it"
    assert compare.goal_text("idle10k", medians) == "≤ InspIRCd: met"
    assert compare.goal_text("f500x50", medians) == "≥ 1× InspIRCd: n/a"
