"""The tablet's op library is the shared catalogue: the same ops, the same parameters, the same
shape rules, and the choices the catalogue offers are what the ops' code implements."""

from __future__ import annotations

from typing import Any

import pytest

from schema.formats.pipeline import COLOR_CONVERSIONS, OPS, SHAPE_RULES, Meta, OpDecl, Param
from sidecar.pipeline.nodes import REGISTRY, image, tensor
from sidecar.pipeline.nodes.base import OpSpec, StaticContext, declared, op

SAMPLE_INPUTS = {
    "image": Meta("image", (8, 8, 3), "uint8"),
    "tensor": Meta("tensor", (1, 3, 8, 8), "float32"),
    "bytes": Meta("bytes"),
}
REQUIRED: dict[str, dict[str, Any]] = {
    "crop": {"w": 4, "h": 4}, "resize": {"width": 8, "height": 8}, "color": {"to": "rgb"},
    "threshold": {"value": 0.5}, "measure_circle": {"mm_per_px": 0.1},
    "calibrate": {"method": "temperature", "temperature": 1.5},
    "ocr": {"det_model": "sha256:" + "a" * 64, "rec_model": "sha256:" + "b" * 64},
}


def test_every_catalogued_op_is_implemented_and_nothing_else() -> None:
    assert set(REGISTRY) == set(OPS)


@pytest.mark.parametrize("name", sorted(n for n in OPS if not OPS[n].dynamic_io))
def test_the_tablet_knows_an_ops_shapes_by_the_shared_rule(name: str) -> None:
    decl, spec = OPS[name], REGISTRY[name]
    params = {k: p.default for k, p in decl.params.items()} | REQUIRED.get(name, {})
    assert all(params[k] is not None for k, p in decl.params.items() if p.required)
    wired = {k: SAMPLE_INPUTS[kind] for k, kind in {**decl.inputs, **decl.optional_inputs}.items()}
    inferred = spec.infer(wired, StaticContext(node="s", params=params, models=None))
    rule = SHAPE_RULES.get(name)
    assert inferred == (rule(wired, params) if rule else {})
    assert set(inferred) <= set(decl.outputs)



def test_the_catalogues_choices_are_what_the_ops_implement() -> None:
    assert set(OPS["resize"].params["interpolation"].choices or ()) == set(image._INTERP)
    assert set(OPS["threshold"].params["operator"].choices or ()) == set(tensor._COMPARE)
    assert set(image._COLOR) == COLOR_CONVERSIONS
    assert set(OPS["color"].params["from"].choices or ()) == {src for src, _ in image._COLOR}
    assert set(OPS["color"].params["to"].choices or ()) == {dst for _, dst in image._COLOR}


def test_an_op_declared_otherwise_than_the_catalogue_is_refused() -> None:
    run = declared("softmax", stage="post", run=lambda i, p, c: {}).run
    softmax = OPS["softmax"]
    uncatalogued = OpDecl("softmax_copy", inputs=softmax.inputs, outputs=softmax.outputs)
    with pytest.raises(AssertionError, match="not declared as"):
        op(OpSpec(decl=uncatalogued, stage="post", run=run))
    changed = OpDecl("softmax", inputs=softmax.inputs, outputs=softmax.outputs,
                     params={**softmax.params, "temperature": Param("number")})
    saved = REGISTRY.pop("softmax")
    try:
        with pytest.raises(AssertionError, match="not declared as"):
            op(OpSpec(decl=changed, stage="post", run=run))
        assert "softmax" not in REGISTRY
    finally:
        REGISTRY["softmax"] = saved


def test_a_parameter_type_the_checks_do_not_know_is_refused() -> None:
    with pytest.raises(AssertionError, match="unknown parameter type"):
        Param("list[int]")
