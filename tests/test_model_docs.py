"""docs/models.md: its op reference is what the node registry says, and its examples are valid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schema.formats.criteria import parse_criteria
from schema.formats.pipeline import OPS, validate_definition
from scripts.devkit import model_docs

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs/models.md"


def test_op_reference_is_up_to_date() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert model_docs.render(text) == text, "run scripts/gen-model-docs"


def test_every_op_and_parameter_is_in_the_guide() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index(model_docs.BEGIN):text.index(model_docs.END)]
    blocks = {b.split("`", 1)[0]: b for b in section.split("\n### `")[1:]}
    assert list(blocks) == list(OPS)
    for type_, decl in OPS.items():
        block = blocks[type_]
        for key in decl.params:
            assert f"| `{key}` |" in block, (type_, key)
        for out in decl.outputs if not decl.dynamic_io else ():
            assert f"`{out}`" in block, (type_, out)


def test_check_fails_on_a_stale_guide_and_the_script_repairs_it(tmp_path: Path) -> None:
    stale = tmp_path / "models.md"
    text = GUIDE.read_text(encoding="utf-8")
    stale.write_text(text.replace("| `max_detections` |", "| `max_dets` |"), encoding="utf-8")
    script = [sys.executable, "-m", "scripts.devkit.model_docs", "--doc", str(stale)]
    checked = subprocess.run([*script, "--check"], cwd=REPO, capture_output=True, text=True,
                             timeout=120, check=False)
    assert checked.returncode == 1
    assert "out of date" in checked.stderr and "+| `max_detections` |" in checked.stdout
    assert stale.read_text(encoding="utf-8") != text  # --check writes nothing
    subprocess.run(script, cwd=REPO, check=True, capture_output=True, timeout=120)
    assert stale.read_text(encoding="utf-8") == text


def test_a_guide_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no op reference markers"):
        model_docs.render("# a guide\n")


def test_the_guides_example_pipeline_passes_the_publish_check() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    first = re.search(r"```json\n(.*?)```", text, re.S)
    assert first is not None
    checked = validate_definition(json.loads(first.group(1)))
    assert checked.order[-1] == "label"


def test_the_guides_criteria_examples_parse() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    examples = re.findall(r"`(\{\"judgment_type\".*?\})`", text)
    assert len(examples) == 5
    for example in examples:
        parse_criteria(json.loads(example))
