"""The op reference of ``docs/models.md``, written from the node registry so that it cannot drift.

    python -m scripts.devkit.model_docs            # rewrite the section in docs/models.md
    python -m scripts.devkit.model_docs --check    # exit 1 if it is not what the registry says

Only the text between the two markers is generated; the rest of the guide is written by hand.
``tests/test_model_docs.py`` fails when the registry changed and the guide was not regenerated.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from schema.formats.pipeline import OPS, Param
from sidecar.pipeline.nodes import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
BEGIN = ("<!-- BEGIN OP REFERENCE: generated from the node registry by scripts/gen-model-docs; "
         "edit the ops, not this text -->")
END = "<!-- END OP REFERENCE -->"

_TYPES = {
    "int": "integer", "number": "number", "bool": "true / false", "str": "string",
    "model": "model (`sha256:<hex>`)", "list[float]": "list of numbers",
    "list[str]": "list of strings",
}


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, float):
        return f"`{v:.6g}`"
    if isinstance(v, list):
        return "`[" + ", ".join(_value(x).strip("`") for x in v) + "]`"
    if isinstance(v, str):
        return f'`"{v}"`'
    return f"`{v}`"


def _default(p: Param) -> str:
    if p.required:
        return "**required**"
    return "—" if p.default is None else _value(p.default)


def _op(type_: str) -> list[str]:
    spec = REGISTRY[type_]
    lines = [f"### `{type_}`", "", spec.doc, "", f"- stage: `{spec.stage}`"]
    if spec.dynamic_io:
        lines += [
            "- inputs: the model's own, by name — `\"input\": SELECTOR` feeds its first input, "
            "`\"inputs\": {\"NAME\": SELECTOR, …}` feeds them by name; every model input must be "
            "wired",
            "- outputs: the model's output names, plus `output` (its first output) and "
            "`outputs` (all of them, by name)",
        ]
    else:
        ins = [f"`{k}` ({kind})" for k, kind in spec.inputs.items()]
        ins += [f"`{k}` ({kind}, optional)" for k, kind in spec.optional_inputs.items()]
        lines.append("- inputs: " + (", ".join(ins) or "none"))
        lines.append("- outputs: " + ", ".join(f"`{o}`" for o in spec.outputs))
    if spec.params:
        lines += ["", "| parameter | type | default | allowed |", "|---|---|---|---|"]
        for key, p in spec.params.items():
            allowed = ", ".join(_value(c) for c in p.choices) if p.choices else ""
            lines.append(f"| `{key}` | {_TYPES[p.type]} | {_default(p)} | {allowed} |")
    return [*lines, ""]


def op_reference() -> str:
    """The generated section, markers included, in the catalogue's order."""
    if set(REGISTRY) != set(OPS):
        raise AssertionError("the registry and the catalogue list different ops")
    lines = [BEGIN, "", "| op | stage | what it does |", "|---|---|---|"]
    lines += [f"| [`{t}`](#{t}) | {REGISTRY[t].stage} | {REGISTRY[t].doc} |" for t in OPS]
    lines.append("")
    for t in OPS:
        lines += _op(t)
    return "\n".join([*lines, END])


def render(document: str) -> str:
    """``document`` with its op reference replaced by the registry's."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the guide has no op reference markers ({BEGIN!r} … {END!r})")
    return document[:start] + op_reference() + document[end + len(END):]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gen-model-docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only compare; exit 1 if the guide is out of date")
    parser.add_argument("--doc", type=Path, default=DOC, help="the guide (docs/models.md)")
    args = parser.parse_args(argv)
    current = args.doc.read_text(encoding="utf-8")
    wanted = render(current)
    if current == wanted:
        print(f"{args.doc}: op reference up to date")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(keepends=True), wanted.splitlines(keepends=True),
            str(args.doc), "generated"))
        print(f"{args.doc}: op reference out of date; run scripts/gen-model-docs",
              file=sys.stderr)
        return 1
    args.doc.write_text(wanted, encoding="utf-8")
    print(f"{args.doc}: op reference rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
