"""What a sweep hands back, and what is made from it.

- ``leaderboard``: the ranking of the trials and ``best_config.yaml``;
- ``best``: ``medtune best``, the same ranking read back from MLflow;
- ``plots``: the sweep's figures (learning curves, Optuna's views, importances);
- ``final``: ``medtune final``, one more training of the best configuration and one test evaluation;
- ``report_html``: the final run's self-contained ``report.html``.

May import ``spec``, ``tracking`` and ``medtune.trainables``; ``final`` also the Tuner's trial
function through ``run.tuner``.
"""
