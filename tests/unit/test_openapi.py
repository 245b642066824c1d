"""The OpenAPI document served at /api/openapi.json describes function_app's HTTP routes as they are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from shared.local.host.config import read_local_settings, read_route_prefix
from shared.local.host.index import HttpTrigger, IndexedFunction, find_app, import_app_module, index_functions
from shared.local.host.invoke import invoke
from shared.local.host.messages import Reply, from_http_result
from shared.local.host.routes import RouteTemplate
from shared.problems import PROBLEM_CONTENT_TYPE
from shared.services.api_models import CallbackBody, DecisionBody, ScanSubmission
from shared.services.openapi import REF_TEMPLATE, openapi_document, openapi_path

REPO_ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The model function_app.py validates each request body with (`_model(Model, ...)`).
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "submit_scan": ScanSubmission,
    "decide_change": DecisionBody,
    "change_callback": CallbackBody,
}
HAND_WRITTEN_BODIES = {"evaluate_policy": "PolicyEvaluationRequest"}  # the dry run reads a plain JSON object


@pytest.fixture(scope="module")
def http_functions() -> Iterator[dict[str, IndexedFunction]]:
    """function_app's HTTP functions, indexed as the local host does (a fresh import: get_functions() once)."""
    example = read_local_settings(REPO_ROOT / "local.settings.example.json").values
    with pytest.MonkeyPatch.context() as patch:
        # Timer schedules are binding expressions: indexing resolves them from app settings.
        for name, value in example.items():
            if name.endswith("_SCHEDULE"):
                patch.setenv(name, value)
        loaded = import_app_module(REPO_ROOT, "function_app")
        try:
            indexed = index_functions(find_app(loaded.module))
        finally:
            loaded.unload()
    yield {function.name: function for function in indexed if isinstance(function.trigger, HttpTrigger)}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(openapi_document())
    return parsed


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def operation_named(document: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [operation for _, _, operation in operations(document) if operation["operationId"] == name]
    return found


def trigger_of(function: IndexedFunction) -> HttpTrigger:
    assert isinstance(function.trigger, HttpTrigger)
    return function.trigger


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = document
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


# --- (a) the document's operations are function_app's HTTP functions -----------------------------


def test_every_http_function_is_one_operation_at_its_route_and_method_and_nothing_else(
    document: dict[str, Any], http_functions: dict[str, IndexedFunction]
) -> None:
    expected = {
        (openapi_path(trigger_of(function).route.template)[0], method.lower(), name)
        for name, function in http_functions.items()
        for method in trigger_of(function).methods
    }
    described = {(path, method, operation["operationId"]) for path, method, operation in operations(document)}
    assert described == expected


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_the_server_url_is_the_host_json_route_prefix(document: dict[str, Any]) -> None:
    assert [server["url"] for server in document["servers"]] == ["/" + read_route_prefix(REPO_ROOT)]


def test_exactly_the_anonymous_functions_need_no_credential(
    document: dict[str, Any], http_functions: dict[str, IndexedFunction]
) -> None:
    assert document["security"], "the app-wide default (http_auth_level=FUNCTION) needs a function key"
    for name, function in http_functions.items():
        security = operation_named(document, name).get("security", document["security"])
        anonymous = trigger_of(function).auth_level == "anonymous"
        assert (security == []) == anonymous, name
        for requirement in security:
            assert requirement.keys() & {"functionKey", "functionKeyQuery"}, f"{name}: the host asks for a key"


# --- (b) valid OpenAPI 3.1 ------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for reference in set(references(document)):
        assert resolve(document, reference) is not None, reference


# --- (c) bodies are the models' schemas -----------------------------------------------------------


@pytest.mark.parametrize(("name", "model"), REQUEST_MODELS.items())
def test_a_request_body_is_the_schema_of_the_model_the_function_validates_with(
    document: dict[str, Any], name: str, model: type[BaseModel]
) -> None:
    body = operation_named(document, name)["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    generated = model.model_json_schema(ref_template=REF_TEMPLATE)
    components = document["components"]["schemas"]
    nested = generated.pop("$defs", {})
    assert components[model.__name__] == generated
    for nested_name, schema in nested.items():
        assert components[nested_name] == schema, f"{model.__name__} refers to {nested_name}"


def test_only_the_known_operations_take_a_body(document: dict[str, Any]) -> None:
    with_body = {operation["operationId"] for _, _, operation in operations(document) if "requestBody" in operation}
    assert with_body == REQUEST_MODELS.keys() | HAND_WRITTEN_BODIES.keys()
    for name, schema in HAND_WRITTEN_BODIES.items():
        content = operation_named(document, name)["requestBody"]["content"]
        assert content == {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=schema)}}}


