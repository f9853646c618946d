"""modelops: a Kubernetes operator that runs the whole lifecycle of a machine-learning model in production."""

__version__ = "0.1.0"
