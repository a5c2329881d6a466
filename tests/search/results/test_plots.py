"""The sweep's plots: learning curves with ASHA's stopping points, and the study's history, parallel
coordinates and importances, each readable on its own and with one colour per architecture across all
(the searcher that fills the study: test_study.py)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from medtune.search.results.plots import (
    MAX_TRIALS_IN_LEGEND,
    TOP_TRIALS_NAMED,
    architecture_colours,
    importance_caveat,
    known_architectures,
    learning_curves,
    learning_curves_figure,
    optimization_history_figure,
    parallel_coordinates_figure,
    param_importances_figure,
    sweep_plots,
    trial_number,
)
from medtune.search.spec.sweep_spec import validate_spec

ARCHITECTURES = ["simple_cnn", "resnet18", "mobilenetv2_100"]
STAGES = {"simple_cnn": 3, "resnet18": 5, "mobilenetv2_100": 5}
SPEC = validate_spec({
    "name": "plots", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
    "search": {"num_samples": 4, "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2}},
    "space": {"lr": {"loguniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0.1, 0.5]},
              "frozen_depth": {"int": [0, 5]}, "architecture": {"choice": ARCHITECTURES}},
}, source="plots.yaml")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _fake(n_epochs: int, start: float, number: int | None = None, architecture: str = "simple_cnn"):
    """A Tune result as the plots read it; ``number`` gives it Tune's experiment tag (``<n + 1>_...``)."""
    frame = pd.DataFrame({"epoch": range(1, n_epochs + 1), "val_auc": [start + 0.01 * i for i in range(n_epochs)]})
    metrics = {} if number is None else {"experiment_tag": f"{number + 1}_architecture={architecture}"}
    return SimpleNamespace(metrics_dataframe=frame, config={"architecture": architecture, "lr": 1e-3}, metrics=metrics)


def _params(number: int, architecture: str) -> tuple[dict, dict]:
    """Parameters and distributions as the searcher's define-by-run space asks for them: the frozen depth's
    range depends on the architecture."""
    params = {"architecture": architecture, "lr": 10 ** (-4 + (number % 5) * 0.5), "dropout": 0.1 + 0.05 * (number % 8),
              "frozen_depth": number % (STAGES[architecture] + 1)}
    distributions = {"architecture": CategoricalDistribution(ARCHITECTURES),
                     "lr": FloatDistribution(1e-4, 1e-2, log=True), "dropout": FloatDistribution(0.1, 0.5),
                     "frozen_depth": IntDistribution(0, STAGES[architecture])}
    return params, distributions


def _study(plan: list[tuple[str, list[float], bool]]) -> optuna.Study:
    """A study as MedtuneOptunaSearch leaves it: (architecture, values per epoch, stopped by ASHA) per trial;
    finished trials COMPLETE with their best value, stopped ones PRUNED with their per-epoch values."""
    study = optuna.create_study(direction="maximize")
    for number, (architecture, values, stopped) in enumerate(plan):
        params, distributions = _params(number, architecture)
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, intermediate_values=dict(enumerate(values, start=1)),
            state=TrialState.PRUNED if stopped else TrialState.COMPLETE, value=None if stopped else max(values)))
    return study


def _results(plan: list[tuple[str, list[float], bool]]) -> list[SimpleNamespace]:
    """The same trials as Tune's results (trial n tagged ``n+1_...``, as Tune's counter does)."""
    out = []
    for number, (architecture, values, _) in enumerate(plan):
        frame = pd.DataFrame({"epoch": range(1, len(values) + 1), "val_auc": values, "epochs_total": 4})
        out.append(SimpleNamespace(metrics_dataframe=frame, config=_params(number, architecture)[0],
                                   metrics={"experiment_tag": f"{number + 1}_x"}))
    return out


FOUR = [("simple_cnn", [0.90, 0.92, 0.935, 0.937], False), ("resnet18", [0.97, 0.985, 0.99, 0.996], False),
        ("mobilenetv2_100", [0.93], True), ("resnet18", [0.95, 0.96], True)]


def _many(n: int) -> list[tuple[str, list[float], bool]]:
    """n trials over the three architectures in turn; every fourth runs the whole budget."""
    base = {"simple_cnn": 0.90, "resnet18": 0.95, "mobilenetv2_100": 0.93}
    plan = []
    for number, architecture in zip(range(n), itertools.cycle(ARCHITECTURES)):
        epochs = 4 if number % 4 == 0 else 1 + number % 2
        plan.append((architecture, [base[architecture] + 0.001 * number + 0.01 * e for e in range(epochs)], epochs < 4))
    return plan


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _inside_figure(fig, artist) -> bool:
    fig.canvas.draw()
    box, frame = artist.get_window_extent(), fig.bbox
    return box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1 and box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1


