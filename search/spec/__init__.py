"""The space file: YAML in, a validated ``SweepSpec`` out.

- ``loader``: reads the YAML (``yaml.safe_load`` only) and applies ``--set`` overrides;
- ``sweep_spec``: ``SweepSpec``, ``SpecError`` and ``validate_spec`` (every problem in one error, each
  naming its key);
- ``sections``: each section's dataclass (``data:`` is ``medtune.trainables.data.DataConfig`` itself);
- ``section_checks``: one reader per section, on the shared validation kit ``medtune.trainables.checks``;
- ``trial_keys``: ``space:`` and ``fixed:`` checked against the trial config's keys;
- ``space``: the search-space distributions and the Optuna define-by-run function built from them;
- ``advice``: the warnings ``medtune validate`` gives about a valid sweep that is unlikely to generalise;
- ``gpu_advice``: the packing rule, and warnings about GPUs asked for and not there, or there and left idle.

May import ``medtune.trainables`` (its key tables and registry) and ``medtune.search.credentials``;
never Ray, MLflow or another ``medtune.search`` sub-package.
"""
