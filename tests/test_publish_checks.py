"""The server refuses at publish every criteria and pipeline definition the tablet would refuse,
with the tablet's own parser and validator: a 422 naming the criteria key, or the step and its
field, nothing stored — through the admin API of a real server on PostgreSQL and through
``kensa server``. The tables hold one row per error the shared formats raise, and a check below
proves no raise site is left without a row."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from schema import errors as formats
from schema.db import create_engine
from schema.formats import criteria as criteria_format
from schema.formats import pipeline as pipeline_format
from sidecar.pipeline.definition import parse_definition
from sidecar.pipeline.errors import CriteriaInvalid, DefinitionInvalid
from sidecar.pipeline.judgment import parse_criteria
from sidecar.pipeline.validate import validate
from sync.server.cli import server_app
from tests.support.definitions import tiny_definition
from tests.support.postgres import Cluster

if TYPE_CHECKING:
    from tests.support.sync_fixtures import Running

ADMIN = ("admin", "admin-pass")
MODEL = "sha256:" + "a" * 64


@pytest.fixture(scope="module")
def publish_site(pg_cluster: Cluster,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One seeded site for the module: every case here is refused and stores nothing."""
    # Imported here, not at the top: another module loads it as a pytest plugin.
    from tests.support.sync_fixtures import running_site

    with running_site(pg_cluster, tmp_path_factory.mktemp("publish")) as site:
        yield site