def test_change_responses_carry_an_etag(document: dict[str, Any]) -> None:
    for name in ("get_change", "decide_change", "change_callback"):
        ok = operation_named(document, name)["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {"$ref": REF_TEMPLATE.format(model="ChangeRequest")}
        assert "ETag" in ok["headers"], name


def test_every_error_the_app_answers_is_a_problem_and_a_401_says_how_to_authenticate(
    document: dict[str, Any],
) -> None:
    problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF_TEMPLATE.format(model="ProblemDetails")}}}
    assert {"type", "title", "status", "detail"} <= set(document["components"]["schemas"]["ProblemDetails"]["required"])
    for _, _, operation in operations(document):
        name = operation["operationId"]
        assert "500" in operation["responses"], name
        for status, response in operation["responses"].items():
            if int(status) < 400 or (name == "health" and status == "503"):
                continue
            if status == "401" and "content" not in response:
                # A function key missing: the Functions host answers, not the app (which never does on this route).
                assert all(
                    "bearerAuth" not in r and "callbackSignature" not in r
                    for r in operation.get("security", document["security"])
                )
                continue
            assert response["content"] == problem, f"{name} {status}"
            if status == "401":
                assert "WWW-Authenticate" in response["headers"], name


# --- (d) path parameters --------------------------------------------------------------------------


def test_every_route_parameter_is_a_required_path_parameter_and_a_constraint_is_its_enum(
    document: dict[str, Any], http_functions: dict[str, IndexedFunction]
) -> None:
    for name, function in http_functions.items():
        route = trigger_of(function).route
        path, constrained = openapi_path(route.template)
        declared = {
            parameter["name"]: parameter
            for parameter in operation_named(document, name).get("parameters", [])
            if parameter["in"] == "path"
        }
        assert set(declared) == set(re.findall(r"\{(\w+)\}", path)) == set(constrained), name
        for parameter_name, parameter in declared.items():
            assert parameter["required"] is True
            enum = parameter["schema"].get("enum")
            assert enum == (list(constrained[parameter_name]) if constrained[parameter_name] else None)
            # The host accepts exactly the enum: each value matches the route, anything else does not.
            for value in enum or ():
                assert route.match(path.replace("{" + parameter_name + "}", value)) is not None
            if enum:
                assert route.match(path.replace("{" + parameter_name + "}", "not-a-value")) is None


def test_route_templates_become_openapi_paths() -> None:
    assert openapi_path("changes/{change_id}/{decision:regex(^(approve|reject)$)}") == (
        "/changes/{change_id}/{decision}",
        {"change_id": None, "decision": ("approve", "reject")},
    )
    assert openapi_path("openapi.json") == ("/openapi.json", {})
    assert RouteTemplate.parse("images/{gallery}").match("images/g") == {"gallery": "g"}


@pytest.mark.parametrize("route", ["items/{id:int}", "items/{id?}", "files/{*rest}", "x/{id:regex(^a.*$)}"])
def test_a_route_form_the_document_cannot_describe_is_refused(route: str) -> None:
    with pytest.raises(ValueError, match="route"):
        openapi_path(route)


# --- (e) the served document ----------------------------------------------------------------------


def test_the_openapi_function_serves_the_document_as_json_without_a_credential(
    http_functions: dict[str, IndexedFunction],
) -> None:
    function = http_functions["openapi"]
    request = func.HttpRequest("GET", "http://localhost:7071/api/openapi.json", headers={}, body=b"")
    reply: Reply = invoke(function, request, reason="test", function_directory=REPO_ROOT, convert=from_http_result)
    assert reply.status == 200
    assert dict(reply.headers)["Content-Type"] == "application/json"
    assert reply.body.decode() == openapi_document()
    assert json.loads(reply.body)["openapi"] == "3.1.0"
    assert trigger_of(function).auth_level == "anonymous"
