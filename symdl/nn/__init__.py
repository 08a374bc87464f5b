"""Networks (MATLAB's Deep Learning Toolbox): layers, custom layers, layer
graphs and ``dlnetwork`` with ``forward`` and ``predict``."""

from .io import load_network, save_network
from .graph import LayerGraph, add_layers, connect_layers, disconnect_layers, layer_graph
from .layer import Layer
from .layers import *  # noqa: F403
from .layers import __all__ as _layer_names
from .network import dlnetwork, forward, predict
from .queue import minibatch_queue
from .train import TrainedNetwork, TrainingOptions, classify, train_network, training_options

__all__ = ["Layer", "LayerGraph", "layer_graph", "add_layers", "connect_layers", "disconnect_layers",
           "dlnetwork", "forward", "predict", "save_network", "load_network",
           "training_options", "TrainingOptions", "train_network", "TrainedNetwork", "classify",
           "minibatch_queue", *_layer_names]
