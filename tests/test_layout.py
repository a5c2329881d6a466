"""Project layout rules that are easy to break by accident."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow  # runs the CLI in a fresh interpreter
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
                for d in [*project["dependencies"], *project["optional-dependencies"]["gpu"]]}
    # The optional extra's module, which need not be installed here (no GPU): its distribution by name.
    distributions = {"pynvml": ["nvidia-ml-py"], **importlib.metadata.packages_distributions()}
    missing = {}
    for path in [*(REPO / "medtune").rglob("*.py"), *(REPO / "search").rglob("*.py"),
                 *(REPO / "trainables").rglob("*.py")]:
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


@pytest.mark.slow  # builds and inspects a wheel (~10 s)
def test_installed_names_are_under_medtune(tmp_path):
    """``search`` and ``trainables`` are folders here but are installed as ``medtune.search`` and
    ``medtune.trainables``, so they cannot collide with another installed package of that name."""
    probe = ("import importlib.util as u; import medtune.cli, medtune.trainables.train; "
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


#: What each sub-package of search/ may import of the others: one order, spec <- tracking <- results
#: <- run (docs/architecture.md says why), so no two of them import each other.
MAY_IMPORT = {"spec": set(), "tracking": {"spec"}, "results": {"spec", "tracking"},
              "run": {"spec", "tracking", "results"}}
#: The installed packages and the folders they come from.
PACKAGE_ROOTS = {"medtune": REPO / "medtune", "medtune.search": REPO / "search",
                 "medtune.trainables": REPO / "trainables"}


def _modules() -> dict[str, Path]:
    """Every module of the three packages by its installed name (a package by its ``__init__``)."""
    modules = {}
    for root, folder in PACKAGE_ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = [root, *path.relative_to(folder).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks (never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports when its code runs: at the top or inside a function
    (an import moved into a function still makes a cycle), not under ``TYPE_CHECKING``.
    ``from package import name`` counts as an import of ``package.name`` when that is a module."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_only(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                     *filter(None, [base])])
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module and not module.startswith(name + "."):  # a package's own init
                    targets.add(name)
        graph[module] = targets
    return graph


def test_no_module_imports_itself_through_others():
    """No import cycle between modules, counting the imports inside functions that used to hide them."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_search_sub_packages_import_only_what_their_docstrings_allow():
    graph = import_graph()
    for module, targets in graph.items():
        parts = module.split(".")
        if parts[:2] != ["medtune", "search"] or len(parts) < 3 or parts[2] not in MAY_IMPORT:
            continue
        for target in targets:
            other = target.split(".")
            if other[:2] == ["medtune", "search"] and len(other) > 2 and other[2] in MAY_IMPORT:
                assert other[2] in MAY_IMPORT[parts[2]] | {parts[2]}, f"{module} imports {target}"


def test_the_packages_import_in_one_direction():
    """trainables never imports search or the API; search never imports the API (``medtune``)."""
    for module, targets in import_graph().items():
        for target in targets:
            if module.startswith("medtune.trainables"):
                assert target.startswith("medtune.trainables"), f"{module} imports {target}"
            if module.startswith("medtune.search") and not module.endswith("__main__"):
                assert target.startswith(("medtune.search", "medtune.trainables")), f"{module} imports {target}"