def _colour_of(fig, number: int) -> str:
    """The colour a figure drew trial ``number`` in (its artists carry the gid ``trial <number>``)."""
    for artist in fig.axes[0].get_children():
        if artist.get_gid() == f"trial {number}":
            if isinstance(artist, PathCollection):
                return to_hex(artist.get_facecolor()[0])
            return to_hex(artist.get_color())
    raise AssertionError(f"trial {number} is not drawn")


# --------------------------------------------------------------------------------------------
# Learning curves


def test_without_a_study_only_the_learning_curves_are_drawn(tmp_path):
    results = [_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9), _fake(4, 0.92)]
    paths = sweep_plots(results, None, SPEC, tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png"] and paths[0].stat().st_size > 5000


def test_learning_curves_title_counts_asha_stops_and_fits_in_the_figure():
    fig = learning_curves_figure([_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9)], SPEC)
    title = fig.axes[0].title
    assert "stopped by ASHA, 2" in title.get_text() and "full budget (4 epochs), 1" in title.get_text()
    assert _inside_figure(fig, title)


def test_a_long_sweep_name_wraps_the_title_instead_of_clipping_it():
    spec = validate_spec({**SPEC.raw, "name": "a-very-long-sweep-name-" * 5}, source="long.yaml")
    title = learning_curves_figure([_fake(4, 0.9)], spec).axes[0].title
    assert title.get_text().count("\n") >= 2 and _inside_figure(title.figure, title)


def test_the_legend_names_each_trial_and_says_what_the_markers_mean():
    results = [_fake(4, 0.90, 0, "simple_cnn"), _fake(1, 0.95, 7, "mobilenetv2_100"), _fake(2, 0.93, 3, "resnet18")]
    assert _legend_texts(learning_curves_figure(results, SPEC)) == [
        "00 simple_cnn", "03 resnet18", "07 mobilenetv2_100", "stopped by ASHA (2)", "ran the full budget (1)"]


def test_with_many_trials_the_legend_names_architectures_and_the_best_few():
    plan = _many(MAX_TRIALS_IN_LEGEND + 4)
    texts = _legend_texts(learning_curves_figure(_results(plan), SPEC))
    best = [t for t in texts if t.startswith("best ")]
    assert texts[:3] == sorted(ARCHITECTURES)  # one entry per architecture, in the colour order
    assert best == ["best 1: 04 resnet18 (0.984)", "best 2: 13 resnet18 (0.973)", "best 3: 08 mobilenetv2_100 (0.968)"]
    assert texts[-2:] == ["stopped by ASHA (12)", "ran the full budget (4)"]
    assert len(texts) == len(ARCHITECTURES) + TOP_TRIALS_NAMED + 2


def test_the_time_limit_is_named_as_a_cause_of_early_stops():
    spec = validate_spec({**SPEC.raw, "search": {**SPEC.raw["search"], "time_budget_s": 600}}, source="t.yaml")
    assert "stopped by ASHA or the time limit (1)" in _legend_texts(learning_curves_figure([_fake(1, 0.8)], spec))


def test_a_trial_is_numbered_as_in_the_study():
    assert trial_number(SimpleNamespace(metrics={"experiment_tag": "8_architecture=resnet18"}), 0) == 7
    frame = pd.DataFrame({"epoch": [1], "experiment_tag": ["12_lr=0.001"]})
    assert trial_number(SimpleNamespace(metrics={}, metrics_dataframe=frame), 0) == 11
    assert trial_number(SimpleNamespace(metrics_dataframe=None), 5) == 5  # no tag: its place in the results


# --------------------------------------------------------------------------------------------
# One colour per architecture


def test_architecture_colours_come_from_one_palette_in_a_fixed_order():
    colours = architecture_colours(known_architectures(SPEC))
    assert list(colours) == sorted(ARCHITECTURES) and len(set(colours.values())) == 3
    assert architecture_colours(known_architectures(SPEC, ["vgg16_bn"])) == {**colours, "vgg16_bn": "#d62728"}


