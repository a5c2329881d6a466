"""The space file: YAML in, a validated ``SweepSpec`` out.

- ``loader``: reads the YAML (``yaml.safe_load`` only) and applies ``--set`` overrides;
- ``sweep_spec``: the ``SweepSpec`` dataclasses and their validation, with errors that name the key;
- ``space``: the search-space distributions and the Optuna define-by-run function built from them;
- ``advice``: the warnings ``medtune validate`` gives about a valid sweep that is unlikely to generalise.

May import ``medtune.trainables`` (its key tables and registry) and ``medtune.search.credentials``;
never Ray, MLflow or another ``medtune.search`` sub-package.
"""
