"""Project layout rules that are easy to break by accident."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mlflow_folder_does_not_shadow_the_mlflow_library():
    # Run from the repository root, where the mlflow/ folder sits first on sys.path.
    out = subprocess.run([sys.executable, "-c", "import mlflow; print(mlflow.__file__)"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    assert "site-packages" in out.stdout and not out.stdout.startswith(str(REPO / "mlflow"))


def test_trainables_never_import_search():
    for path in (REPO / "trainables").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "search" or n.startswith("search.") for n in names), path


def test_yaml_is_only_read_with_safe_load():
    for folder in ("search", "trainables"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "yaml.load(" not in text and "yaml.unsafe_load" not in text, path


def test_cli_entry_points_answer():
    for cmd in ([sys.executable, "-m", "search", "--help"], [str(Path(sys.executable).parent / "medtune"), "--help"]):
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "sweep" in out.stdout and "validate" in out.stdout
