"""The model bundle as an MLflow pyfunc model: the MLflow side of the serve benchmark (bench/serve.py).

MLflow's "models from code": `mlflow.pyfunc.save_model(python_model=<this file>, artifacts={"bundle": DIR})`
copies this file and the bundle into an MLflow model folder, and `mlflow models serve` runs this file to load it.
The bundle is loaded with its own features.py, so MLflow scores rows with the same code as evaluate did; its
predict returns the class probabilities, in the order of the bundle's classes. This file runs only in the
separate MLflow venv bench/serve.py builds under bench/out/: MLflow is no dependency of mlp.
"""

import importlib.util
import os

import mlflow


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        path = context.artifacts["bundle"]
        spec = importlib.util.spec_from_file_location("bundle_features", os.path.join(path, "features.py"))
        features = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(features)
        self.bundle = features.load_bundle(path)

    def predict(self, context, model_input, params=None):
        return self.bundle.predict_proba(model_input)


mlflow.models.set_model(BundleModel())
