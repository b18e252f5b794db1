"""The hand-written baseline of the serve benchmark (bench/serve.py): the FastAPI app a user would write to serve
a model bundle without `mlp serve`.

It does what the FastAPI tutorial and the bundle's docstring suggest: a pydantic request model, the records
turned into a DataFrame, the bundle's own `predict_proba` (its features.py, as evaluate scored the test split),
the result as JSON. No contract checks, no metrics, no request log: it does less than `mlp serve`, so the
comparison can only flatter it. Run with uvicorn, for example:

    BUNDLE_DIR=models uvicorn serve_baseline_app:app --app-dir bench --workers 2
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

BUNDLE_DIR = os.environ.get("BUNDLE_DIR", "models")


def load_bundle(path: str):
    """The bundle's own features.py, imported from the bundle folder, and its load_bundle()."""
    spec = importlib.util.spec_from_file_location("bundle_features", os.path.join(path, "features.py"))
    features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features)
    return features.load_bundle(path)


bundle = load_bundle(BUNDLE_DIR)
app = FastAPI(title="churn model")


class PredictRequest(BaseModel):
    records: list[dict[str, Any]]


# A plain `def`, as FastAPI's docs advise for code that blocks (pandas, xgboost): it runs in the thread pool
# and does not stall the event loop.
@app.post("/predict")
def predict(request: PredictRequest) -> dict[str, Any]:
    df = pd.DataFrame(request.records)
    probabilities = bundle.predict_proba(df)
    labels = [bundle.classes[i] for i in probabilities.argmax(axis=1)]
    return {"predictions": labels, "probabilities": probabilities.tolist()}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
