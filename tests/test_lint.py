"""The tree is lint-clean: ruff's pycodestyle, pyflakes and import-order rules (``[tool.ruff]`` in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_ruff_finds_nothing():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
