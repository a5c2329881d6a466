"""``medtune`` command line: the commands' arguments, what each prints, and its exit status.

Each command calls the function of the same name in ``medtune.api`` and prints what it returns,
with links into MLflow's UI built from the result (``tracking/ui_links.py``). Bad input exits
with status 2 and the message that names the key. Heavy imports (torch, Ray, MLflow) happen
inside the commands, so ``medtune --help`` and a failing ``validate`` answer quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Callable, Sequence

import medtune
from medtune import api
from medtune.search.credentials import redact_text, redact_uri
from medtune.search.spec.sweep_spec import BEST_CONFIG_FILE, DEFAULT_TRACKING_URI, SpecError, race_until
from medtune.search.tracking.client import resolved_tracking_uri
from medtune.search.tracking.sweep_reader import experiment_of
from medtune.search.tracking.ui_links import final_link_lines, sweep_link_lines
from medtune.trainables.data.split_names import describe_split_sources
from medtune.trainables.objective import DEFAULT_OBJECTIVE, Objective
from medtune.trainables.operating_point import DEFAULT_MULTICLASS_OPERATING_POINT, DEFAULT_OPERATING_POINT
from medtune.trainables.progress import PROGRESS_ENV

if TYPE_CHECKING:
    from medtune.search.run.outcome import SweepOutcome

EXIT_BAD_INPUT = 2


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="space file (YAML), e.g. spaces/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key by its dotted path (repeatable), e.g. --set search.num_samples=4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medtune",
        description="Hyperparameter search for transfer learning in medical imaging "
                    "(Ray Tune + Optuna TPE + ASHA over timm models, logged to MLflow).",
    )
    parser.add_argument("--version", action="version", version=f"medtune {medtune.__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="warnings and results only: no progress bars or per-epoch lines, no INFO logs")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="DEBUG logs too")
    sub = parser.add_subparsers(dest="command", required=True)

    sweep = sub.add_parser("sweep", help="run a sweep: RAY_ADDRESS joins a cluster, else Ray starts locally")
    _add_spec_arguments(sweep)
    sweep.add_argument("--name", help="Ray run name (default: <name>-<timestamp>)")
    sweep.add_argument("-o", "--best-config", help="where to write the best configuration "
                                                   "(default: <storage>/<run>/best_config.yaml)")

    resume = sub.add_parser("resume", help="continue a sweep whose driver died or whose job was stopped")
    resume.add_argument("run", help="the sweep's run folder, <storage>/<run name> (printed by 'medtune sweep')")
    resume.add_argument("-o", "--best-config", help="where to write the best configuration")

    best = sub.add_parser("best", help="write the best configuration of a finished sweep, read from MLflow")
    best.add_argument("experiment", help="the sweep's MLflow experiment (its name: in the space file)")
    best.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
                      help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db)")
    best.add_argument("--metric", help="rank by this reported metric instead of the sweep's objective")
    best.add_argument("--mode", choices=("min", "max"), help="with --metric; default: the metric's direction")
    best.add_argument("--run", help="the sweep's parent run id (default: the newest finished sweep)")
    best.add_argument("--top", type=int, default=5, help="keep the top K configurations for 'final --ensemble K'")
    best.add_argument("-o", "--output", default=BEST_CONFIG_FILE, help="where to write it (default: %(default)s)")

    final = sub.add_parser("final", help="train a configuration on train+val, evaluate once on test, report")
    _add_spec_arguments(final)
    final.add_argument("--epochs", choices=("budget", "best"), default="budget",
                       help="the sweep's full budget (max_t, in its unit), or the best trial's budget "
                            "up to its best epoch")
    final.add_argument("--operating-point", "--threshold", dest="operating_point", default="auto", metavar="RULE",
                       help="the decision rule, chosen on held-out scores after they are calibrated (Platt scaling); "
                            "--threshold is its old name. Two classes: auto (%(auto)s), balanced (the held-out "
                            "positive share: aims at balanced accuracy; alias calibrated), prior (0.5: aims at "
                            "accuracy), youden-mid (middle, in logit space, of the thresholds tying for the best "
                            "Youden's J), youden (scikit-learn's best-J point), sensitivity:T or specificity:T (meet "
                            "T on held-out images, e.g. sensitivity:0.90), cost:FN/FP=R (a missed positive costs R "
                            "false alarms: threshold 1/(1+R)), or a threshold on the calibrated scale such as 0.5. "
                            "More classes: auto (%(auto_multi)s), balanced or prior. Default: auto"
                       % {"auto": DEFAULT_OPERATING_POINT, "auto_multi": DEFAULT_MULTICLASS_OPERATING_POINT})
    final.add_argument("--ensemble", type=int, default=1, metavar="K",
                       help="also retrain the sweep's top-K configurations and average their probabilities")
    final.add_argument("--register", metavar="NAME", help="register the model in MLflow's model registry")
    final.add_argument("--out", help="folder for the report, plots and predictions (default: a temp folder)")

    predict = sub.add_parser("predict", help="score new images with a trained model: probabilities and decisions "
                                             "as a CSV (docs/predict.md)")
    predict.add_argument("model", metavar="MODEL",
                         help="medtune final's output folder (or its model/), a sweep trial's best_checkpoint/ "
                              "folder, or an MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/ID/PATH")
    predict.add_argument("input", metavar="INPUT",
                         help="an image (JPEG, PNG, DICOM), a folder of them (read recursively), an .npz (its "
                              "test_images, else images) or an s3:// prefix")
    predict.add_argument("--out", default="predictions.csv",
                         help="the CSV to write, one row per image (default: %(default)s)")
    predict.add_argument("--gradcam", metavar="DIR", help="also write a Grad-CAM heat map per image into DIR")
    predict.add_argument("--batch-size", type=int, metavar="N", help="images per forward pass (default: 64)")
    rule = predict.add_mutually_exclusive_group()
    rule.add_argument("--operating-point", metavar="RULE",
                      help="decide at another operating point, chosen on the held-out scores the model carries "
                           "(medtune final's rules: auto, balanced, prior, youden-mid, sensitivity:0.90, "
                           "specificity:0.95, cost:FN/FP=5, ...; more than two classes: balanced or prior); "
                           "default: the model's own")
    rule.add_argument("--threshold", type=float, metavar="X",
                      help="decide at this threshold on the calibrated positive-class score (two classes)")
    predict.add_argument("--tracking-uri", help="the MLflow store of a models:/ or runs:/ MODEL "
                                                "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db)")
    predict.add_argument("--max-bad-fraction", type=float, metavar="F",
                         help="share of unreadable images tolerated (default: the model's training setting, 0.01)")

    validate = sub.add_parser("validate", help="check a space file and its data without running anything")
    _add_spec_arguments(validate)

    sub.add_parser("architectures", help="list the architectures with their stages and minimum input size")
    return parser


def cmd_validate(args: argparse.Namespace) -> int:

    checked = api.validate(args.space, args.overrides)
    spec = checked.spec
    print(f"{args.space}: valid")
    print(f"  data: {spec.data.source} -> {checked.data_summary}")
    if splits := describe_split_sources(checked.data_summary, spec.data.val_fraction):
        print(f"  splits: {splits}")
    if checked.leaks is not None:
        print(f"  leakage and shortcut checks (data.on_leak: {spec.data.on_leak}): {checked.leaks.summary()}")
    print(f"  architectures: {', '.join(spec.architectures)}")
    print(f"  space: {', '.join(f'{k}={d.to_yaml()}' for k, d in spec.space.items()) or '(empty)'}")
    print(f"  objective: {spec.metric.name} ({spec.metric.mode}); {spec.search.num_samples} samples, "
          f"{spec.search.max_concurrent} at a time; {spec.search.sampler.name} sampler, "
          f"{spec.search.scheduler.name} scheduler, budget {spec.search.scheduler.max_t} {spec.search.scheduler.unit}"
          + (f"; {spec.search.cv}-fold cross-validated trials over train + val" if spec.search.cv else "")
          + (f", racing on one fold up to ASHA's last rung ({until} {spec.search.scheduler.unit})"
             if (until := race_until(spec.search)) is not None else ""))
    for warning in checked.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:

    outcome = api.sweep(args.space, args.overrides, name=args.name, best_config=args.best_config)
    spec = outcome.spec
    print(f"Ray results: {outcome.run_path}")
    if spec.mlflow.enabled:
        uri = redact_uri(spec.mlflow.tracking_uri)
        print(f"MLflow: {uri}, experiment {spec.experiment_name!r}, parent run {outcome.parent_run_id}")
        if outcome.parent_run_id:
            _print_ui_links(lambda: _sweep_link_lines(outcome))
    return 0 if outcome.best_config_path is not None else 1


def cmd_resume(args: argparse.Namespace) -> int:

    outcome = api.resume(args.run, best_config=args.best_config)
    print(f"Ray results: {outcome.run_path}")
    return 0 if outcome.best_config_path is not None else 1


def cmd_best(args: argparse.Namespace) -> int:

    found = api.best(args.experiment, args.tracking_uri, metric=args.metric, mode=args.mode, run=args.run,
                     top=args.top, output=args.output)
    best, prov = found.best, found.document["provenance"]
    print(f"Best of {len(found.entries)} trials of sweep {prov['sweep']} by {prov['metric']}: trial {best.trial_id}, "
          f"{prov['metric']} = {best.best_value:.4f} at epoch {best.best_epoch}; written to {found.path}")
    # the sweep's: its runs have best_<it>
    objective = (found.document.get("metric") or {}).get("name") or DEFAULT_OBJECTIVE
    if parent := prov.get("parent_run_id"):
        uri = resolved_tracking_uri(args.tracking_uri)
        _print_ui_links(lambda: sweep_link_lines(uri, experiment_of(uri, parent), parent, objective,
                                                 Objective.of(objective).mode))
    return 0


def cmd_final(args: argparse.Namespace) -> int:

    outcome = api.final(args.space, args.overrides, epochs=args.epochs, ensemble=args.ensemble,
                        register=args.register, out=args.out, operating_point=args.operating_point)
    print(f"Report, plots and predictions: {outcome.out_dir}")
    if outcome.run_id:
        print(f"MLflow: final run {outcome.run_id}" + (f", model {outcome.model_uri}" if outcome.model_uri else ""))
        _print_ui_links(lambda: final_link_lines(outcome.tracking_uri, outcome.experiment_id, outcome.run_id,
                                                 outcome.sweep_link))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    outcome = api.predict(args.model, args.input, out=args.out, gradcam=args.gradcam, batch_size=args.batch_size,
                          operating_point=args.operating_point, threshold=args.threshold,
                          tracking_uri=args.tracking_uri, max_bad_fraction=args.max_bad_fraction)
    decided = f"decided by {outcome.rule}" + (f" at threshold {outcome.threshold:.4g}"
                                              if outcome.threshold is not None else "")
    skipped = f", {len(outcome.bad)} unreadable skipped" if outcome.bad else ""
    print(f"{len(outcome.keys)} of {outcome.total} images scored ({decided}{skipped}): {outcome.out}")
    if outcome.gradcam_dir is not None:
        print(f"Grad-CAM heat maps: {outcome.gradcam_dir}")
    return 0


def _sweep_link_lines(outcome: SweepOutcome) -> list[str]:
    """The sweep's link: to the shared view the sweep stored (best value and searched values as
    columns) when it could store one, else to the plain filtered, sorted runs table."""
    spec = outcome.spec
    return sweep_link_lines(resolved_tracking_uri(spec.mlflow.tracking_uri), outcome.experiment_id,
                            outcome.parent_run_id, spec.metric.name, spec.metric.mode, outcome.view_route)


def _print_ui_links(lines: Callable[[], list[str]]) -> None:
    """Print the MLflow UI links that ``lines`` builds (search/tracking/ui_links.py: no credentials in them).
    A link is a convenience: when it cannot be built (MLflow asked for an experiment id did not
    answer) that is a warning, never a failed command."""
    try:
        for line in lines():
            print(line)
    except Exception as exc:
        reason = redact_text(f"{type(exc).__name__}: {exc}")
        logging.getLogger("medtune").warning("no MLflow UI link: %s", reason)


def cmd_architectures(args: argparse.Namespace) -> int:
    from medtune.trainables.models import get_architecture, list_architectures

    print(f"{'name':24} {'stages':>6} {'min px':>6}  imagenet weights")
    for name in list_architectures():
        info = get_architecture(name)
        print(f"{name:24} {info.num_stages:>6} {info.min_input_size:>6}  "
              f"{'yes' if info.has_imagenet_weights else 'no'}")
    return 0


COMMANDS = {"sweep": cmd_sweep, "resume": cmd_resume, "best": cmd_best, "final": cmd_final, "predict": cmd_predict,
            "validate": cmd_validate, "architectures": cmd_architectures}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    if args.quiet:  # an environment variable, so that Ray's workers and job drivers are quiet too
        os.environ[PROGRESS_ENV] = "0"
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(f"medtune: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # the traceback still helps; a URI's password in it must not be printed
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return 1


class RedactingFilter(logging.Filter):
    """Log records leave with the user info of any URI in them removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (redacted := redact_text(message)) != message:
            record.msg, record.args = redacted, None
        return True


if __name__ == "__main__":
    sys.exit(main())
