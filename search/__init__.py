"""medtune's sweep driver, by concern (``docs/architecture.md`` has the map):

- ``spec``: the space file, read and validated;
- ``run``: a sweep on Ray Tune, with Optuna TPE and ASHA;
- ``tracking``: MLflow;
- ``results``: the leaderboard, ``medtune best``, the plots and ``medtune final``;
- ``cli`` and ``credentials``: the command line, and the rule that no secret is written or printed.

Installed as ``medtune.search``; nothing in ``medtune.trainables`` imports it.
"""
