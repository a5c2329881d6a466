"""The code of medtune's MLflow model (models-from-code): MLflow runs this file to load the model.

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"bundle": <model folder>})`` copies
this file into the model; ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` execute it and
take the model ``set_model`` names, so nothing is unpickled. The class stays thin: every step from
raw image to decision is ``medtune.trainables.inference`` (the path ``medtune predict`` runs), which
must be installed where the model is served (``mlflow models serve --env-manager local``).

Input (``docs/predict.md``): a DataFrame with an ``image`` column of encoded PNG/JPEG/DICOM bytes or
base64 strings of them (the HTTP form), or uint8 arrays of any size, grey or colour; a list of
such images; or one numpy array (one image, or a batch). Output: a DataFrame, one row per image,
``prob_<class>`` for every class, ``predicted_class``, and for a two-class model with a threshold
``score`` (the calibrated positive-class probability), ``threshold`` and ``decision`` (1: positive).
Params: ``operating_point`` (a rule chosen on the held-out scores the model carries, such as
``sensitivity:0.90``) or ``threshold`` (a number on the calibrated scale) replace the stored one
for a request.
"""

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

import mlflow
from medtune.search.tracking.models import BUNDLE_ARTIFACT


class MedtuneImageModel(PythonModel):
    """A medtune bundle served as a pyfunc: raw images in, probabilities and decisions out."""

    def load_context(self, context: Any) -> None:
        from medtune.trainables.inference import Predictor

        self.predictor = Predictor.from_folder(context.artifacts[BUNDLE_ARTIFACT])

    # MLflow reads model_input's type hint as a schema: with DataFrame (a real class: no ``from
    # __future__ import annotations`` here) it validates and converts nothing, so arrays and lists pass too.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per image of ``model_input``; ``params`` may name another operating point."""
        from medtune.trainables.prediction_rule import decision_rule
        from medtune.trainables.raw_images import raw_items

        predictor = self.predictor
        operating_point = (params or {}).get("operating_point") or None
        threshold = (params or {}).get("threshold")
        if operating_point is not None or threshold is not None:
            predictor = predictor.with_rule(decision_rule(predictor.bundle, operating_point, threshold))
        return pd.DataFrame(predictor.predict(raw_items(model_input)).columns())


mlflow.models.set_model(MedtuneImageModel())
