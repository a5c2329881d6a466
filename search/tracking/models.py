"""Models logged to MLflow: the sweep's best trial and the final model, in ``pt2`` form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.search.credentials import tracking_uri_for_mlflow
from medtune.search.tracking.client import mlflow_client


@dataclass
class LoggedModel:
    uri: str
    model_id: str | None
    version: str | None  # the registered version, when registered


def log_pt2_model(tracking_uri: str, experiment_id: str, run_id: str, model: Any, cfg: Any, split: Any,
                  register: str | None, *, name: str = "model", params: dict[str, Any] | None = None,
                  metrics: dict[str, float] | None = None, alias: str | None = None,
                  metadata: dict[str, Any] | None = None) -> LoggedModel:
    """A model as an MLflow PyTorch model in ``pt2`` form (torch.export: loads without pickled code),
    with an input example and signature from two preprocessed images of ``split``.

    ``params`` (the model's hyperparameters) and ``metrics`` (linked to the model through its
    model id) are what MLflow's Models tab shows for it; ``metadata`` (JSON-able) is written into the
    model's MLmodel file, so it travels with the model (the final model's operating point).
    Registered under ``register`` when given, and the new version gets ``alias`` (MLflow's
    replacement for the deprecated stages)."""
    import torch
    from mlflow.models import infer_signature

    import mlflow
    from medtune.trainables.factories import make_batches

    model = model.to("cpu").eval()
    images, _ = next(iter(make_batches(cfg, split, train=False, device=torch.device("cpu"))))
    example = images[:2].contiguous().numpy()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    mlflow.set_tracking_uri(tracking_uri_for_mlflow(tracking_uri))
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id):
        # Created first so that it holds only these params: log_model alone would merge in the
        # run's params (on the sweep's parent run: num_samples, scheduler, ...), the run's winning.
        created = mlflow.initialize_logged_model(name=name, source_run_id=run_id, experiment_id=experiment_id,
                                                 params={k: str(v) for k, v in (params or {}).items()})
        info = mlflow.pytorch.log_model(model, name=name, serialization_format="pt2", input_example=example,
                                        signature=infer_signature(example, output), registered_model_name=register,
                                        model_id=created.model_id, metadata=metadata)
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=info.model_id)
    version = getattr(info, "registered_model_version", None)
    if register and alias and version is not None:
        mlflow_client(tracking_uri).set_registered_model_alias(register, alias, str(version))
    return LoggedModel(info.model_uri, getattr(info, "model_id", None), None if version is None else str(version))
