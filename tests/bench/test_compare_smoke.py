"""bench/compare must never rot: a few seconds of salas alone on one scenario.

The figures themselves live in the benchmark (bench/compare), not here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import TIME

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc to build ircload")
@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "bench" / "ircload.c").exists(),
    reason="needs ../shared/bench/ircload.c beside the project",
)
def test_compare_runs_salas_on_f100(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "compare.py"),
            "--servers",
            "salas",
            "--scenarios",
            "f100",
            "--reps",
            "1",
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120 * TIME,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| f100 | deliveries_per_s |" in done.stdout
    (run,) = list(tmp_path.iterdir())
    results = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    assert results and all(r["ok"] for r in results), results
    assert all(r["lost"] == 0 and r["deliveries_per_s"] > 0 for r in results)
    assert (run / "summary.md").read_text().startswith("# salas beside its peers")
