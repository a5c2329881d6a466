"""The README stays true: every medtune command it shows parses, its space files validate, its links resolve."""

from __future__ import annotations

import re
import shlex

import pytest
from helpers import REPO

from medtune.cli import build_parser, main

README = REPO / "README.md"


def readme_commands() -> list[list[str]]:
    """Every ``medtune ...`` command in the README's fenced ``bash`` blocks, as argv (without
    ``medtune``), comments and environment assignments stripped; ``.venv/bin/medtune`` counts too."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words.pop(0)  # MEDTUNE_DATA_DIR=... before the command
                if words and words[0].rsplit("/", 1)[-1] == "medtune":
                    commands.append(words[1:])
    return commands


def test_the_readme_shows_every_command():
    shown = {argv[0] for argv in readme_commands()}
    assert {"sweep", "resume", "best", "final", "validate"} <= shown


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_readme_command_parses(argv):
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_the_readme_space_files_validate(pneumoniamnist_path, capsys):
    """``sweep`` and ``validate`` lines are checked as ``medtune validate`` would, with their ``--set``s."""
    checked = 0
    for argv in readme_commands():
        if argv[0] not in ("sweep", "validate"):
            continue
        args = build_parser().parse_args(argv)
        sets = [a for pair in (("--set", s) for s in args.overrides) for a in pair]
        assert main(["validate", args.space, *sets]) == 0, capsys.readouterr().err
        checked += 1
    assert checked >= 2


def test_the_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#\s]+)\)", README.read_text()):
        if "://" not in target:
            assert (REPO / target).exists(), target
    for page in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: {target}"
