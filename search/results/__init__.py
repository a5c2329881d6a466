"""What a sweep hands back, and what is made from it.

- ``leaderboard``: the ranking of the trials and ``best_config.yaml``;
- ``best``: ``medtune best``, the same ranking read back from MLflow;
- ``plots``: the sweep's figures (learning curves, Optuna's views, importances);
- ``final``: ``medtune final``, one more training of the best configuration and one test evaluation;
- ``final_training``, ``final_calibration``, ``final_reports``, ``final_artifacts``, ``final_figures``,
  ``final_gradcam``: its steps (what trains, the calibration of the held-out and test scores, the test
  reports, the output folder, the ROC/confusion figures, Grad-CAM);
- ``calibration``: the reliability diagrams, ECE and Brier score of a two-class final model, before and
  after calibration;
- ``report_html`` (with ``_html``): the final run's self-contained ``report.html``.

May import ``spec``, ``tracking`` and ``medtune.trainables``; ``final`` also ``run``'s pre-flight
checks and the trial's fixed values (it trains the way a trial does).
"""
