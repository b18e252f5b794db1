"""mlp: a reproducible, versioned ML pipeline for tabular data, on git and DVC."""

__version__ = "0.1.0"
