"""bench/compare must never rot: a few seconds of salas alone on one scenario.

The figures themselves live in the benchmark (bench/compare), not here.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchrun import needs_ircload, run_bench


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
