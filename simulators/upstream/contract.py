"""The reference upstream judges request bodies by the contract itself (docs/upstream.openapi.yaml),
so that it accepts exactly what the document allows and refuses what it does not: the schemas
are read from the document, not copied into code."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "upstream.openapi.yaml"


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))


@lru_cache(maxsize=32)
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    components = _document()["components"]
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": components},
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def problem(value: Any, schema_name: str, where: str) -> str | None:
    """Plain words for the first way `value` breaks the contract's schema `schema_name`, or None."""
    error = jsonschema.exceptions.best_match(_validator(schema_name).iter_errors(value))
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{where}{'.' + path if path else ''}: {error.message[:300]}"
