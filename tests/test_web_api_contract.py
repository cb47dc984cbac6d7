"""The station's local API is documented by hand in agent/ops/station-api.openapi.json (the one
file: docs/station-api.openapi.json links to it, the daemon serves it at /openapi.json), and that
document names exactly the operations the server routes: a route without its entry, or an entry
without its route, fails here. Whether the answers are what it says is schemathesis's to check
(tests/test_web_schemathesis.py). The operator's PIN is kept only as a salted PBKDF2 hash."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import schemathesis
from starlette.routing import Route

from agent.core.config import WebConfig
from agent.ops.web import API_DOCUMENT, create_app
from agent.ops.web_auth import Sessions, hash_pin, verify_pin

DOCS_LINK = Path(__file__).resolve().parents[1] / "docs" / "station-api.openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def served_api_operations() -> set[tuple[str, str]]:
    app = create_app(None, WebConfig(), "id")  # the routes are not called: no station needed
    return {(route.path, method.lower()) for route in app.routes if isinstance(route, Route)
            if route.path.startswith("/api/") or route.path == "/openapi.json" for method in route.methods or ()}


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS}


def test_the_document_names_every_served_api_operation_and_no_other():
    document = json.loads(API_DOCUMENT.read_text())
    served = served_api_operations()
    assert {("/api/status", "get"), ("/api/events", "get"), ("/api/printers/{printer}/{action}", "post"),
            ("/api/jobs/{job_id}/{decision}", "post"), ("/openapi.json", "get")} <= served, "the walk found the API"
    assert served - documented_operations(document) == set(), "served, not in the document"
    assert documented_operations(document) - served == set(), "in the document, not served"


def test_the_document_is_valid_openapi_and_its_schemas_valid_json_schema():
    document = json.loads(API_DOCUMENT.read_text())
    schemathesis.openapi.from_path(API_DOCUMENT).validate()  # the OpenAPI 3.1 document's own schema
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_docs_folder_links_to_the_packaged_document():
    assert DOCS_LINK.is_symlink() and DOCS_LINK.resolve() == API_DOCUMENT.resolve()


def test_a_pin_is_kept_as_a_salted_hash_and_only_the_pin_matches():
    one, two = hash_pin("2468"), hash_pin("2468")
    assert one != two and "2468" not in one, "salted, never the PIN itself"
    assert verify_pin("2468", one) and not verify_pin("2469", one)
    assert not verify_pin("2468", None) and not verify_pin("2468", "garbage") and not verify_pin("2468", "a$b$c$d")


def test_an_action_needs_the_session_and_its_csrf_token():
    sessions = Sessions()
    token, session = sessions.open()
    assert sessions.allows(token, session.csrf)
    assert not sessions.allows(token, None) and not sessions.allows(token, "forged")
    assert not sessions.allows("not-a-session", session.csrf)
    sessions.close(token)
    assert not sessions.allows(token, session.csrf)


def test_web_pin_prints_the_line_for_the_configuration():
    import subprocess
    import sys

    made = subprocess.run([sys.executable, "-m", "agent", "web-pin", "--stdin"], input="2468\n",
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key, _, value = made.stdout.strip().partition(" = ")
    assert key == "operator_pin_hash" and verify_pin("2468", json.loads(value))
    short = subprocess.run([sys.executable, "-m", "agent", "web-pin", "--stdin"], input="12\n",
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "4 characters" in short.stderr
