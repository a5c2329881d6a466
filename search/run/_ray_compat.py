"""The one place medtune reaches into Ray Tune's (and Ray's) private parts: what they do not offer publicly.

Every other module calls these small functions instead of reading a ``_name`` of a Ray or Optuna
object, so a Ray release that moves one of them breaks here, and
``tests/search/run/test_ray_compat.py`` (the canary) says which one before any sweep runs. Each
entry names the public API that is missing (or why the public one does not fit) and the versions it
was read on: ``CHECKED_RAY`` and ``CHECKED_OPTUNA``. ``pyproject.toml`` pins Ray and Optuna to the
minor versions checked; raise a pin only once the canary passes on the new version.

Medtune touches no private part of Optuna itself: the study is told through ``Study.tell``, its
public API. What is private is where Ray's ``OptunaSearch`` keeps the study and its trials.

Ray is imported inside the functions that need it: importing ``ray_node`` (whose constants the
benchmarks read, and which preflight imports only once the input is known to be good) does not load Ray.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import optuna
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

#: The versions whose sources every entry below was read against (``pyproject.toml`` pins these minors).
CHECKED_RAY = "2.60.0"
CHECKED_OPTUNA = "5.1.0"


class RayInternalsMoved(RuntimeError):
    """A private part of Ray this adapter relies on is not where it was on the checked versions.

    A ``RuntimeError``, not an ``AttributeError``: ``getattr(obj, name, default)`` and ``hasattr``
    must not turn a moved internal into a silent default.
    """


def _installed() -> str:
    import ray

    return f"Ray {ray.__version__}"


def _private(owner: Any, name: str, why: str) -> Any:
    """``owner.<name>``, or a ``RayInternalsMoved`` that names it, the versions and what it was for."""
    try:
        return getattr(owner, name)
    except AttributeError:
        kind = owner.__name__ if isinstance(owner, (type, ModuleType)) else type(owner).__qualname__
        raise RayInternalsMoved(
            f"{kind}.{name} is not there on {_installed()} (medtune's search/run/_ray_compat.py was checked on "
            f"Ray {CHECKED_RAY}, Optuna {CHECKED_OPTUNA}); it is needed for {why}. "
            "Run tests/search/run/test_ray_compat.py and update the adapter.") from None


# --- ASHA (ray.tune.schedulers.AsyncHyperBandScheduler, Ray 2.60.0) -----------------------------------
#
# Missing public API: the scheduler's rungs. ASHA has ``save(path)``/``restore(path)``, but Tune's
# experiment state never calls them (``TuneController.save_to_dir`` saves the searcher and the
# callbacks only), and they pickle and overwrite the whole ``__dict__`` (settings and the
# ``_trial_info`` of live trials included) through a file: medtune needs the recorded values as plain
# numbers inside the state of a callback Tune does save (``AshaRungs``), merged by milestone into the
# scheduler built from the space file, and readable for ``asha_rungs.json``. ``debug_string()`` gives
# the cut-offs as text only. So the rungs are read and filled through the entries below.


def asha_brackets(scheduler: "AsyncHyperBandScheduler") -> list[Any]:
    """ASHA's brackets (``_brackets``, a list of ``ray.tune.schedulers.async_hyperband._Bracket``)."""
    return list(_private(scheduler, "_brackets", "ASHA's rungs (medtune resume, asha_rungs.json)"))


def bracket_rungs(bracket: Any) -> list[tuple[float, dict[str, float]]]:
    """A bracket's rungs (``_Bracket._rungs``): ``(milestone, {trial_id: metric * sign})``, highest milestone first.

    The dicts are ASHA's own, live: what is put in them is what the scheduler cuts against.
    """
    return _private(bracket, "_rungs", "ASHA's rungs (medtune resume, asha_rungs.json)")


def bracket_cutoff(bracket: Any, recorded: dict[str, float]) -> float | None:
    """The value a trial must reach at a rung with these ``recorded`` values (``_Bracket.cutoff``, in ASHA's sign)."""
    cutoff = _private(bracket, "cutoff", "the cut-offs of asha_rungs.json")(recorded)
    return None if cutoff is None else float(cutoff)


def asha_num_stopped(scheduler: "AsyncHyperBandScheduler") -> int:
    """How many trials ASHA stopped (``_num_stopped``; public only inside ``debug_string()``'s text)."""
    return int(_private(scheduler, "_num_stopped", "the count of stopped trials (resume, asha_rungs.json)"))


def set_asha_num_stopped(scheduler: "AsyncHyperBandScheduler", count: int) -> None:
    """Put back the count of stopped trials in a restored scheduler (no public setter)."""
    _private(scheduler, "_num_stopped", "the count of stopped trials (medtune resume)")
    scheduler._num_stopped = int(count)


def asha_metric_sign(scheduler: "AsyncHyperBandScheduler") -> float | None:
    """+1 for ``max``, -1 for ``min``, None before a mode is set (``_metric_op``).

    ASHA records ``metric * sign`` so that higher is always better; ``TrialScheduler.metric`` is
    public but the mode is not.
    """
    return _private(scheduler, "_metric_op", "the metric's sign in asha_rungs.json")


