"""bench/kernelshare must never rot: one short perf-sampled f100 run of salas.

It checks that the samples were split into the groups the table reports (the
kernel and the interpreter both show up when salas fans out) and that the run
lost nothing; the shares themselves live in the benchmark's output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchrun import needs_ircload, run_bench


def perf_works() -> bool:
    """perf is installed and this machine lets it sample a CPU."""
    if not shutil.which("perf"):
        return False
    probe = subprocess.run(
        ["perf", "record", "-q", "-C", "0", "-o", "/dev/null", "--", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@needs_ircload
@pytest.mark.skipif(not perf_works(), reason="needs perf allowed to sample CPU 0")
def test_kernelshare_splits_salas_f100_by_where_the_time_goes(tmp_path: Path) -> None:
    run_bench(
        "kernelshare.py",
        "--servers",
        "salas",
        "--scenarios",
        "f100",
        "--quick",
        "--out",
        str(tmp_path),
        timeout=120,
    )
    (run,) = list(tmp_path.iterdir())
    (result,) = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    assert result["ok"] and result["lost"] == 0 and result["deliveries_per_s"] > 0, result
    shares = result["shares"]
    assert shares["kernel"] > 1 and shares["Python"] > 1, shares
    assert 90 < sum(shares.values()) <= 100.5, shares
    assert "| f100 | salas |" in (run / "summary.md").read_text()
