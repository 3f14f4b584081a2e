"""Adding pydantic models to an OpenAPI document after FastAPI made it: both apps (the sidecar and
the sync server) document bodies FastAPI cannot see (streamed uploads, their error shape) this way.
No FastAPI import: it works on the document, a plain dict."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def schema_ref(doc: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """Add ``model`` (and the models it names) to the document's components; its ``$ref``."""
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in generated.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas[model.__name__] = generated
    return {"$ref": f"#/components/schemas/{model.__name__}"}
