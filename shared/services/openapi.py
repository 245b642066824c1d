"""The HTTP API's OpenAPI 3.1 document (`GET /api/openapi.json`), built in code.

Request and response bodies are the pydantic models' own JSON Schemas (2020-12, the dialect of
OpenAPI 3.1), so a model change changes the document. Each operation names its function and
its route template exactly as `function_app.py` declares them; tests/unit/test_openapi.py fails
when the two disagree, and validates the document against the OpenAPI 3.1 schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared import __version__
from shared.domain.audit import AuditRecord
from shared.domain.callbacks import CALLBACK_CHALLENGE, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from shared.domain.change import ChangeRequest, ChangeState
from shared.domain.evidence import ScanSummary
from shared.domain.policy.report import ValidationReport
from shared.domain.tattoo import ImageTattoo, TattooStatus, ValidationSummary
from shared.problems import PROBLEM_CONTENT_TYPE
from shared.services import audit_query, images
from shared.services.api_models import CallbackBody, DecisionBody, ScanSubmission

REF_TEMPLATE = "#/components/schemas/{model}"
Auth = Literal["anonymous", "key", "bearer", "callback"]

# Every model a body refers to, in the mode it crosses the wire (requests are validated, responses dumped).
MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (ScanSummary, "validation"),
    (ScanSubmission, "validation"),
    (DecisionBody, "validation"),
    (CallbackBody, "validation"),
    (ChangeRequest, "serialization"),
    (ImageTattoo, "serialization"),
    (ValidationSummary, "serialization"),
    (ValidationReport, "serialization"),
    (AuditRecord, "serialization"),
)


@dataclass(frozen=True)
class Operation:
    """One HTTP function of function_app.py, as the document describes it."""

    name: str  # the function name: the operationId
    method: str
    route: str  # the Functions route template, exactly as function_app.py declares it
    tag: str
    summary: str
    auth: Auth
    description: str = ""
    parameters: tuple[dict[str, Any], ...] = ()
    body: str | None = None  # a component schema name
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


# --- route templates -----------------------------------------------------------------------------

_ROUTE_PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_]\w*)(?P<constraints>(?::[^:{}]+)*)\}")
_ALTERNATIVES = re.compile(r":regex\(\^\((?P<values>[\w-]+(?:\|[\w-]+)*)\)\$\)")


def openapi_path(route: str) -> tuple[str, dict[str, tuple[str, ...] | None]]:
    """A Functions route template as an OpenAPI path, and its parameters with their enums.

    `changes/{change_id}/{decision:regex(^(approve|reject)$)}` becomes `/changes/{change_id}/{decision}`
    with `{"change_id": None, "decision": ("approve", "reject")}`. Any other constraint (or
    optional, default or catch-all parameter) is refused, so a new one is described before it ships.
    """
    parameters: dict[str, tuple[str, ...] | None] = {}

    def plain(match: re.Match[str]) -> str:
        name, constraints = match.group("name"), match.group("constraints")
        alternatives = _ALTERNATIVES.fullmatch(constraints)
        if constraints and alternatives is None:
            raise ValueError(f"route {route!r}: constraint {constraints!r} is not described by the OpenAPI document")
        parameters[name] = tuple(alternatives.group("values").split("|")) if alternatives else None
        return "{" + name + "}"

    path = "/" + _ROUTE_PARAMETER.sub(plain, route.strip("/"))
    if re.search(r"[{}]", re.sub(r"\{\w+\}", "", path)):
        raise ValueError(f"route {route!r}: a parameter form the OpenAPI document does not describe")
    return path, parameters


_PATH_PARAMETERS = {
    "gallery": "the gallery name (case-insensitive)",
    "image": "the image definition name (case-insensitive)",
    "version": "the image version, e.g. 1.0.20261101",
    "change_id": "the change request id",
    "decision": "the decision to apply",
    "system": "the change system calling back (a secret must be configured for it)",
}


def _path_parameters(route: str) -> list[dict[str, Any]]:
    _, parameters = openapi_path(route)
    described = []
    for name, enum in parameters.items():
        schema: dict[str, Any] = {"type": "string"}
        if enum:
            schema["enum"] = list(enum)
        described.append(
            {"name": name, "in": "path", "required": True, "description": _PATH_PARAMETERS[name], "schema": schema}
        )
    return described


# --- parameters and bodies -----------------------------------------------------------------------


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string", **schema}}


def _header(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    described = {"name": name, "in": "header", "description": description, "schema": {"type": "string", **schema}}
    return {**described, "required": True} if required else described


def _top(default: int, maximum: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}
    return _query("top", f"page size, 1-{maximum}", **schema)


_CONTINUATION = _query("continuationToken", "the `continuationToken` of the previous page, as given")


def _json(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


_NEXT_PAGE = {
    "type": ["string", "null"],
    "description": "pass as `continuationToken` for the next page; null on the last page",
}


def _page(item: str, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "required": ["value", "continuationToken"],
        "properties": {"value": {"type": "array", "items": _ref(item)}, "continuationToken": _NEXT_PAGE},
    }


_ETAG = {"ETag": {"description": "the change's version; send it back as `If-Match`", "schema": {"type": "string"}}}
_CHANGE = _json("the change request", _ref("ChangeRequest"), _ETAG)


def _hand_written_schemas() -> dict[str, dict[str, Any]]:
    """Bodies that are no pydantic model: pages, the dry-run request, problems, health."""
    return {
        "ProblemDetails": {
            "title": "ProblemDetails",
            "description": "An RFC 9457 problem: every error the app itself answers.",
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string", "description": "what to do; for 5xx only: quote correlationId"},
                "instance": {"type": "string", "format": "uri-reference", "description": "the request path"},
                "correlationId": {"type": "string", "description": "the invocation id, also in logs and audit"},
                "code": {
                    "type": "string",
                    "description": "a stable reason where there is one, e.g. initiator_cannot_approve",
                },
            },
        },
        "ChangePage": _page("ChangeRequest", "ChangePage"),
        "ImagePage": _page("ImageTattoo", "ImagePage"),
        "AuditPage": {
            "title": "AuditPage",
            "type": "object",
            "required": ["from", "to", "value", "continuationToken"],
            "properties": {
                "from": {"type": "string", "format": "date-time", "description": "the range searched, inclusive"},
                "to": {"type": "string", "format": "date-time", "description": "the range searched, exclusive"},
                "value": {"type": "array", "items": _ref("AuditSearchRecord")},
                "continuationToken": _NEXT_PAGE,
            },
        },
        "ScanReceipt": {
            "title": "ScanReceipt",
            "type": "object",
            "required": ["recorded", "status", "scans", "validation"],
            "properties": {
                "recorded": {"type": "boolean", "description": "false: the same summary was posted before"},
                "status": _ref("TattooStatus"),
                "scans": {"type": "integer", "description": "scan summaries the version now holds"},
                "validation": {"anyOf": [_ref("ValidationSummary"), {"type": "null"}]},
            },
        },
        "PolicyEvaluationRequest": {
            "title": "PolicyEvaluationRequest",
            "description": "A version the app can find (`versionId`), or its ARM document (`imageVersion`, "
            "which wins when both are given).",
            "type": "object",
            "anyOf": [{"required": ["versionId"]}, {"required": ["imageVersion"]}],
            "properties": {
                "versionId": {"type": "string", "minLength": 1, "description": "a gallery image version id"},
                "imageVersion": {"type": "object", "description": "an ARM gallery image version document"},
                "imageDefinition": {
                    "type": "object",
                    "description": "its ARM image definition document (else read from the gallery)",
                },
                "environment": {"type": "string", "description": "default: the gallery's environment"},
            },
        },
        "HealthReport": {
            "title": "HealthReport",
            "type": "object",
            "required": ["status", "mode", "version", "checks"],
            "properties": {
                "status": {"enum": ["healthy", "unhealthy"]},
                "mode": {"enum": ["azure", "offline"]},
                "version": {"type": "string"},
                "checks": {
                    "type": "object",
                    "description": "tables, blobs, audit_immutability: `ok...`, else what is failing",
                    "additionalProperties": {"type": "string"},
                },
            },
        },
    }


# --- the operations ------------------------------------------------------------------------------

_IMAGE = "images/{gallery}/{image}/{version}"
_ANY_ROLE = "Any app role."

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="submit_scan",
        method="post",
        route=f"{_IMAGE}/scans",
        tag="validation",
        summary="Submit a scanner's summary of a staged version",
        auth="bearer",
        description="App role Builder. The version is re-validated at once. `submitted_by` and `received` "
        "are set by the server, whatever the body says.",
        body="ScanSubmission",
        responses={
            "201": _json("recorded, and the version re-validated", _ref("ScanReceipt")),
            "200": _json("the same summary was posted before: nothing changed", _ref("ScanReceipt")),
        },
        errors=(400, 401, 403, 404, 409, 500, 502),
    ),
    Operation(
        name="get_validation_report",
        method="get",
        route=f"{_IMAGE}/validation",
        tag="validation",
        summary="The full report of a version's latest validation",
        auth="bearer",
        description=f"{_ANY_ROLE}",
        responses={"200": _json("every rule's result and evidence", _ref("ValidationReport"))},
        errors=(401, 403, 404, 500, 502),
    ),
    Operation(
        name="evaluate_policy",
        method="post",
        route="policy/evaluate",
        tag="validation",
        summary="Dry run: the policy's verdict on a version or an ARM document",
        auth="bearer",
        description=f"{_ANY_ROLE} Records nothing.",
        body="PolicyEvaluationRequest",
        responses={"200": _json("the verdict (a result, whatever it says)", _ref("ValidationReport"))},
        errors=(400, 401, 403, 404, 500, 502),
    ),
    Operation(
        name="list_changes",
        method="get",
        route="changes",
        tag="changes",
        summary="List change requests",
        auth="bearer",
        description=_ANY_ROLE,
        parameters=(
            _query("state", "only changes in this state", enum=[s.value for s in ChangeState]),
            _query("gallery", "only this gallery"),
            _query("image", "only this image definition"),
            _query("ticket", "only changes with a decision under this ticket"),
            _query("initiator", "only changes this builder started"),
            _top(50, 100),
            _CONTINUATION,
        ),
        responses={"200": _json("a page of change requests", _ref("ChangePage"))},
        errors=(400, 401, 403, 500, 502),
    ),
    Operation(
        name="get_change",
        method="get",
        route="changes/{change_id}",
        tag="changes",
        summary="One change request",
        auth="bearer",
        description=_ANY_ROLE,
        responses={"200": _CHANGE},
        errors=(401, 403, 404, 500, 502),
    ),
    Operation(
        name="decide_change",
        method="post",
        route="changes/{change_id}/{decision:regex(^(approve|reject|cancel|release)$)}",
        tag="changes",
        summary="Approve, reject, cancel or release a change",
        auth="bearer",
        description="Any app role may call; the workflow decides: approve needs Approver, reject Approver "
        "(or Publisher once approved), cancel the initiator or Admin, release Publisher; never the initiator.",
        parameters=(
            _header("Idempotency-Key", "a retry with the same key answers the first outcome, not a second decision"),
            _header("If-Match", "the ETag the decision was made on (`*`: any); else 412"),
        ),
        body="DecisionBody",
        responses={"200": _CHANGE},
        errors=(400, 401, 403, 404, 409, 412, 422, 500, 502),
    ),
    Operation(
        name="change_callback",
        method="post",
        route="callbacks/{system:regex(^(servicenow|jira)$)}",
        tag="changes",
        summary="A change system's signed decision",
        auth="callback",
        description="Applied as the change system's identity, on behalf of `approver`. Signed with HMAC-SHA256 "
        f"over `<{TIMESTAMP_HEADER}>.<{NONCE_HEADER}>.<raw body>` (the callbackSignature scheme).",
        parameters=(
            _header(
                TIMESTAMP_HEADER,
                "Unix seconds when signed; at most 5 minutes from the server's clock",
                required=True,
                pattern="^[0-9]{1,10}$",
            ),
            _header(NONCE_HEADER, "never reused", required=True, pattern="^[A-Za-z0-9_-]{16,128}$"),
        ),
        body="CallbackBody",
        responses={"200": _CHANGE},
        errors=(400, 401, 403, 404, 409, 422, 500, 502),
    ),
    Operation(
        name="openapi",
        method="get",
        route="openapi.json",
        tag="operations",
        summary="This document",
        auth="anonymous",
        responses={"200": _json("the OpenAPI 3.1 document", {"type": "object"})},
        errors=(500,),
    ),
    Operation(
        name="list_images",
        method="get",
        route="images",
        tag="images",
        summary="List image tattoos",
        auth="bearer",
        description=f"{_ANY_ROLE}",
        parameters=(
            _query("gallery", "only this gallery"),
            _query("image", "only this image definition"),
            _query("status", "only this status", enum=[s.value for s in TattooStatus]),
            _top(50, images.MAX_PAGE_SIZE),
            _CONTINUATION,
        ),
        responses={"200": _json("a page of image tattoos", _ref("ImagePage"))},
        errors=(400, 401, 403, 500, 502),
    ),
    Operation(
        name="get_image",
        method="get",
        route=_IMAGE,
        tag="images",
        summary="One image version's tattoo",
        auth="bearer",
        description=f"{_ANY_ROLE}",
        responses={"200": _json("the tattoo: provenance, validation, approvals", _ref("ImageTattoo"))},
        errors=(401, 403, 404, 500, 502),
    ),
    Operation(
        name="search_audit",
        method="get",
        route="audit",
        tag="audit",
        summary="Search the audit archive",
        auth="bearer",
        description="App role Auditor (or Admin). Oldest first. The range defaults to the last 24 hours "
        f"and spans at most {audit_query.MAX_SPAN.days} days.",
        parameters=(
            _query("from", "records at or after this time (ISO 8601; UTC when no offset)", format="date-time"),
            _query("to", "records before this time (default: now)", format="date-time"),
            _query("action", "only this action, e.g. change.approved"),
            _query("subject", "only this subject (a resource id, case-insensitive)"),
            _query("changeId", "only this change request"),
            _query("actor", "only records this id or display name acted in, initiated or approved"),
            _top(100, audit_query.MAX_PAGE_SIZE),
            _CONTINUATION,
        ),
        responses={"200": _json("a page of audit records", _ref("AuditPage"))},
        errors=(400, 401, 403, 500, 502),
    ),
    Operation(
        name="health",
        method="get",
        route="health",
        tag="operations",
        summary="Is storage reachable; mode and version",
        auth="anonymous",
        responses={
            "200": _json("healthy", _ref("HealthReport")),
            "503": _json("unhealthy: `checks` says what is failing", _ref("HealthReport")),
        },
        errors=(500,),
    ),
)


# --- errors --------------------------------------------------------------------------------------

_ERRORS = {
    400: "the body or a parameter is malformed; `detail` names each bad field",
    403: "authenticated, but refused: a missing app role, or separation of duties (`code` says which)",
    404: "no such resource",
    409: "the state does not allow it, or a concurrent writer won; re-read and retry",
    412: "If-Match no longer matches the change's ETag: re-read it",
    422: "the decision is refused: a ticket the policy does not accept, or an Idempotency-Key reused",
    500: "an internal or configuration error; quote `correlationId`",
    502: "Azure or storage failed; retry later",
}
_CHALLENGES = {"bearer": '`Bearer` (with `error="invalid_token"` for a bad token)', "callback": CALLBACK_CHALLENGE}
_KEY_401 = "no valid function key: the Functions host answers, not the app (in Azure without a body)"


def _error(status: int, auth: Auth) -> dict[str, Any]:
    if status == 401 and auth == "key":
        return {"description": _KEY_401}
    problem = {PROBLEM_CONTENT_TYPE: {"schema": _ref("ProblemDetails")}}
    if status != 401:
        return {"description": _ERRORS[status], "content": problem}
    challenge = _CHALLENGES[auth]
    return {
        "description": "no credential, or one that does not check out (a missing function key is answered by "
        "the Functions host, not the app: in Azure without a body)",
        "headers": {"WWW-Authenticate": {"description": challenge, "schema": {"type": "string"}}},
        "content": problem,
    }


# --- the document --------------------------------------------------------------------------------

_KEY: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]
_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "anonymous": [],
    "key": _KEY,
    "bearer": [{**key, "bearerAuth": []} for key in _KEY],
    "callback": [{**key, "callbackSignature": []} for key in _KEY],
}
_SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An Entra ID access token for the app (its `roles` claim carries Builder, Approver, "
        "Publisher, Auditor, Admin), or offline a token of the development issuer. Behind App Service "
        "Authentication the platform validates it instead.",
    },
    "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key", "description": "a function key"},
    "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code", "description": "a function key"},
    "callbackSignature": {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": f"`sha256=<hex HMAC-SHA256>` with the system's secret over `<{TIMESTAMP_HEADER}>.<"
        f"{NONCE_HEADER}>.<raw body bytes>`; the timestamp and nonce headers are required too.",
    },
}


def _operation(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": operation.name,
        "tags": [operation.tag],
        "summary": operation.summary,
        "parameters": [*_path_parameters(operation.route), *operation.parameters],
        "responses": {**operation.responses, **{str(s): _error(s, operation.auth) for s in operation.errors}},
    }
    if operation.description:
        described["description"] = operation.description
    if operation.body is not None:
        if operation.body not in schemas:
            raise ValueError(f"{operation.name}: no schema {operation.body!r}")
        content = {"application/json": {"schema": _ref(operation.body)}}
        described["requestBody"] = {"required": True, "content": content}
    if operation.auth != "key":
        described["security"] = _SECURITY[operation.auth]
    if not described["parameters"]:
        del described["parameters"]
    return described


def _component_schemas() -> dict[str, Any]:
    """The models' schemas (pydantic names a clash, like two `Verdict` enums, by module) and the hand-written ones."""
    _, top = models_json_schema(MODELS, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(top["$defs"])
    record = schemas["AuditRecord"]
    # GET /api/audit adds each line's hash to the record it read.
    schemas["AuditSearchRecord"] = {
        **record,
        "title": "AuditSearchRecord",
        "properties": {**record["properties"], "hash": {"type": "string", "description": "SHA-256 of the line"}},
        "required": [*record.get("required", []), "hash"],
    }
    for name, schema in _hand_written_schemas().items():
        if name in schemas:
            raise ValueError(f"schema {name!r} is both a model and hand-written")
        schemas[name] = schema
    return dict(sorted(schemas.items()))


def _build_document() -> dict[str, Any]:
    schemas = _component_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        path, _ = openapi_path(operation.route)
        paths.setdefault(path, {})[operation.method] = _operation(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Golden image governance",
            "version": __version__,
            "description": "Provenance, validation and approval of golden VM images in Azure Compute Galleries. "
            "Errors are RFC 9457 problems (`application/problem+json`). Every route but /health and "
            "/openapi.json needs a function key; most also an Entra ID bearer token with an app role.",
        },
        "servers": [{"url": "/api", "description": "the Functions route prefix (host.json)"}],
        "security": _SECURITY["key"],
        "tags": [{"name": name} for name in dict.fromkeys(operation.tag for operation in OPERATIONS)],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }


@lru_cache(maxsize=1)
def openapi_document() -> str:
    """The document as served: built once per worker."""
    return json.dumps(_build_document(), indent=2)
