"""The shape of station.toml as a JSON Schema: every table and key the station reads, and each
value's type. A key the station does not know is refused (with the nearest known one), a value of
the wrong type names the type wanted; what a value means (a file that must exist, a range, a URL)
is checked by agent/core/config.py.

The schema uses five keywords (type, properties, additionalProperties, items and $schema), judged
here by a walker of a few lines, as JSON Schema 2020-12 defines them: a validator library would add
~3 MB to the daemon for one look at one file (tests/test_config_check.py holds the walker to the
jsonschema package's verdict).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_TEXT: dict[str, Any] = {"type": "string"}
_WHOLE: dict[str, Any] = {"type": "integer"}
_NUMBER: dict[str, Any] = {"type": "number"}
_YES_NO: dict[str, Any] = {"type": "boolean"}
_TEXTS: dict[str, Any] = {"type": "array", "items": _TEXT}


def _table(properties: dict[str, Any]) -> dict[str, Any]:
    # Missing keys are named by config.py, with a fix each; the schema says what may be there.
    return {"type": "object", "properties": properties, "additionalProperties": False}


STATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "printstation station.toml",
    **_table({
        "station": _table({"id": _TEXT, "journal": _TEXT, "language": _TEXT, "retention_days": _WHOLE,
                           "control_socket": _TEXT}),
        "upstream": _table({
            "url": _TEXT, "token": _TEXT, "token_file": _TEXT,
            "authority_keys": {"type": "object", "additionalProperties": _TEXT},
            "prefetch": _WHOLE, "lease_max": _WHOLE, "wait_s": _NUMBER, "timeout_s": _NUMBER,
            "outage_hours": _NUMBER, "cards_per_hour": _NUMBER, "renew_margin_s": _NUMBER, "retry_max_s": _NUMBER,
            "exchange_deadline_s": _NUMBER, "ca_file": _TEXT, "client_cert": _TEXT, "client_key": _TEXT,
        }),
        "chip": _table({"profile": _TEXT, "trust_anchors": _TEXTS, "card_wait_s": _NUMBER, "card_budget_s": _NUMBER}),
        "pipeline": _table({"panel_depth": _WHOLE, "max_attempts": _WHOLE}),
        "printers": {"type": "array", "items": _table({"name": _TEXT, "link": _TEXT, "reader": _TEXT,
                                                        "ribbon": _TEXT, "contrast": _WHOLE})},
        "windows": {"type": "array", "items": _table({"days": _TEXTS, "start": _TEXT, "end": _TEXT})},
        # Dates may be TOML dates or quoted text: config.py reads both.
        "calendar": _table({"holidays": {"type": "array"},
                            "busy": {"type": "array", "items": _table({"from": {}, "to": {}, "factor": _NUMBER})}}),
        "limits": _table({"max_answer_mb": _NUMBER, "max_image_kb": _WHOLE, "max_chip_file_kb": _WHOLE}),
        "stock": _table({"report_every_s": _NUMBER, "blanks_low": _WHOLE, "blanks_low_days": _NUMBER,
                         "office_low_print_days": _NUMBER, "ribbon_low": _WHOLE, "lookback_days": _WHOLE}),
        "metrics": _table({"listen": _TEXT}),
        "web": _table({"listen": _TEXT, "operator_pin_hash": _TEXT}),
        "notify": _table({"webhook_url": _TEXT, "smtp_host": _TEXT, "smtp_port": _WHOLE, "smtp_from": _TEXT,
                          "smtp_to": _TEXTS, "desktop": _YES_NO, "upstream_offline_after_s": _NUMBER,
                          "repeat_after_s": _NUMBER}),
    }),
}



@dataclass(frozen=True)
class SchemaError:
    """One value the schema refuses: `keyword` is "type" or "additionalProperties"."""

    path: tuple[str | int, ...]
    keyword: str
    schema: dict[str, Any]
    instance: object


def _is_integer(value: object) -> bool:
    # 2020-12: a number with no fractional part is an integer, 3.0 as well as 3.
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


_IS_TYPE = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def schema_errors(schema: dict[str, Any], instance: object,
                  path: tuple[str | int, ...] = ()) -> Iterator[SchemaError]:
    """Every place `instance` breaks `schema` (only the keywords STATION_SCHEMA uses)."""
    kind = schema.get("type")
    if kind is not None and not _IS_TYPE[kind](instance):
        yield SchemaError(path, "type", schema, instance)
        return  # the other keywords apply to objects and arrays only
    if isinstance(instance, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        additional = schema.get("additionalProperties", True)
        if additional is False and any(key not in properties for key in instance):
            yield SchemaError(path, "additionalProperties", schema, instance)
        for key, value in instance.items():
            rule = properties.get(key, additional if isinstance(additional, dict) else None)
            if rule is not None:
                yield from schema_errors(rule, value, (*path, key))
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            yield from schema_errors(schema["items"], item, (*path, index))

# The type the schema wants, and the TOML a person writes for it ({value}: what they wrote, retyped).
_WANTED = {
    "string": ("text", 'in double quotes: {key} = "{value}"'),
    "integer": ("a whole number", "without quotes or a point: {key} = {value}"),
    "number": ("a number", "without quotes: {key} = {value}"),
    "boolean": ("true or false", "without quotes: {key} = {value}"),
    "array": ("a list", 'in brackets: {key} = [{value}]'),
    "object": ("a table", "as a [{key}] section with its keys below"),
}
_PLACEHOLDER = {"string": "...", "integer": "10", "number": "2.5", "boolean": "true", "array": '"..."', "object": ""}


def _retyped(wanted: str, given: object) -> str:
    """What the person wrote, in the type wanted, when it reads as one (e.g. "400" -> 400)."""
    text = str(given).strip()
    if wanted == "integer" and isinstance(given, (str, float)) and text.replace(".0", "", 1).lstrip("-").isdigit():
        return text.removesuffix(".0")
    if wanted == "number" and isinstance(given, str):
        try:
            float(text)
            return text
        except ValueError:
            pass
    if wanted == "boolean" and text.lower() in ("true", "false"):
        return text.lower()
    if wanted == "string" and isinstance(given, (int, float)) and not isinstance(given, bool):
        return text
    if wanted == "array" and isinstance(given, str):
        return f'"{given}"'
    return _PLACEHOLDER[wanted]
_GIVEN = {str: "text", bool: "true/false", int: "a whole number", float: "a number", list: "a list", dict: "a table"}


@dataclass(frozen=True)
class SchemaProblem:
    key: str        # as config.py names keys: "station.language", "printers[1].link", "printer"
    problem: str
    fix: str


def schema_problems(data: dict[str, Any]) -> Iterator[SchemaProblem]:
    """Every key the station does not know and every value of the wrong type in `data` (parsed TOML)."""
    for error in sorted(schema_errors(STATION_SCHEMA, data), key=lambda e: [str(p) for p in e.path]):
        where = _key(list(error.path))
        if error.keyword == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {}))
            for unknown in sorted(set(error.instance) - set(known)):
                yield _unknown(where, unknown, known)
        elif error.keyword == "type":
            kind = str(error.schema["type"])
            wanted, how = _WANTED[kind]
            leaf = where.rpartition(".")[2].split("[")[0] or where
            given = _GIVEN.get(type(error.instance), type(error.instance).__name__)
            yield SchemaProblem(where, f"is {given}, but must be {wanted}",
                                f"write it {how.format(key=leaf, value=_retyped(kind, error.instance))}")


def _unknown(table: str, unknown: str, known: list[str]) -> SchemaProblem:
    key = f"{table}.{unknown}" if table else unknown
    near = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    section = f"[{table}]" if table else "the file's top level"
    if near:
        fix = f"did you mean `{near[0]}`?" + (f" Write [[{near[0]}]]" if not table and near[0] in ("printers", "windows")
                                              else f" Rename it to {near[0]}")
    else:
        fix = f"remove it; {section} knows {', '.join(known)} (systemd/station.example.toml shows each)"
    return SchemaProblem(key, f"is not a setting printstation knows in {section}", fix)


def _key(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
