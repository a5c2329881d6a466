"""Tiny runs of the benchmark scripts, so that they keep working. Nothing here asserts on times."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from helpers import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))


def test_paper_table_runs_final_on_a_paper_architecture(tmp_path):
    out = tmp_path / "paper_table.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/paper_table.py", "--skip-search", "--paper-architectures", "simple_cnn",
         "--paper-epochs", "1", "--out", str(out)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["architecture"] == "simple_cnn" and row["epochs"] == 1
    assert row["config"]["batch_size"] == 8 and row["config"]["dropout"] == 0.4  # the paper's fixed values
    assert 0.5 < row["test_auc"] <= 1 and 0 < row["test_accuracy"] <= 1
    assert "| paper: simple_cnn (imagenet) |" in proc.stdout and "Google AutoML Vision" in proc.stdout


def test_cpu_sampler_tells_the_trial_from_the_other_processes():
    from cpu_sampler import CpuSampler

    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass"
    with CpuSampler(interval=0.2) as sampler:
        time.sleep(0.5)
        subprocess.run([sys.executable, "-c", busy, "ImplicitFunc"], check=True, timeout=60)
        time.sleep(0.5)
    result = sampler.result()
    assert result["window_seconds"] > 0
    # The busy child burnt 1.5 s of CPU; whatever the sampler missed at the window's edges, most is there.
    assert result["trial_cores"] * result["window_seconds"] > 0.5
    assert "ImplicitFunc" not in json.dumps(result["other_by_process"])
    # The split of trial processes by thread holds the same CPU time.
    assert sum(result["trial_by_thread_name"].values()) * result["window_seconds"] > 0.5
