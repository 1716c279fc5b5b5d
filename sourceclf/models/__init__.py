"""Trained classifiers: the registry, model cards and the network architectures.

The registry and the cards (`list_models`, `model_card`, `model_names`,
`ModelCard`) are imported without torch; the networks and the classifier
classes are imported on first use.
"""

import importlib

__all__ = ["ARCHITECTURES", "build_architecture", "register_architecture",
           "SourceClassifier", "TorchClassifier", "BayesianClassifier", "BayesianMargNetANN",
           "BayesianPhotometricMLP", "BayesianMargNetStack", "BayesianMargFormer",
           "VariationalLinear", "kl_divergence", "SklearnClassifier", "BlendClassifier",
           "ModelCard", "Standardize", "PiecewiseLinearEncoding",
           "MargNetANN", "PhotometricMLP", "MargNetCNN", "MargNetStack", "MargFormer",
           "MODEL_DIR", "list_models", "load_model",
           "model_card", "model_names", "describe_model", "ApplicabilityDomain",
           "GradientBoostedTrees"]

#: Public name -> submodule of `sourceclf.models` defining it.
_LAZY = {
    "ARCHITECTURES": "architectures",
    "build_architecture": "architectures",
    "register_architecture": "architectures",
    "SourceClassifier": "base",
    "TorchClassifier": "base",
    "BayesianClassifier": "bayesian",
    "BayesianMargNetANN": "bayesian",
    "BayesianPhotometricMLP": "bayesian",
    "BayesianMargNetStack": "bayesian",
    "BayesianMargFormer": "bayesian",
    "VariationalLinear": "bayesian",
    "kl_divergence": "bayesian",
    "SklearnClassifier": "classical",
    "BlendClassifier": "blend",
    "ModelCard": "card",
    "Standardize": "layers",
    "PiecewiseLinearEncoding": "layers",
    "MargNetANN": "margnet",
    "PhotometricMLP": "margnet",
    "MargNetCNN": "margnet_cnn",
    "MargNetStack": "margnet_cnn",
    "MargFormer": "margformer",
    "MODEL_DIR": "registry",
    "list_models": "registry",
    "load_model": "registry",
    "model_card": "registry",
    "model_names": "registry",
    "describe_model": "registry",
    "ApplicabilityDomain": "domain",
    "GradientBoostedTrees": "tree_arrays",
}


def __getattr__(name):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sourceclf.models' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
