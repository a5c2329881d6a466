"""What a sweep hands back, and what is made from it.

- ``leaderboard``: the ranking of the trials and ``best_config.yaml``;
- ``best``: ``medtune best``, the same ranking read back from MLflow;
- ``plots``: the sweep's figures (learning curves, Optuna's views, importances);
- ``final_members`` (what ``medtune final`` trained, as data), ``final_calibration``, ``final_reports``,
  ``final_artifacts``, ``final_figures``, ``final_gradcam``, ``final_outcome``: what is made of a final
  run's models (the calibration of the held-out and test scores, the test reports, the output
  folder, the ROC/confusion figures, Grad-CAM, what the API returns); the training itself is a run
  (``medtune.search.run.final``);
- ``calibration``: the reliability diagrams, ECE and Brier score of a two-class final model, before and
  after calibration;
- ``report_html`` (with ``_html``): the final run's self-contained ``report.html``;
- ``final_bundle``: the final run's ``model/`` (the best model as a bundle ``medtune predict`` reads);
  ``predictions`` and ``prediction_gradcam``: what ``medtune predict`` hands back, its CSV and heat maps.

May import ``spec``, ``tracking`` and ``medtune.trainables``; never ``run`` (which uses this package).
"""
