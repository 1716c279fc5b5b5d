"""Trained classifiers: the registry, model cards and the network architectures."""

from .architectures import ARCHITECTURES, build_architecture, register_architecture
from .base import SourceClassifier, TorchClassifier
from .card import ModelCard
from .layers import Standardize
from .margnet import MargNetANN, PhotometricMLP
from .registry import MODEL_DIR, list_models, load_model, model_card, model_names

__all__ = ["ARCHITECTURES", "build_architecture", "register_architecture",
           "SourceClassifier", "TorchClassifier", "ModelCard", "Standardize",
           "MargNetANN", "PhotometricMLP", "MODEL_DIR", "list_models", "load_model",
           "model_card", "model_names"]
