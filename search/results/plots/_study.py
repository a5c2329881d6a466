"""The Optuna study's trials as the study plots read them.

The searcher (``medtune.search.run.searcher``) tells the study finished trials as COMPLETE with
their best epoch's value and ASHA-stopped ones as PRUNED with their per-epoch values as
intermediate values: exactly what TPE modelled, and what these helpers hand the plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtune.search.results.plots._style import architecture_colours, default_architecture, known_architectures
from medtune.search.spec.sweep_spec import SweepSpec

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def trials(study: Any, state_name: str) -> list["FrozenTrial"]:
    """The study's trials in one state (``"COMPLETE"``, ``"PRUNED"``, ``"FAIL"``), without copies."""
    from optuna.trial import TrialState

    return list(study.get_trials(deepcopy=False, states=(TrialState[state_name],)))


def architecture_of(trial: "FrozenTrial", spec: SweepSpec) -> str:
    """The trial's architecture: searched, recorded as a user attribute, or the spec's only one."""
    value = trial.params.get("architecture", trial.user_attrs.get("architecture"))
    return str(value) if value is not None else default_architecture(spec)


def last_intermediate(trial: "FrozenTrial") -> float | None:
    """The last value a pruned trial reported (where ASHA stopped it), if it reported one."""
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def study_colours(study: Any, spec: SweepSpec) -> dict[str, str]:
    """``architecture_colours`` over every architecture the spec or a trial of the study names."""
    return architecture_colours(known_architectures(spec, (architecture_of(t, spec) for t in study.trials)))
