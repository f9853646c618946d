"""The sandbox's workloads: a real scikit-learn model, its versions, server, gate job and retraining job.

Run as ``python -m modelops.sandbox.models {train,serve,evaluate,retrain,data}``; see ``__main__`` for the
options, ``data`` for the data set and its drift, ``training`` for how the versions differ.
"""

from .artifacts import ModelArtifact, ServingPreprocess, load_artifact, path_to_uri, save_artifact, uri_to_path
from .data import FEATURES, GROUPS, Dataset, apply_shift, groups_of, load_data, load_slice
from .drift import DriftMonitor, FeatureReference, bin_fractions, psi, quantile_edges
from .jobs import MAX_TERMINATION_MESSAGE, ResultTooLarge, evaluation_job, retraining_job, write_result
from .server import ModelServer, ServerMetrics
from .training import DEFAULT_RECIPES, RECIPES, evaluate, recipe_for, train

__all__ = [
    "DEFAULT_RECIPES",
    "FEATURES",
    "GROUPS",
    "MAX_TERMINATION_MESSAGE",
    "RECIPES",
    "Dataset",
    "DriftMonitor",
    "FeatureReference",
    "ModelArtifact",
    "ModelServer",
    "ResultTooLarge",
    "ServerMetrics",
    "ServingPreprocess",
    "apply_shift",
    "bin_fractions",
    "evaluate",
    "evaluation_job",
    "groups_of",
    "load_artifact",
    "load_data",
    "load_slice",
    "path_to_uri",
    "psi",
    "quantile_edges",
    "recipe_for",
    "retraining_job",
    "save_artifact",
    "train",
    "uri_to_path",
    "write_result",
]
