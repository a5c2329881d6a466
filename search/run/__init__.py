"""Running a sweep and a final training: pre-flight checks, Ray, the Tuner, the Optuna searcher and ASHA.

- ``sweep``: ``run_sweep`` and ``resume_sweep``, the orchestration read as a list of steps;
- ``final`` and ``final_training``: ``medtune final``, one more training of the best configuration
  (the same training function the trials run) and one test evaluation, as a list of steps;
- ``preflight``: every check of the input that can fail, before a trial starts;
- ``predict``: ``medtune predict``, a trained model's probabilities and decisions for new images;
- ``storage`` and ``record``: the run folder (local or a URI, through pyarrow) and its ``medtune_sweep.json``;
- ``outcome``: ``SweepOutcome``, what a sweep returns (light: ``import medtune`` loads it);
- ``ray_node``: starting or joining Ray;
- ``tuner``: the Tune ``Tuner`` (trainable, scheduler, callbacks, stopper);
- ``searcher`` and ``study``: Optuna TPE as a Tune searcher, and where its study is stored;
- ``asha_rungs`` and ``fail_fast``: the callbacks that carry ASHA's rungs through a resume and stop a
  sweep whose first trials all fail alike;
- ``_ray_compat``: every touch of what Ray Tune and Optuna do not offer publicly, each with the
  public API that is missing and the version it was checked on (``tests/search/run/test_ray_compat.py``
  fails, naming the attribute, when one moves).

May import ``spec``, ``tracking``, ``results`` and ``medtune.trainables``.
"""
