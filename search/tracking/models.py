"""Models logged to MLflow: the sweep's best trial and the final model, as MLflow models that take raw images.

Each is a pyfunc model logged from code (``pyfunc_model.py``, MLflow's models-from-code: the class is
read from that file at load time, nothing is unpickled) with the model's bundle
(``medtune.trainables.model_bundle``: safetensors weights and a JSON description) as its one
artifact. It takes raw images (encoded PNG/JPEG/DICOM bytes, base64 strings of them, or uint8
arrays of any size, grey or colour), applies medtune's own preprocessing and returns every class's
probability, the predicted class and, for a two-class final model, the calibrated score and the
decision at the stored threshold; ``params`` choose another operating point per request
(``docs/predict.md``). So ``mlflow models serve -m models:/NAME@champion`` answers a PNG.

This replaced the ``pt2`` (``torch.export``) model medtune logged before: that one took tensors
already resized and normalised and returned logits, which left every user to rebuild the
preprocessing and the decision by hand. The weights are in the bundle, and
``medtune.trainables.model_bundle.load_model`` gives the ``torch.nn.Module`` back.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from medtune.search.credentials import tracking_uri_for_mlflow
from medtune.search.tracking.client import mlflow_client

#: The artifact key (and folder, under the model's ``artifacts/``) of the bundle.
BUNDLE_ARTIFACT = "bundle"
#: The models-from-code file: the ``PythonModel`` MLflow loads.
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
#: Images in the logged input example (what ``serving_input_example.json`` shows a client).
EXAMPLE_IMAGES = 2


@dataclass
class LoggedModel:
    uri: str
    model_id: str | None
    version: str | None  # the registered version, when registered


def input_example(images: Sequence[Any]) -> Any:
    """A request as an HTTP client sends it: a DataFrame with an ``image`` column of base64 PNGs."""
    import pandas as pd

    from medtune.trainables.raw_images import IMAGE_COLUMN, encode_png

    encoded = [base64.b64encode(encode_png(image)).decode("ascii") for image in list(images)[:EXAMPLE_IMAGES]]
    return pd.DataFrame({IMAGE_COLUMN: encoded})


def signature(class_names: Sequence[str], with_threshold: bool) -> Any:
    """No input schema (images of any size and kind: ``docs/predict.md``); the output columns; and
    the per-request params ``operating_point`` (a rule) and ``threshold`` (a number)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    columns = [ColSpec("double", f"prob_{name}") for name in class_names] + [ColSpec("string", "predicted_class")]
    if with_threshold:
        columns += [ColSpec("double", "score"), ColSpec("double", "threshold"), ColSpec("long", "decision")]
    params = ParamSchema([ParamSpec("operating_point", "string", ""), ParamSpec("threshold", "double", None)])
    return ModelSignature(inputs=None, outputs=Schema(columns), params=params)


def model_description(bundle: Any) -> dict[str, Any]:
    """What the model's metadata says about it (``medtune_model``): enough to call it without medtune."""
    point = bundle.operating_point or {}
    return {"medtune_version": bundle.medtune_version, "kind": bundle.kind, "architecture": bundle.architecture,
            "class_names": list(bundle.class_names), "positive_class": bundle.positive_class,
            "image_size": bundle.image_size, "rule": point.get("rule", "argmax"), "threshold": point.get("threshold"),
            "input": "a DataFrame with an 'image' column of PNG/JPEG/DICOM bytes or base64 strings of them, or "
                     "uint8 arrays (H, W), (H, W, 1|3|4); any size; see medtune's docs/predict.md",
            "output": "prob_<class> per class, predicted_class; two-class models with a threshold: score "
                      "(calibrated positive-class probability), threshold, decision (1: positive)"}


def log_image_model(tracking_uri: str, experiment_id: str, run_id: str, bundle_dir: str | Path,
                    example_images: Sequence[Any], register: str | None, *, name: str = "model",
                    params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                    alias: str | None = None, metadata: dict[str, Any] | None = None) -> LoggedModel:
    """The bundle in ``bundle_dir`` as a pyfunc model from code, with an input example of
    ``example_images`` (decoded uint8 images, sent as base64 PNGs) and its signature.

    ``params`` (the model's hyperparameters) and ``metrics`` (linked to the model through its model
    id) are what MLflow's Models tab shows for it; ``metadata`` (JSON-able; the final model's
    operating point) is written into its MLmodel file beside ``medtune_model`` (classes, image size,
    rule, version). Registered under ``register`` when given, and the new version gets ``alias``."""
    import mlflow
    from medtune.trainables.model_bundle import medtune_version, read_bundle

    bundle = read_bundle(bundle_dir)
    threshold = bundle.binary and (bundle.operating_point or {}).get("threshold") is not None
    mlflow.set_tracking_uri(tracking_uri_for_mlflow(tracking_uri))
    version = medtune_version()
    requirements = ["medtune" if version == "unknown" else f"medtune=={version}"]
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id):
        # Created first so that it holds only these params: log_model alone would merge in the
        # run's params (on the sweep's parent run: num_samples, scheduler, ...), the run's winning.
        created = mlflow.initialize_logged_model(name=name, source_run_id=run_id, experiment_id=experiment_id,
                                                 params={k: str(v) for k, v in (params or {}).items()})
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(CODE_FILE), artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            # MLflow checks the example by predicting it; colour examples stay colour PNGs
            input_example=input_example(example_images),
            signature=signature(bundle.class_names, threshold),
            pip_requirements=requirements, registered_model_name=register, model_id=created.model_id,
            metadata={"medtune_model": model_description(bundle), **(metadata or {})})
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=info.model_id)
    registered = getattr(info, "registered_model_version", None)
    if register and alias and registered is not None:
        mlflow_client(tracking_uri).set_registered_model_alias(register, alias, str(registered))
    return LoggedModel(info.model_uri, getattr(info, "model_id", None),
                       None if registered is None else str(registered))