def test_an_architecture_has_the_same_colour_in_every_plot():
    study, results = _study(FOUR), _results(FOUR)
    figures = [learning_curves_figure(results, SPEC), optimization_history_figure(study, SPEC),
               parallel_coordinates_figure(study, SPEC)]
    resnet = architecture_colours(known_architectures(SPEC))["resnet18"]
    assert [_colour_of(fig, 1) for fig in figures] == [resnet] * 3
    assert _colour_of(figures[0], 0) == _colour_of(figures[1], 0) != resnet  # simple_cnn


# --------------------------------------------------------------------------------------------
# Optimisation history


def test_the_history_has_integer_ticks_pruned_trials_and_the_best_so_far():
    fig = optimization_history_figure(_study(FOUR), SPEC)
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)
    marks = {c.get_gid(): c for c in ax.collections}
    assert set(marks) == {"trial 0", "trial 1", "trial 2", "trial 3"}
    assert marks["trial 3"].get_offsets()[0][1] == pytest.approx(0.96)  # last value before ASHA stopped it
    assert marks["trial 3"].get_alpha() < 1  # drawn faint
    best = [line for line in ax.get_lines() if line.get_gid() is None][0]
    assert list(best.get_ydata()) == pytest.approx([0.937, 0.996, 0.996])  # finished trials only
    assert "finished: best epoch (2)" in _legend_texts(fig) and "stopped by ASHA: last epoch (2)" in _legend_texts(fig)


# --------------------------------------------------------------------------------------------
# A "min" objective


LOSS = validate_spec({**SPEC.raw, "metric": {"name": "val_loss", "mode": "min"}}, source="loss.yaml")


def _loss_study(values: list[float]) -> optuna.Study:
    """Finished trials with these val_loss values, in order."""
    study = optuna.create_study(direction="minimize")
    for number, value in enumerate(values):
        params, distributions = _params(number, ARCHITECTURES[number % 3])
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    return study


def test_with_a_min_objective_the_smallest_value_is_the_best_in_every_plot():
    plan = _many(MAX_TRIALS_IN_LEGEND + 4)
    results = []
    for result in _results(plan):  # the same trials, as losses: 1 - AUC
        frame = result.metrics_dataframe.rename(columns={"val_auc": "val_loss"})
        frame["val_loss"] = 1 - frame["val_loss"]
        results.append(SimpleNamespace(metrics_dataframe=frame, config=result.config, metrics=result.metrics))
    best = [t for t in _legend_texts(learning_curves_figure(results, LOSS)) if t.startswith("best ")]
    assert best == ["best 1: 04 resnet18 (0.016)", "best 2: 13 resnet18 (0.027)", "best 3: 08 mobilenetv2_100 (0.032)"]

    study = _loss_study([0.3, 0.2, 0.25, 0.2, 0.1])
    history = optimization_history_figure(study, LOSS).axes[0]
    line = [line for line in history.get_lines() if line.get_gid() is None][0]
    assert list(line.get_ydata()) == pytest.approx([0.3, 0.2, 0.2, 0.2, 0.1, 0.1])
    widths = {line.get_gid(): line.get_linewidth()
              for line in parallel_coordinates_figure(study, LOSS).axes[0].get_lines()
              if line.get_gid()}
    assert max(widths, key=widths.get) == "trial 4" and sorted(widths.values())[-2] < widths["trial 4"]


# --------------------------------------------------------------------------------------------
# Parallel coordinates


def _assert_no_label_overlaps(fig) -> None:
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [*ax.texts, *ax.get_xticklabels()]
    overlapping = [(a.get_text(), b.get_text()) for a, b in itertools.combinations(labels, 2)
                   if a.get_window_extent().overlaps(b.get_window_extent())]
    assert not overlapping
    assert all(_inside_figure(fig, t) for t in [*labels, ax.title])


@pytest.mark.slow  # renders a figure
def test_parallel_coordinates_have_an_axis_per_parameter_and_the_objective():
    fig = parallel_coordinates_figure(_study(_many(16)), SPEC)
    ax = fig.axes[0]
    names = [label.get_text() for label in ax.get_xticklabels()]
    assert names == ["architecture", "lr\n(log)", "dropout", "frozen_depth", "val_auc\n(objective)"]
    ticks = [t.get_text() for t in ax.texts]
    assert {"1e-4", "1e-3", "1e-2", *ARCHITECTURES, "0", "5"} <= set(ticks)  # log decades, names, integers
    assert "12 stopped by ASHA in grey" in ax.title.get_text()
    assert sum(line.get_gid() is not None for line in ax.get_lines()) == 4  # one coloured line per finished trial
    _assert_no_label_overlaps(fig)


