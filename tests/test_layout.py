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
            assert not any(n == "medtune.search" or n.startswith("medtune.search.") for n in names), path
            assert not any(n.split(".")[0] in ("search", "trainables") for n in names), path  # installed as medtune.*


def test_only_the_tracking_package_imports_mlflow():
    """MLflow is one sub-package's concern: the driver, the results and the CLI ask ``medtune.search.tracking``."""
    tracking = REPO / "search" / "tracking"
    for folder in ("medtune", "search", "trainables"):
        for path in (REPO / folder).rglob("*.py"):
            if path.is_relative_to(tracking):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                assert not any(n.split(".")[0] == "mlflow" for n in names), path


def test_yaml_is_only_read_with_safe_load():
    for folder in ("search", "trainables"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "yaml.load(" not in text and "yaml.unsafe_load" not in text, path


def test_cli_entry_points_answer():
    for cmd in ([sys.executable, "-m", "medtune", "--help"], [sys.executable, "-m", "medtune.search", "--help"],
                [str(Path(sys.executable).parent / "medtune"), "--help"]):
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "sweep" in out.stdout and "validate" in out.stdout


def test_cluster_configs_parse_and_hold_no_credentials():
    import re

    import yaml

    files = sorted((REPO / "cluster").rglob("*.yaml"))
    assert {p.name for p in files} >= {"runtime_env.yaml", "aws-gpu.yaml", "raycluster.yaml", "rayjob.yaml"}
    secret = re.compile(r"(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws_secret_access_key)\s*[:=]\s*\S")
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), path
        assert not secret.search(path.read_text()), f"{path} holds a credential"
    launcher = yaml.safe_load((REPO / "cluster" / "aws-gpu.yaml").read_text())
    assert launcher["head_node_type"] in launcher["available_node_types"]
    assert any("pip install" in c and "medtune" in c for c in launcher["setup_commands"])
    job = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["spec"]["entrypoint"].startswith("medtune sweep spaces/")
    assert (REPO / job["spec"]["entrypoint"].split()[2]).exists()


def test_resume_is_a_command():
    out = subprocess.run([sys.executable, "-m", "medtune", "resume", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "run folder" in out.stdout


def test_resume_of_a_folder_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "medtune", "resume", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "not a medtune sweep folder" in out.stderr and "medtune_sweep.json" in out.stderr


def test_every_third_party_import_is_a_declared_dependency():
    """An import that only works because another package happens to pull it in breaks on the next
    release of that package: every distribution the code imports is named in pyproject.toml."""
    import ast
    import importlib.metadata
    import re
    import sys
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in [*(REPO / "medtune").rglob("*.py"), *(REPO / "search").rglob("*.py"), *(REPO / "trainables").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("medtune", "search", "trainables"):
                    continue
                provided = {d.lower() for d in distributions.get(top, [top])}
                if not provided & declared:
                    missing.setdefault(top, str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_installed_names_are_under_medtune(tmp_path):
    """``search`` and ``trainables`` are folders here but are installed as ``medtune.search`` and
    ``medtune.trainables``, so they cannot collide with another installed package of that name."""
    probe = ("import importlib.util as u; import medtune.search.cli, medtune.trainables.train; "
             "print(u.find_spec('search'), u.find_spec('trainables'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


def test_every_package_folder_is_installed_and_shipped_in_the_image():
    """pyproject lists the packages explicitly (the package-dir mapping needs it): a new sub-package
    that is not listed would work in the editable install and be missing from a wheel."""
    import tomllib

    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"medtune": REPO / "medtune", "medtune.search": REPO / "search", "medtune.trainables": REPO / "trainables"}
    found = {".".join([name, *init.parent.relative_to(folder).parts])
             for name, folder in roots.items() for init in folder.rglob("__init__.py")}
    assert found == declared
    dockerfile = (REPO / "cluster" / "Dockerfile").read_text()
    for folder in roots.values():
        assert f" {folder.name} ./{folder.name}" in dockerfile, folder.name


#: What each sub-package of search/ may import of the others (their docstrings say why).
MAY_IMPORT = {"spec": set(), "tracking": {"spec"}, "run": {"spec", "tracking", "results"},
              "results": {"spec", "tracking", "run"}}


def test_search_sub_packages_import_only_what_their_docstrings_allow():
    for package, allowed in MAY_IMPORT.items():
        for path in (REPO / "search" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for name in names:
                    parts = name.split(".")
                    if parts[:2] == ["medtune", "search"] and len(parts) > 2 and parts[2] in MAY_IMPORT:
                        assert parts[2] in allowed | {package}, f"{path.relative_to(REPO)} imports {name}"
