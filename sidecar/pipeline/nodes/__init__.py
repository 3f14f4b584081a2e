"""The op library. Importing this package registers every op in ``REGISTRY``."""

from sidecar.pipeline.nodes import anomaly, image, measure, model, ocr, tensor
from sidecar.pipeline.nodes.base import REGISTRY, OpSpec

__all__ = ["REGISTRY", "OpSpec", "anomaly", "image", "measure", "model", "ocr", "tensor"]
