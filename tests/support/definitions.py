"""A small well-formed pipeline definition, for tests that change one thing in it."""

from __future__ import annotations

from typing import Any


def tiny_definition(model_ref: str) -> dict[str, Any]:
    """resize to 8×8 → normalize → the model ``model_ref`` → softmax; measures ``p``."""
    return {
        "id": "p1", "name": "tiny", "version": 2,
        "inputs": [{"name": "image", "kind": "image"}],
        "steps": [
            {"name": "prep", "type": "resize", "params": {"width": 8, "height": 8},
             "image": "$inputs.image"},
            {"name": "tensor", "type": "normalize", "params": {"mean": [0.5, 0.5, 0.5],
                                                               "std": [0.5, 0.5, 0.5]},
             "image": "$steps.prep.image"},
            {"name": "model", "type": "onnx", "params": {"model": model_ref},
             "input": "$steps.tensor.tensor"},
            {"name": "score", "type": "softmax", "x": "$steps.model.y"},
        ],
        "outputs": {"p": "$steps.score.probs[0][1]"},
    }
