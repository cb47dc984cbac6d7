"""The daemon's walker of the station.toml schema agrees with an implementation it did not write.

agent/core/config_schema.py judges parsed TOML by the schema's five keywords itself (the jsonschema
package would cost the daemon ~3 MB for one look at one file). Here the jsonschema package, which
implements JSON Schema 2020-12 independently, judges the same documents: files shaped like
station.toml, with known and unknown keys, values of every TOML type, tables where lists belong
and lists where tables do. Each place one refuses, the other must refuse, with the same keyword.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from jsonschema import Draft202012Validator

from agent.core.config_schema import STATION_SCHEMA, schema_errors, schema_problems


_ORACLE = Draft202012Validator(STATION_SCHEMA)
_SCALARS = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from([2.0, -1.0, 0.5]), st.booleans())


def _keys(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    known = sorted(schema.get("properties", {}))
    unknown = st.sampled_from(["langauge", "x", "printer", "Token"])
    return st.one_of(st.sampled_from(known), unknown) if known else unknown


def _document(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[object]:
    """A value mostly of the shape `schema` wants, sometimes of any other."""
    anything = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=2),
                                                             st.dictionaries(st.text(max_size=3), inner, max_size=2)),
                            max_leaves=4)
    if depth > 3:
        return anything
    kind = schema.get("type")
    if kind == "object":
        additional = schema.get("additionalProperties")
        shaped: st.SearchStrategy[object] = st.dictionaries(
            _keys(schema), st.deferred(lambda: anything), max_size=6).flatmap(
            lambda d: st.fixed_dictionaries({k: _document(_rule(schema, k, additional), depth + 1) for k in d}))
        return st.one_of(shaped, shaped, shaped, anything)
    if kind == "array":
        items = schema.get("items", {})
        return st.one_of(st.lists(_document(items, depth + 1), max_size=3), st.lists(_document(items, depth + 1),
                                                                                   max_size=3), anything)
    return st.one_of(_SCALARS, _SCALARS, anything)


def _rule(schema: dict[str, Any], key: str, additional: object) -> dict[str, Any]:
    if key in schema.get("properties", {}):
        return schema["properties"][key]  # type: ignore[no-any-return]
    return additional if isinstance(additional, dict) else {}


def _places(errors: list[tuple[tuple[object, ...], str]]) -> set[tuple[tuple[object, ...], str]]:
    return set(errors)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_document(STATION_SCHEMA))
def test_the_walker_refuses_exactly_what_jsonschema_refuses(document: object) -> None:
    ours = _places([(e.path, e.keyword) for e in schema_errors(STATION_SCHEMA, document)])
    theirs = _places([(tuple(e.absolute_path), str(e.validator)) for e in _ORACLE.iter_errors(document)])
    assert ours == theirs


def test_the_documents_drawn_reach_both_kinds_of_refusal_and_the_deep_tables() -> None:
    """The oracle test above would prove little if its documents never broke the schema deep down."""
    unknown_deep = {"printers": [{"name": "p", "colour": "red"}], "upstream": {"authority_keys": {"a": 3}}}
    found = {(e.path, e.keyword) for e in schema_errors(STATION_SCHEMA, unknown_deep)}
    assert found == {(("printers", 0), "additionalProperties"), (("upstream", "authority_keys", "a"), "type")}
    assert found == {(tuple(e.absolute_path), str(e.validator)) for e in _ORACLE.iter_errors(unknown_deep)}


def test_a_whole_number_written_with_a_point_is_a_whole_number_as_2020_12_says() -> None:
    fine = {"station": {"retention_days": 30.0}}
    assert list(schema_errors(STATION_SCHEMA, fine)) == [] == list(_ORACLE.iter_errors(fine))
    assert [p.key for p in schema_problems({"station": {"retention_days": 30.5}})] == ["station.retention_days"]