def stored(url: str) -> tuple[Any, ...]:
    """What a refused publish must leave as it was."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sa.text(sql)).scalar_one() for sql in (
                "SELECT count(*) FROM pipelines",
                "SELECT count(*) FROM inspection_items_master",
                "SELECT coalesce(max(seq), 0) FROM change_log",
            ))
    finally:
        engine.dispose()


# --- criteria ---------------------------------------------------------------------------------

# (case, criteria, the key the error names)
BAD_CRITERIA: list[tuple[str, Any, str | None]] = [
    ("not an object", [1], None),
    ("no judgment type", {"measurement": "m"}, "judgment_type"),
    ("unknown judgment type", {"judgment_type": "GUESS", "measurement": "m"}, "judgment_type"),
    ("no measurement", {"judgment_type": "BINARY", "expected": True}, "measurement"),
    ("confidence not a name", {"judgment_type": "BINARY", "measurement": "m", "expected": True,
                               "confidence": 0.9}, "confidence"),
    ("min confidence text", {"judgment_type": "BINARY", "measurement": "m", "expected": True,
                             "min_confidence": "high"}, "min_confidence"),
    ("min confidence with no confidence", {"judgment_type": "THRESHOLD", "measurement": "p",
                                           "operator": "LT", "threshold": 0.5,
                                           "min_confidence": 0.8}, "min_confidence"),
    ("review band a string", {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "LT",
                              "threshold": 0.5, "review_band": "0.3-0.7"}, "review_band"),
    ("review band of text", {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "LT",
                             "threshold": 0.5, "review_band": ["a", "b"]}, "review_band"),
    ("review band upside down", {"judgment_type": "THRESHOLD", "measurement": "p",
                                 "operator": "LT", "threshold": 0.5, "review_band": [0.7, 0.3]},
     "review_band"),
    ("review band measurement", {"judgment_type": "THRESHOLD", "measurement": "p",
                                 "operator": "LT", "threshold": 0.5,
                                 "review_band": {"low": 0.3, "high": 0.7, "measurement": 1}},
     "review_band"),
    ("unknown operator", {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "<>",
                          "threshold": 0.5}, "operator"),
    ("no threshold", {"judgment_type": "THRESHOLD", "measurement": "p", "operator": "LT"},
     "threshold"),
    ("both limit forms", {"judgment_type": "NUMERICAL", "measurement": "d", "min": 1, "max": 2,
                          "nominal": 1.5, "tolerance": 0.1}, "tolerance"),
    ("tolerance without nominal", {"judgment_type": "NUMERICAL", "measurement": "d",
                                   "tolerance": 0.1}, "nominal"),
    ("tolerance of text", {"judgment_type": "NUMERICAL", "measurement": "d", "nominal": 1.5,
                           "tolerance": "0.1"}, "tolerance"),
    ("no limits", {"judgment_type": "NUMERICAL", "measurement": "d"}, "min"),
    ("min above max", {"judgment_type": "NUMERICAL", "measurement": "d", "min": 2, "max": 1},
     "min"),
    ("unit not text", {"judgment_type": "NUMERICAL", "measurement": "d", "min": 1, "unit": 1},
     "unit"),
    ("nothing allowed", {"judgment_type": "CATEGORICAL", "measurement": "c", "allowed": []},
     "allowed"),
    ("no expected value", {"judgment_type": "BINARY", "measurement": "m"}, "expected"),
    ("no pattern", {"judgment_type": "PATTERN", "measurement": "t"}, "pattern"),
    ("pattern not a regex", {"judgment_type": "PATTERN", "measurement": "t", "pattern": "LOT ("},
     "pattern"),
    ("equals not text", {"judgment_type": "PATTERN", "measurement": "t", "pattern": "LOT",
                         "equals": 5}, "equals"),
]
CRITERIA_BY_API = [row for row in BAD_CRITERIA if isinstance(row[1], dict)]

ITEM: dict[str, Any] = {"item_code": "V-CHECK", "item_name": "確認", "inspection_type": "VISUAL",
                        "order_sequence": 9}


def _names_the_key(error: dict[str, Any], key: str | None) -> None:
    assert error["code"] == "criteria_invalid", error
    assert error["detail"].get("key") == key, error
    if key is not None:
        assert key in error["message"], error


@pytest.mark.parametrize(("case", "criteria", "key"), CRITERIA_BY_API,
                         ids=[row[0] for row in CRITERIA_BY_API])
def test_criteria_the_tablet_refuses_are_refused_at_publish(
    publish_site: Running, case: str, criteria: dict[str, Any], key: str | None
) -> None:
    with pytest.raises(CriteriaInvalid) as tablet:
        parse_criteria(criteria)
    url = publish_site.site.database_url
    before = stored(url)
    added = httpx.post(f"{publish_site.url}/admin/v1/targets/BRK-100/items",
                       json={**ITEM, "criteria": criteria}, auth=ADMIN)
    changed = httpx.patch(f"{publish_site.url}/admin/v1/targets/BRK-100/items/D-BORE",
                          json={"criteria": criteria}, auth=ADMIN)
    for answer in (added, changed):
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        _names_the_key(error, key)
        assert tablet.value.message in error["message"]
    assert stored(url) == before


# --- pipeline definitions ---------------------------------------------------------------------


def good() -> dict[str, Any]:
    return tiny_definition(MODEL)


Mutate = Callable[[dict[str, Any]], Any]


def step(index: int, **values: Any) -> Mutate:
    return lambda d: d["steps"][index].update(values)


def params(index: int, **values: Any) -> Mutate:
    return lambda d: d["steps"][index].setdefault("params", {}).update(values)


def drop(index: int, key: str) -> Mutate:
    return lambda d: d["steps"][index].pop(key)


def top(**values: Any) -> Mutate:
    return lambda d: d.update(values)


def label_step(d: dict[str, Any]) -> None:
    d["steps"][3] = {"name": "score", "type": "argmax", "params": {"labels": ["ok", 1]},
                     "x": "$steps.model.output"}


def calibrate_step(**values: Any) -> Mutate:
    return lambda d: d["steps"].append({"name": "cal", "type": "calibrate", "params": values,
                                        "x": "$steps.model.output"})


# (case, change to the good definition, what the error's detail must hold)
BAD_DEFINITIONS: list[tuple[str, Mutate, dict[str, Any]]] = [
    ("not an object", lambda d: [d], {"field": "definition"}),
    ("no name", lambda d: d.pop("name"), {"field": "name"}),
    ("version zero", top(version=0), {"field": "version"}),
    ("version text", top(version="two"), {"field": "version"}),
    ("id a list", top(id=["x"]), {"field": "id"}),
    ("inputs not a list", top(inputs="image"), {"field": "inputs"}),
    ("input without a name", top(inputs=[{"kind": "image"}]), {"field": "inputs[0].name"}),
    ("input of an unknown kind", top(inputs=[{"name": "image", "kind": "video"}]),
     {"field": "inputs[0].kind"}),
    ("input twice", top(inputs=["image", "image"]), {"field": "inputs"}),
    ("no steps", top(steps=[]), {"field": "steps"}),
    ("step not an object", lambda d: d["steps"].insert(0, "resize"), {"field": "steps[0]"}),
    ("step name", step(0, name="1 prep"), {"field": "steps[0].name"}),
    ("step without an op", drop(0, "type"), {"node": "prep", "field": "type"}),
    ("params not an object", step(0, params=[8, 8]), {"node": "prep", "field": "params"}),
    ("selector not text", step(0, image=5), {"node": "prep", "field": "input 'image'"}),
    ("selector syntax", step(0, image="inputs.image"), {"node": "prep", "field": "input 'image'"}),
    ("selector without output", step(1, image="$steps.prep"),
     {"node": "tensor", "field": "input 'image'"}),
    ("step name twice", step(1, name="prep"), {"node": "prep", "field": "name"}),
    ("outputs not an object", top(outputs=["p"]), {"field": "outputs"}),
    ("no outputs", top(outputs={}), {"field": "outputs"}),
    ("units not text", top(units={"p": 1}), {"field": "units"}),
    ("unknown op", step(0, type="resise"), {"node": "prep", "field": "type", "op": "resise"}),
    ("unknown parameter", params(0, colour="red"), {"node": "prep", "param": "colour"}),
    ("missing parameter", step(0, params={"width": 8}), {"node": "prep", "param": "height"}),
    ("integer parameter", params(0, width="8"), {"node": "prep", "param": "width"}),
    ("number parameter", params(1, scale="1/255"), {"node": "tensor", "param": "scale"}),
    ("boolean parameter", params(1, batch="yes"), {"node": "tensor", "param": "batch"}),
    ("text parameter", params(0, mode=1), {"node": "prep", "param": "mode"}),
    ("parameter choice", params(0, mode="crop"), {"node": "prep", "param": "mode"}),
    ("model reference", params(2, model="scratch.onnx"), {"node": "model", "param": "model"}),
    ("list parameter", params(1, mean=0.5), {"node": "tensor", "param": "mean"}),
    ("list of numbers", params(1, mean=[0.5, "x", 0.5]), {"node": "tensor", "param": "mean"}),
    ("list of labels", label_step, {"node": "score", "param": "labels"}),
    ("mean for another channel count", params(1, mean=[0.5, 0.5]), {"node": "tensor"}),
    ("colour conversion", lambda d: d["steps"].insert(1, {
        "name": "hsv", "type": "color", "params": {"from": "gray", "to": "hsv"},
        "image": "$steps.prep.image"}), {"node": "hsv", "param": "to"}),
    ("model step unwired", drop(2, "input"), {"node": "model", "input": "input"}),
    ("missing input", drop(0, "image"), {"node": "prep", "input": "image"}),
    ("unknown input", step(0, mask="$inputs.image"), {"node": "prep", "input": "mask"}),
    ("undeclared pipeline input", step(0, image="$inputs.photo"),
     {"node": "prep", "selector": "$inputs.photo"}),
    ("dangling step", step(1, image="$steps.prepp.image"),
     {"node": "tensor", "selector": "$steps.prepp.image"}),
    ("dangling output", step(1, image="$steps.prep.img"),
     {"node": "tensor", "selector": "$steps.prep.img"}),
    ("dangling pipeline output", lambda d: d["outputs"].update(q="$steps.nothing.x"),
     {"node": None, "field": "output 'q'"}),
    ("dangling artifact", top(artifacts={"heat": "$steps.nothing.heatmap"}),
     {"node": None, "field": "artifact 'heat'"}),
    ("cycle", step(0, image="$steps.tensor.tensor"), {"node": "prep"}),
    ("image where a tensor goes", step(3, x="$steps.prep.image"), {"node": "score", "input": "x"}),
    ("calibration without temperature", calibrate_step(method="temperature"), {"node": "cal"}),
    ("isotonic points missing", calibrate_step(method="isotonic", points_x=[0.5, 1.0]),
     {"node": "cal"}),
    ("isotonic points off [0, 1]", calibrate_step(method="isotonic", points_x=[0.5, 1.5],
                                                  points_y=[0.5, 0.9]), {"node": "cal"}),
    ("isotonic x not rising", calibrate_step(method="isotonic", points_x=[0.9, 0.5],
                                             points_y=[0.5, 0.9]), {"node": "cal"}),
    ("isotonic y falling", calibrate_step(method="isotonic", points_x=[0.5, 0.9],
                                          points_y=[0.9, 0.5]), {"node": "cal"}),
]


def bad_definition(mutate: Mutate) -> Any:
    d = good()
    changed = mutate(d)
    return changed if isinstance(changed, list) else d


def test_the_good_definition_is_published(publish_site: Running) -> None:
    answer = httpx.put(f"{publish_site.url}/admin/v1/pipelines", json={"definition": good()},
                       auth=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "tiny"


BY_API = [row for row in BAD_DEFINITIONS if row[0] != "not an object"]


@pytest.mark.parametrize(("case", "mutate", "names"), BY_API, ids=[row[0] for row in BY_API])
def test_definitions_the_tablet_refuses_are_refused_at_publish(
    publish_site: Running, case: str, mutate: Mutate, names: dict[str, Any]
) -> None:
    definition = bad_definition(mutate)
    with pytest.raises(DefinitionInvalid) as tablet:
        validate(parse_definition(copy.deepcopy(definition)))
    url = publish_site.site.database_url
    before = stored(url)
    answer = httpx.put(f"{publish_site.url}/admin/v1/pipelines",
                       json={"definition": definition}, auth=ADMIN)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "pipeline_definition_invalid"
    assert names.items() <= error["detail"].items(), error
    assert tablet.value.detail.get("node") == error["detail"].get("node")
    assert tablet.value.message in error["message"]
    if names.get("node"):
        assert f"step '{names['node']}'" in error["message"]
    assert stored(url) == before


# --- kensa server ---------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize(("case", "criteria", "key"),
                         [row for row in BAD_CRITERIA if row[0] in ("not an object",
                                                                   "no expected value")],
                         ids=["not an object", "no expected value"])
def test_the_cli_refuses_the_same_criteria(
    publish_site: Running, case: str, criteria: Any, key: str | None
) -> None:
    url = publish_site.site.database_url
    before = stored(url)
    result = runner.invoke(server_app, [
        "item", "add", "BRK-100", "V-CHECK", "確認", "--type", "VISUAL", "--order", "9",
        "--criteria", json.dumps(criteria), "--database-url", url])
    assert result.exit_code == 2, result.output
    assert "criteria" in result.output and "Traceback" not in result.output
    if key is not None:
        assert key in result.output
    assert stored(url) == before


@pytest.mark.parametrize(("case", "mutate", "names"),
                         [row for row in BAD_DEFINITIONS if row[0] in ("not an object",
                                                                       "unknown op")],
                         ids=["not an object", "unknown op"])
def test_the_cli_refuses_the_same_definitions(
    publish_site: Running, tmp_path: Path, case: str, mutate: Mutate, names: dict[str, Any]
) -> None:
    url = publish_site.site.database_url
    before = stored(url)
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(bad_definition(mutate)))
    result = runner.invoke(server_app, ["pipeline", "add", str(path), "--database-url", url])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    if names.get("node"):
        assert f"step '{names['node']}'" in result.output
    assert stored(url) == before


# --- every error the formats raise has a row ------------------------------------------------

# Raise sites no publish can reach: the server is handed decoded JSON (the admin API's body, the
# CLI's own parse), never text.
_TEXT_ONLY = ("not valid JSON",)


def _raise_sites(module: Any, error: type[Exception], functions: set[str] | None) -> set[int]:
    """Lines that raise ``error``: ``raise error(...)``, ``raise bad(...)``, ``_require(...)``,
    and the ValueErrors of shape rules that the check turns into ``error``."""
    tree = ast.parse(inspect.getsource(module))
    sites: set[int] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or (functions and fn.name not in functions):
            continue
        for node in ast.walk(fn):
            call = node.exc if isinstance(node, ast.Raise) else node
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                continue
            if isinstance(node, ast.Raise) and call.func.id in (error.__name__, "bad",
                                                                 "ValueError"):
                text = ast.get_source_segment(inspect.getsource(module), call) or ""
                if not any(skip in text for skip in _TEXT_ONLY):
                    sites.add(node.lineno)
            elif call.func.id == "_require":
                sites.add(call.lineno)
    return sites


def _lines_reached(module: Any, exc: BaseException | None) -> set[int]:
    """Lines of ``module`` the error passed through, and the error it was raised from."""
    path = inspect.getsourcefile(module)
    lines: set[int] = set()
    while exc is not None:
        lines |= {frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
                  if frame.filename == path and frame.lineno is not None}
        exc = exc.__cause__
    return lines


def test_every_criteria_error_has_a_row() -> None:
    reached: set[int] = set()
    for _, criteria, _ in BAD_CRITERIA:
        with pytest.raises(formats.CriteriaInvalid) as err:
            criteria_format.parse_criteria(criteria)
        reached |= _lines_reached(criteria_format, err.value)
    sites = _raise_sites(criteria_format, formats.CriteriaInvalid,
                         {"parse_criteria", "_num", "_band", "_tolerance"})
    assert sites and sites <= reached, f"no row reaches line(s) {sorted(sites - reached)}"


def test_every_definition_error_has_a_row() -> None:
    reached: set[int] = set()
    for _, mutate, _ in BAD_DEFINITIONS:
        with pytest.raises(formats.DefinitionInvalid) as err:
            pipeline_format.validate_definition(bad_definition(mutate))
        reached |= _lines_reached(pipeline_format, err.value)
    sites = _raise_sites(pipeline_format, formats.DefinitionInvalid, None)
    assert sites and sites <= reached, f"no row reaches line(s) {sorted(sites - reached)}"
