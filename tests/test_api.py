"""medtune's Python API: cheap to import, the same spec handling as the CLI, typed results.

The API's sweep, best and final run for real in tests/search/run/test_sweep_e2e.py (its sweep is
``medtune.sweep(dict)``, its final ``medtune.final(best.yaml)``); these are the parts that need
no Ray.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, subprocess_env

import medtune
from medtune.search.spec.loader import load_space, load_spec
from medtune.search.spec.sweep_spec import SpecError

DEMO = REPO / "spaces" / "demo.yaml"


def test_importing_medtune_loads_no_heavy_library():
    code = ("import sys, medtune; heavy = [m for m in ('torch', 'ray', 'mlflow', 'optuna', 'timm') "
            "if m in sys.modules];"
            "print(medtune.__version__, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert out.stdout.split(" ", 1)[1].strip() == "[]", out.stdout


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    assert medtune.__version__ == version("medtune")


def test_a_mapping_of_overrides_sets_python_values_as_given():
    spec = load_space(DEMO, {"search.num_samples": 3, "space.lr": {"loguniform": [1e-4, 1e-2]}, "fixed.seed": 7})
    assert spec.search.num_samples == 3 and spec.fixed["seed"] == 7
    assert spec.space["lr"].to_yaml() == {"loguniform": [1e-4, 1e-2]}
    # the same as the CLI's strings, which are parsed as YAML
    cli = load_spec(DEMO, ["search.num_samples=3", "space.lr={loguniform: [1.0e-4, 1.0e-2]}", "fixed.seed=7"])
    assert cli.search == spec.search and cli.space == spec.space and cli.fixed == spec.fixed


def test_a_space_can_be_a_dict_or_a_spec():
    from medtune.search.spec.loader import read_yaml

    raw = read_yaml(DEMO)
    from_dict = load_space(raw, {"search.num_samples": 2})
    from_file = load_spec(DEMO, ["search.num_samples=2"])
    assert from_dict.search == from_file.search and from_dict.space == from_file.space
    assert load_space(from_file) is from_file
    assert load_space(from_file, {"search.num_samples": 5}).search.num_samples == 5


def test_bad_input_through_the_api_is_the_same_specific_error():
    with pytest.raises(SpecError) as caught:
        load_space(DEMO, {"search.num_samples": 0})
    assert "search.num_samples" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        load_space({"name": "x", "data": {"source": "pneumoniamnist"}, "bogus": 1})
    assert "bogus" in str(caught.value) and "<space dict>" in str(caught.value)
    with pytest.raises(SpecError):
        load_space(DEMO, {"search..num_samples": 1})


def test_validate_returns_the_resolved_spec_and_the_warnings(pneumoniamnist_path):
    checked = medtune.validate(DEMO, {"data.source": str(pneumoniamnist_path), "data.train_subset": 300,
                                      "data.val_subset": 40})
    assert checked.spec.data.source == str(pneumoniamnist_path)
    assert checked.data_summary["planned"]["train"]["total"] == 300  # of the 4,708 in the file
    assert isinstance(checked.warnings, list)


def test_the_cli_prints_what_the_api_returns(pneumoniamnist_path, capsys):
    from medtune.cli import main

    overrides = ["data.source=" + str(pneumoniamnist_path), "data.train_subset=300", "data.val_subset=40"]
    assert main(["validate", str(DEMO), *[a for o in overrides for a in ("--set", o)]]) == 0
    printed = capsys.readouterr().out
    checked = medtune.validate(DEMO, overrides)  # --set strings work in the API too
    assert f"-> {checked.data_summary}" in printed
    assert all(f"warning: {w}" in printed for w in checked.warnings)


def test_the_cli_and_validate_paths_load_no_ray_torch_or_mlflow_at_import():
    """``medtune --help`` and ``medtune validate`` answer in a fraction of a second: the modules on
    their path leave Ray, torch and MLflow to the commands that need them."""
    code = ("import sys, medtune.cli, medtune.search.run.preflight, medtune.search.results.final_outcome; "
            "print([m for m in ('torch', 'ray', 'mlflow', 'optuna') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_final_outcome_never_shows_the_tracking_uris_credentials():
    from medtune.search.results.final_outcome import FinalOutcome

    outcome = FinalOutcome("r1", [], Path("final"), None, 3, 1.0, [], tracking_uri="http://alice:s3cret@mlflow:5000",
                           experiment_id="1")
    assert "s3cret" not in repr(outcome) and "alice" not in repr(outcome)