WIDE = validate_spec({**SPEC.raw, "name": "a-sweep-with-a-long-name-and-many-searched-parameters-" * 2, "space": {
    "architecture": {"choice": ["tf_efficientnet_lite0", "mobilenetv2_100", "simple_cnn", "inception_v3"]},
    "lr": {"loguniform": [1e-5, 1e-2]}, "frozen_depth": {"int": [0, 5]}, "dropout": {"uniform": [0.1, 0.5]},
    "optimizer": {"choice": ["adamw", "sgd"]}, "label_smoothing": {"uniform": [0.0, 0.2]},
    "weight_decay": {"loguniform": [1e-6, 1e-3]}, "batch_size": {"choice": [16, 32, 64]},
    "class_weighted": {"choice": [True, False]}}}, source="wide.yaml")


def _sampled_study(spec, n: int, finished_every: int = 3) -> optuna.Study:
    """n trials with values drawn from the spec's own ranges, every ``finished_every``-th finished."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    ranges = {name: dist.to_optuna() for name, dist in spec.space.items()}
    for number in range(n):
        trial = study.ask(fixed_distributions=ranges)
        trial.report(0.9, 1)
        finished = number % finished_every == 0
        study.tell(trial, 0.9 + 0.005 * (number % 7) if finished else None,
                   state=TrialState.COMPLETE if finished else TrialState.PRUNED)
    return study


@pytest.mark.slow  # renders a large figure
def test_parallel_coordinates_of_many_parameters_with_long_names_stay_readable():
    fig = parallel_coordinates_figure(_sampled_study(WIDE, 16), WIDE)
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == len(WIDE.space) + 1
    assert "tf_efficientnet_\nlite0" in [t.get_text() for t in ax.texts]  # long names fold at underscores
    _assert_no_label_overlaps(fig)


# --------------------------------------------------------------------------------------------
# Parameter importances


@pytest.mark.parametrize("finished, params, reliable", [(9, 3, False), (10, 3, True), (10, 6, False), (12, 6, True)])
def test_importances_need_ten_finished_trials_and_two_per_parameter(finished, params, reliable):
    assert (importance_caveat(finished, params) is None) == reliable


def _finished(n: int) -> list[tuple[str, list[float], bool]]:
    """n finished trials where only the architecture moves the objective."""
    base = {"simple_cnn": 0.937, "resnet18": 0.996, "mobilenetv2_100": 0.97}
    return [(a, [base[a] + 0.0005 * (i % 3)], False) for i, a in zip(range(n), itertools.cycle(ARCHITECTURES))]


def test_importances_from_few_finished_trials_say_they_are_not_reliable():
    fig = param_importances_figure(_study(_finished(4) + [("resnet18", [0.9], True)] * 3), SPEC)
    title = fig.axes[0].get_title()
    assert "from only 4 finished trials (fewer than 10): not reliable" in title.lower()
    assert "fANOVA over 4 finished trials (3 stopped by ASHA left out)" in title
    assert "fANOVA" in fig.axes[0].get_xlabel()


def test_importances_from_enough_finished_trials_carry_no_caveat_and_rank_every_parameter():
    fig = param_importances_figure(_study(_finished(12)), SPEC)
    ax = fig.axes[0]
    assert "reliable" not in ax.get_title() and "fANOVA over 12 finished trials" in ax.get_title()
    ranked = [label.get_text() for label in ax.get_yticklabels()]
    assert sorted(ranked) == sorted(SPEC.space)  # frozen_depth too, though its range depends on the architecture
    assert ranked[-1] == "architecture"  # the most important is drawn on top


# --------------------------------------------------------------------------------------------
# Writing the PNGs


def test_every_plot_is_written_as_a_png(tmp_path):
    plan = _many(16)
    paths = sweep_plots(_results(plan), _study(plan), SPEC, tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png", "optimization_history.png", "parallel_coordinates.png",
                                       "param_importances.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in paths)


def test_the_study_plots_need_two_finished_trials(tmp_path):
    plan = [FOUR[0], FOUR[2], FOUR[3]]
    paths = sweep_plots(_results(plan), _study(plan), SPEC, tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png"]


def test_learning_curves_keeps_its_call_and_file(tmp_path):
    path = learning_curves([_fake(2, 0.8)], SPEC, tmp_path / "learning_curves.png")
    assert path == tmp_path / "learning_curves.png" and path.stat().st_size > 5000
