"""Run descriptions (MLflow's run note, tag ``mlflow.note.content``) that make the sweep's parent
run the place to start in MLflow's UI.

The parent's note links to its trials in MLflow's runs table, best first (``search/tracking/ui_links.py``),
the best trial, its ``best_config.yaml``, the plots, the leaderboard and every ``medtune final``
run made from the sweep (``final`` appends itself); the final run's
note links back to the sweep and the trial it retrained, and to its own ``report.html``. Links are
the UI's own hash routes, relative to the page, so they work behind any host name or prefix the
tracking server is served under.
"""

from __future__ import annotations

from typing import Any, Iterable

from medtune.search.spec.sweep_spec import BEST_CONFIG_FILE
from medtune.search.tracking.ui_links import artifact_link, run_link, sweep_runs_route  # noqa: F401  (links' old home)

NOTE_TAG = "mlflow.note.content"
FINALS_HEADING = "### Final runs"
NO_FINAL_YET = f"None yet: `medtune final {BEST_CONFIG_FILE}` retrains the best configuration and adds itself here."


def _best_child(client: Any, experiment_id: str, parent_run_id: str, trial_id: str) -> Any:
    runs = client.search_runs([experiment_id], max_results=1, filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' AND tags.`medtune.trial_id` = '{trial_id}'"))
    return runs[0] if runs else None


def sweep_note(client: Any, experiment_id: str, parent_run_id: str, run_name: str, spec: Any, entries: list[Any],
               artifacts: Iterable[str], runs_route: str | None = None) -> str:
    """The parent run's note: what ran, and a link to each thing a reader comes for."""
    present = set(artifacts)
    outcomes = [getattr(e, "outcome", "") for e in entries]
    metric = spec.metric.name
    lines = [f"**Sweep `{run_name}`**: {len(entries)} trials over {', '.join(f'`{k}`' for k in spec.space) or 'no'} "
             f"searched values, ranked by the best `{metric}` ({spec.metric.mode}) over each trial's epochs; "
             f"{outcomes.count('completed')} completed, {outcomes.count('stopped_early')} stopped early by "
             f"{spec.search.scheduler.name.upper()}, {outcomes.count('failed')} failed.", ""]

    def item(label: str, path: str, extra: str = "") -> None:
        if path in present:
            lines.append(f"- {label}: [{path}]({artifact_link(experiment_id, parent_run_id, path)}){extra}")

    # First: every trial in the runs table, best first (this sweep's only; a URL MLflow's UI reads).
    lines.append(f"- All {len(entries)} trials, best first: [the runs table, by `best_{metric}`]"
                 f"({runs_route or sweep_runs_route(experiment_id, parent_run_id, metric, spec.metric.mode)})")
    ranked = [e for e in entries if e.best_epoch > 0]
    if ranked:
        best = ranked[0]
        child = _best_child(client, experiment_id, parent_run_id, best.trial_id)
        name = child.info.run_name if child is not None else best.trial_id
        target = run_link(experiment_id, child.info.run_id) if child is not None else None
        shown = f"[{name}]({target})" if target else f"`{name}`"
        lines.append(f"- Best trial: {shown}, `best_{metric}` = {best.best_value:.4f} at epoch {best.best_epoch}")
    item("Its configuration", BEST_CONFIG_FILE, f" (`medtune final {BEST_CONFIG_FILE}` retrains and tests it)")
    item("Learning curves, with where ASHA stopped each trial", "plots/learning_curves.png")
    item("Which values mattered", "plots/param_importances.png", " (read its caveat: few trials make it noisy)")
    item("The objective against each searched value", "plots/parallel_coordinates.png")
    item("The search over time", "plots/optimization_history.png")
    item("Every trial, ranked", "leaderboard.csv")
    item("ASHA's rungs and cut-offs", "asha_rungs.json")
    lines += ["", FINALS_HEADING, NO_FINAL_YET]
    return "\n".join(lines)


def final_line(experiment_id: str, run_id: str, run_name: str, report: Any) -> str:
    auc = report.metrics.get("roc_auc")
    low, high = report.intervals.get("roc_auc", (float("nan"), float("nan")))
    detail = f": test AUC {auc:.4f} (95% CI {low:.4f}-{high:.4f})" if auc is not None else ""
    return (f"- [{run_name}]({run_link(experiment_id, run_id)}){detail}, "
            f"[report.html]({artifact_link(experiment_id, run_id, 'report/report.html')})")


#: MLflow caps a tag value at 8,000 characters; past this the oldest final runs leave the list.
MAX_NOTE_CHARS = 7500


def with_final(note: str, line: str) -> str:
    """The sweep's note with one more final run listed (a note without the section gets one)."""
    head, _, tail = note.replace(NO_FINAL_YET, "").partition(FINALS_HEADING)
    finals = [x for x in tail.strip().splitlines() if x.strip()] + [line]
    while len(finals) > 1 and len(head) + sum(len(x) + 1 for x in finals) > MAX_NOTE_CHARS - len(FINALS_HEADING) - 4:
        finals.pop(0)
    return f"{head.rstrip()}\n\n{FINALS_HEADING}\n" + "\n".join(finals)


def final_note(spec: Any, experiment_id: str, run_id: str) -> str:
    provenance = spec.provenance
    parts = ["**Final run**: retrains one configuration on train + val and evaluates it once on the test split."]
    parent = provenance.get("parent_run_id")
    if parent:
        parts.append(f"- From sweep [{provenance.get('sweep') or parent}]({run_link(experiment_id, parent)}), "
                     f"trial `{provenance.get('trial_id')}`")
    parts.append(f"- The report: [report.html]({artifact_link(experiment_id, run_id, 'report/report.html')}) "
                 f"(also `report/report.md`, `report/report.json`)")
    return "\n".join(parts)


def link_final_and_sweep(client: Any, spec: Any, experiment_id: str, run_id: str, report: Any) -> None:
    """Both ways: the final run's note points to its sweep, the sweep's note lists the final run."""
    client.set_tag(run_id, NOTE_TAG, final_note(spec, experiment_id, run_id))
    parent = spec.provenance.get("parent_run_id")
    if not parent:
        return
    sweep = client.get_run(parent)
    name = client.get_run(run_id).info.run_name
    note = sweep.data.tags.get(NOTE_TAG, "")
    client.set_tag(parent, NOTE_TAG, with_final(note, final_line(sweep.info.experiment_id, run_id, name, report)))
