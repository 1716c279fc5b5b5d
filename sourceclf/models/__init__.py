"""Trained classifiers: the registry, model cards and the network architectures."""

from .architectures import ARCHITECTURES, build_architecture, register_architecture
from .base import SourceClassifier, TorchClassifier
from .bayesian import (BayesianClassifier, BayesianMargFormer, BayesianMargNetANN,
                       BayesianMargNetStack, BayesianPhotometricMLP, VariationalLinear,
                       kl_divergence)
from .card import ModelCard
from .classical import SklearnClassifier
from .layers import PiecewiseLinearEncoding, Standardize
from .margformer import MargFormer
from .margnet import MargNetANN, PhotometricMLP
from .margnet_cnn import MargNetCNN, MargNetStack
from .registry import MODEL_DIR, list_models, load_model, model_card, model_names

__all__ = ["ARCHITECTURES", "build_architecture", "register_architecture",
           "SourceClassifier", "TorchClassifier", "BayesianClassifier", "BayesianMargNetANN",
           "BayesianPhotometricMLP", "BayesianMargNetStack", "BayesianMargFormer",
           "VariationalLinear", "kl_divergence", "SklearnClassifier",
           "ModelCard", "Standardize", "PiecewiseLinearEncoding",
           "MargNetANN", "PhotometricMLP", "MargNetCNN", "MargNetStack", "MargFormer",
           "MODEL_DIR", "list_models", "load_model",
           "model_card", "model_names"]