def asha_reduction_factor(scheduler: "AsyncHyperBandScheduler") -> float:
    """The scheduler's reduction factor (``_reduction_factor``; only a constructor argument publicly)."""
    return _private(scheduler, "_reduction_factor", "asha_rungs.json")


# --- OptunaSearch (ray.tune.search.optuna.OptunaSearch, Ray 2.60.0 with Optuna 5.1.0) ----------------
#
# Missing public API: the study the searcher asks and tells, and which Optuna trial each Tune trial
# is. ``OptunaSearch`` has ``save``/``restore`` (a pickle of ``__dict__``) but no accessor.
# ``optuna.load_study(name, storage)`` would give another handle on a stored study, not the
# in-memory one (``storage: memory`` and s3 run folders), and not the trial each Tune trial was asked
# as. ``Searcher.metric`` / ``Searcher.mode`` are public and medtune uses them directly.


def optuna_search_study(searcher: "OptunaSearch") -> "optuna.Study | None":
    """The study the searcher asks and tells (``_ot_study``; None before Tune gave it its space)."""
    return _private(searcher, "_ot_study", "telling Optuna each trial's outcome and drawing the study's plots")


def optuna_search_trials(searcher: "OptunaSearch") -> "dict[str, optuna.Trial]":
    """Tune trial id -> the Optuna trial it was asked as (``_ot_trials``; live)."""
    return _private(searcher, "_ot_trials", "telling Optuna each trial's outcome")


def optuna_search_told(searcher: "OptunaSearch") -> set[str]:
    """The Tune trial ids already told to the study (``_completed_trials``; live: add a trial once told).

    ``OptunaSearch`` skips results and completions of the trials in it; medtune's own
    ``on_trial_complete`` must keep it up to date the same way.
    """
    return _private(searcher, "_completed_trials", "telling Optuna each trial's outcome once")


# --- A restored Tuner (ray.tune.Tuner.restore, Ray 2.60.0) --------------------------------------------
#
# Missing public API: ``Tuner.restore`` unpickles the callbacks and the searcher from the run folder's
# ``tuner.pkl`` and Tune then gives them their saved state; neither ``Tuner``, ``Tuner.restore``'s
# arguments (trainable, param_space, resume flags) nor ``ResultGrid``/``Tuner.get_results`` hand them
# back. They live on the Tuner's ``TunerInternal`` (``_local_tuner``; ``_remote_tuner`` under Ray client).


def restored_tuner_parts(tuner: "tune.Tuner") -> "tuple[list[tune.Callback], Searcher | None]":
    """A (restored) Tuner's callbacks and search algorithm: the objects ``fit`` will run with."""
    internal = _private(tuner, "_local_tuner", "medtune resume (a restored sweep's callbacks and searcher; "
                                               "a Tuner made under Ray client has none in this process)")
    callbacks = internal.get_run_config().callbacks
    tune_config = _private(internal, "_tune_config", "medtune resume (a restored sweep's searcher)")
    return list(callbacks or []), tune_config.search_alg


# --- The node medtune starts, and the trials' runtime env (Ray 2.60.0) --------------------------------


def propagated_env_vars() -> set[str] | None:
    """The set of variables Tune copies from the driver into each trial actor's runtime env, or None.

    ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``, read by ``_ActorClassCache.get`` each
    time a trainable is registered. Missing public API: Tune takes no runtime env for a trial
    (``tune.with_resources`` sets resources only) and no option to leave variables out. None where a
    Ray has no such set: a sweep still starts (as it did before medtune trimmed the set), and the
    canary fails, naming it.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return None
    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    return propagated if isinstance(propagated, set) else None


def stop_propagating_env_vars(names: Iterable[str]) -> bool:
    """Stop Tune from copying ``names`` into trial runtime envs; False where this Ray has no such list."""
    propagated = propagated_env_vars()
    if propagated is None:
        return False
    propagated.difference_update(names)
    return True


@contextmanager
def ray_cluster_constant(enabled: bool) -> Iterator[None]:
    """``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` set to ``enabled`` in this process, put back after.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` into that constant when it is imported, and
    ``services.get_node_ip_address`` reads the constant (loopback when off) each time a node
    starts. Missing public API: ``ray.init`` has no "local only" switch, and
    ``ray.init(_node_ip_address="127.0.0.1")`` (private too) is rewritten to the network address.
    """
    from ray._private import ray_constants

    was = _private(ray_constants, "ENABLE_RAY_CLUSTER", "starting a local node that listens on loopback only")
    ray_constants.ENABLE_RAY_CLUSTER = enabled
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = was


def system_config_kwargs(system_config: dict[str, int]) -> dict[str, Any]:
    """The keyword that gives ``ray.init`` raylet/GCS settings for a node it starts: ``_system_config``.

    A private keyword of a public function (``ray.init`` pops it from ``**kwargs`` and refuses
    unknown ones, so a rename fails loudly at ``ray.init``). The public alternative, ``RAY_<name>``
    variables, would leak into every process started from this one, and is what a user sets to win
    over medtune's values.
    """
    return {"_system_config": system_config}
