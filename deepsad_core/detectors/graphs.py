"""Each detector's scoring graph, ``input -> (score, latent)``, as one ONNX model.

Deep SAD: its network and the squared distance to c. The ensemble: forest, kNN, Deep SAD, supervised
member and fusion. The members' arithmetic follows :meth:`DeepSADEnsemble.decision_function`: the network in float32
(as it runs live), the kNN distances and the fusion in float64, the forest as one tree-ensemble
node that decides exactly as scikit-learn does (:mod:`deepsad_core.detectors.forest_graph`). The score
leaves the graph as float32.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from deepsad_core.base.onnx_writer import onnx_bytes, torchscript_bytes
from deepsad_core.detectors.forest_graph import FOREST_OUTPUT, forest_decision_nodes
from deepsad_core.detectors.fusion import MEMBERS, SCORE_BOUND, bounded

__all__ = [
    "FOREST_INPUT",
    "OUTPUTS",
    "EnsembleScoringNetwork",
    "ScoringNetwork",
    "deepsad_description",
    "deepsad_onnx",
    "deepsad_torchscript",
    "ensemble_description",
    "ensemble_onnx",
    "with_forest",
]

OUTPUTS = ["score", "latent"]

FOREST_INPUT = "iforest_decision"  # the torch graph's second input, fed by the forest's nodes


class ScoringNetwork(nn.Module):
    """phi plus the centre: ``x -> (||phi(x) - c||^2, phi(x))``, Deep SAD's graph."""

    def __init__(self, net: nn.Module, center: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("center", torch.as_tensor(np.asarray(center, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.net(x)
        return ((latent - self.center) ** 2).sum(dim=1), latent


def deepsad_onnx(model: Any) -> bytes:
    """A fitted Deep SAD's scoring graph (its network copied to the CPU; the model is not changed)."""
    example = torch.zeros((2, *model.input_shape_), dtype=torch.float32)
    return onnx_bytes(ScoringNetwork(copy.deepcopy(model.net_).cpu(), model.center_), (example,), ["input"], OUTPUTS)


def deepsad_torchscript(model: Any) -> bytes:
    """The same graph as TorchScript (Deep SAD alone has one)."""
    example = torch.zeros((2, *model.input_shape_), dtype=torch.float32)
    return torchscript_bytes(ScoringNetwork(copy.deepcopy(model.net_).cpu(), model.center_), example)


def ensemble_onnx(model: Any) -> bytes:
    """A fitted ensemble's scoring graph: the torch part exported, the forest's nodes put in front."""
    example = torch.zeros((2, *model.input_shape_), dtype=torch.float32)
    inputs = ["input", FOREST_INPUT]
    graph = onnx_bytes(EnsembleScoringNetwork(model), (example, torch.zeros((2, 1))), inputs, OUTPUTS)
    return with_forest(onnx.load_from_string(graph), model).SerializeToString()


class EnsembleScoringNetwork(nn.Module):
    """The ensemble's fused score as one graph: ``(x, IsolationForest decision) -> (score, phi(x))``.

    Each member's raw score (its own module, :mod:`deepsad_core.detectors.members`), standardised by its
    median and IQR, weighted, averaged, then
    :func:`~deepsad_core.detectors.fusion.bounded`. The IsolationForest's decision comes in as an input;
    :func:`with_forest` puts the forest's own nodes in front.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.net = copy.deepcopy(model.deepsad_.net_).cpu()
        self.fusion = model.fusion_
        total = sum(model.weights_.values())
        self.members = [name for name in MEMBERS if name in model.weights_]
        self.raw = nn.ModuleDict({name: model.members_[name].scoring_module() for name in self.members})
        for name in self.members:
            median, spread = model.scales_[name]
            weight = model.weights_[name] / total
            self.register_buffer(f"{name}_scale", torch.tensor([median, spread, weight], dtype=torch.float64))

    def forward(self, x: torch.Tensor, iforest_decision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.net(x)
        flat = x.reshape(x.shape[0], -1)
        mean = torch.zeros_like(latent[:, 0], dtype=torch.float64)
        for name in self.members:
            median, spread, weight = getattr(self, f"{name}_scale")
            raw = self.raw[name](x, flat, latent, iforest_decision)
            mean = mean + weight * (raw.double() - median) / spread
        if "iforest" not in self.members:  # keep the input used, so the graph's signature is fixed
            mean = mean + 0.0 * iforest_decision.reshape(-1)
        return bounded(mean, self.fusion).float(), latent


def with_forest(graph: onnx.ModelProto, model: Any) -> onnx.ModelProto:
    """One graph: the IsolationForest's nodes feeding the fused graph's ``iforest_decision``."""
    flatten = onnx.helper.make_node("Flatten", ["input"], ["iforest/input"], axis=1, name="iforest/flatten")
    nodes, constants = forest_decision_nodes(model.members_["iforest"].forest, "iforest/input")
    fused = graph.graph
    for node in fused.node:
        node.input[:] = [FOREST_OUTPUT if name == FOREST_INPUT else name for name in node.input]
    merged = onnx.helper.make_graph(
        [flatten, *nodes, *fused.node],
        "deepsad_ensemble",
        [i for i in fused.input if i.name != FOREST_INPUT],
        list(fused.output),
        initializer=[*constants, *fused.initializer],
    )
    opsets = {o.domain: o.version for o in graph.opset_import} | {"ai.onnx.ml": 3}
    out = onnx.helper.make_model(merged, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()])
    out.ir_version = graph.ir_version
    onnx.checker.check_model(out)
    return out


def deepsad_description(model: Any) -> dict[str, Any]:
    """What a bundle's manifest says of a Deep SAD: its kind, backends, and what its score means."""
    score = {"formula": "||phi(x) - c||^2", "range": [0.0, None], "higher": "more anomalous",
             "meaning": "squared distance of the sample's latent vector to Deep SAD's centre c"}  # fmt: skip
    return {"kind": "deepsad", "backends": ["onnx", "torchscript"], "score": score}


def ensemble_description(model: Any) -> dict[str, Any]:
    """What a bundle's manifest says of an ensemble: its weights, their labeled AUCs, and its score."""
    if model.fusion_ == "exp":
        score = {"formula": "exp(clip(m, -80, 80))", "range": [float(np.exp(-80.0)), float(np.exp(80.0))],
                 "higher": "more anomalous", "meaning": "m: the weighted mean of the members' z-scores"}  # fmt: skip
    else:
        score = {
            "formula": f"exp({SCORE_BOUND:g} * tanh(m / {SCORE_BOUND:g}))",
            "range": [float(np.exp(-SCORE_BOUND)), float(np.exp(SCORE_BOUND))],
            "higher": "more anomalous",
            "meaning": "m: the weighted mean of the members' z-scores, each (raw - median) / IQR on the training "
            "data, so m = 0 is a typical training sample; log(score) equals m within 3 % for |m| < 3",
        }
    return {"kind": "deepsad_ensemble", "weights": model.weights_, "label_auc": model.label_auc_,
            "backends": ["onnx"], "score": score}  # fmt: skip
