"""MLflow: everything medtune writes to or reads from a tracking server.

- ``callback``: the Tune callback that mirrors each trial as a child run of the sweep's parent run, over
  the private ``_queue`` (an ordered MLflow work queue that waits out an outage), ``_child_runs`` (the
  MLflow calls) and ``_best`` (each trial's best epoch and checkpoint);
- ``trial_runs``: a trial run's name, params, metrics, outcome and closing tags (no Ray or MLflow at import);
- ``client`` and ``models``: the driver's MLflow client and the checks before a sweep relies on it; logged models
  (a model bundle as a pyfunc model from code, ``pyfunc_model``: raw images in, probabilities and decisions out);
- ``model_download``: a model named by an MLflow URI, downloaded for ``medtune predict``;
- ``client_process``: an MlflowClient in a child process, for stores that would run on the driver;
- ``run_tags``: MLflow's context tags and medtune's version, on every run;
- ``sweep_run``: the sweep's parent run (tags, params, artifacts, best model, shared view, failed-on-exit);
- ``sweep_reader``: what ``medtune best`` reads back from MLflow, as plain data;
- ``final_run``: the MLflow run of ``medtune final`` (metrics, report, model, links to its sweep);
- ``run_notes`` and ``ui_links``: the run notes and deep links that make the UI the place to compare.

May import ``spec`` and ``medtune.trainables``; not ``run`` or ``results``.
"""
