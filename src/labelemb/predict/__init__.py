"""Using a trained run: load it (a run folder or an exported bundle), predict, export.

    predictor = labelemb.load("runs/demo/label_embedding/seed0")
    predictor.predict(images)            # class names and probabilities
    predictor.predict_proba(images)      # (N, m), the run's fitted temperature applied
    predictor.predict_sets(images, 0.9)  # conformal prediction sets, calibrated on its dev split
    tagger.predict(texts)                # a multi-label run's: each text's tags (TagPrediction)
    labelemb.write_predictions(run, "predictions.csv", inputs="new.csv")  # labelemb predict
    labelemb.export(run, "onnx", "exported")                              # labelemb export

:mod:`.loading` is :func:`load`, :mod:`.source` reads what a run or bundle holds, :mod:`.network`
rebuilds its network, :mod:`.inputs` makes new inputs what the network reads, :mod:`.predictor`
predicts, :mod:`.tags` chooses a multi-label run's tags, :mod:`.sets` calibrates its conformal
prediction sets, :mod:`.outputs` writes a prediction's file (``labelemb predict``), :mod:`.bundle`
and :mod:`.export` write a bundle, TorchScript and ONNX (``labelemb export``: its call is
``labelemb.export``, not a name of this package, where ``export`` is that module).
"""

from __future__ import annotations

from .loading import load
from .network import Classifier
from .outputs import Predicted, write_predictions
from .predictor import Prediction, Predictor
from .sets import PredictionSet
from .source import Checkpoint, PredictError, Trained
from .tags import TagPrediction

__all__ = [
    "Checkpoint",
    "Classifier",
    "Predicted",
    "Prediction",
    "PredictError",
    "PredictionSet",
    "Predictor",
    "TagPrediction",
    "Trained",
    "load",
    "write_predictions",
]
