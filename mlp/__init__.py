"""mlp: a reproducible, versioned ML pipeline for tabular data, on git and DVC."""

__version__ = "0.1.0"
# The name on the package index (`pip install mlp-pipeline`); the import package and the command are `mlp`.
# `mlp` on the index is an unrelated project, so nothing may install mlp under that name.
DISTRIBUTION = "mlp-pipeline"
