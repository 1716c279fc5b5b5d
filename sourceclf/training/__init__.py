"""Training sourceclf's models on a labelled catalog.

`train` turns a labelled catalog into a classifier that `sourceclf.classify`
accepts.  Its parts are public for the recipes and studies that need them:
the labels and splits (`labels_from_table`, `split_indices`), the one
network-fitting procedure (`fit_network`, built on `fit_module` and
`fit_stages`), the classical baselines (`train_classical`, `fit_classical`),
the metrics written into model cards (`classification_metrics`), the
calibration table stored with a model (`calibration_table`) and its
applicability domain (`fit_model_domain`).
"""

from .api import train
from .calibration import calibration_table
from .domain import fit_model_domain, magnitude_ranges
from .classical import DEFAULT_PARAMS, PARAM_GRIDS, fit_classical, make_estimator, train_classical
from .fitting import (build_network, cross_entropy_loss, fit_input_layers, fit_module,
                      fit_network, fit_stages)
from .labels import labels_from_table
from .metrics import classification_metrics
from .splits import split_indices

__all__ = ["train", "fit_module", "split_indices", "labels_from_table", "classification_metrics",
           "calibration_table", "build_network", "cross_entropy_loss", "fit_input_layers",
           "fit_stages", "fit_network", "DEFAULT_PARAMS", "PARAM_GRIDS", "make_estimator",
           "fit_classical", "train_classical", "fit_model_domain", "magnitude_ranges"]
