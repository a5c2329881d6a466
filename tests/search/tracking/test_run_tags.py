"""Run tags come from MLflow's context registry (source, user, git) plus medtune's version."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from medtune.search.tracking.run_tags import VERSION_TAG, run_tags


def test_run_tags_carry_mlflow_context_and_the_installed_version():
    tags = run_tags({"medtune.kind": "sweep"})
    assert tags[VERSION_TAG] == version("medtune")
    assert tags["medtune.kind"] == "sweep"
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"] and tags["mlflow.user"]


def test_given_tags_win_over_context_tags():
    assert run_tags({"mlflow.source.name": "mine"})["mlflow.source.name"] == "mine"


def test_a_script_in_a_git_checkout_is_tagged_with_its_commit(tmp_path: Path):
    """The commit is that of the program's own checkout (where MLflow looks), not of the current folder."""
    repo = tmp_path / "project"
    repo.mkdir()
    script = repo / "sweep_it.py"
    script.write_text("import json\nfrom medtune.search.tracking.run_tags import run_tags\n"
                      "print(json.dumps(run_tags()))\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "sweep_it.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, str(script)], cwd=elsewhere, check=True, capture_output=True, text=True)
    tags = json.loads(out.stdout.strip().splitlines()[-1])
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.name"] == str(script)
