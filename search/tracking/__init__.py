"""MLflow: everything medtune writes to or reads from a tracking server.

- ``callback``: the Tune callback that mirrors each trial as a child run of the sweep's parent run;
- ``client_process``: an MlflowClient in a child process, for stores that would run on the driver;
- ``run_tags``: MLflow's context tags and medtune's version, on every run;
- ``run_notes`` and ``ui_links``: the run notes and deep links that make the UI the place to compare.

May import ``spec`` and ``medtune.trainables``; not ``run`` or ``results``.
"""
