"""Azure Functions triggers: parse input, call one service, map errors to a response.

Function names are stable: they appear in Event Grid subscriptions and webhook URLs.
Nothing here creates a client at import time; services are built on first use per worker.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.domain.change import ChangeRequest, ChangeState
from shared.domain.identity import Role
from shared.domain.tattoo import TattooKey, partition_of
from shared.errors import GovernanceError, InvalidInput, NotFound, Unauthenticated
from shared.ports import ChangeFilter
from shared.problems import PROBLEM_CONTENT_TYPE, problem, problem_for
from shared.services.api_models import CallbackBody, DecisionBody, ScanSubmission
from shared.services.audit_query import AuditQuery
from shared.services.health import check_health
from shared.services.openapi import openapi_document
from shared.services.policy_source import check_policy_at_start
from shared.services.wiring import get_services

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("function_app")
ModelT = TypeVar("ModelT", bound=BaseModel)
ANY_ROLE = tuple(Role)  # any app role: reading images and changes
# A policy edited to be invalid stops the app here, naming the bad field (PolicyError).
check_policy_at_start()
# The SDKs log every request and response header at INFO: about a hundred lines per event,
# all shipped to Application Insights. Their warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


# --- Event Grid --------------------------------------------------------------------------------


@app.function_name("build_events")
@app.event_grid_trigger(arg_name="event")
def build_events(event: func.EventGridEvent, context: func.Context) -> None:
    """Image Builder run completions and staging version writes (Resource Manager events).

    Returns normally for handled, ignored and rejected events; raises (so Event Grid retries)
    only when Azure or storage failed.
    """
    envelope = {
        "id": event.id,
        "eventType": event.event_type,
        "subject": event.subject,
        "topic": event.topic,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "dataVersion": event.data_version,
        "data": _event_data(event),
    }
    result = get_services().require_ready().intake.handle_event(envelope, context.invocation_id)
    log.info(
        "build event %s: %s", result.outcome, result.detail,
        extra={"event_id": event.id, "event_type": event.event_type, "correlation_id": context.invocation_id},
    )  # fmt: skip


def _event_data(event: func.EventGridEvent) -> Any:
    try:
        return event.get_json()
    except ValueError:
        return None  # refused by the intake as malformed, and kept


# --- Timers ------------------------------------------------------------------------------------


@app.function_name("refresh_images")
@app.timer_trigger(schedule="%REFRESH_SCHEDULE%", arg_name="timer")
def refresh_images(timer: func.TimerRequest, context: func.Context) -> None:
    """The monthly refresh: run every configured image template."""
    services = get_services().require_ready()
    report = services.scheduler.refresh(services.settings.build_template_ids)
    log.info("refresh: %s", report, extra={"correlation_id": context.invocation_id, "past_due": timer.past_due})


@app.function_name("reconcile_builds")
@app.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer")
def reconcile_builds(timer: func.TimerRequest, context: func.Context) -> None:
    """Catch runs whose completion event was missed: re-read templates, record what is not recorded."""
    services = get_services().require_ready()
    report = services.scheduler.reconcile(services.settings.build_template_ids, context.invocation_id)
    log.info("reconcile: %s", report, extra={"correlation_id": context.invocation_id, "past_due": timer.past_due})


@app.function_name("seal_audit_digest")
@app.timer_trigger(schedule="%AUDIT_DIGEST_SCHEDULE%", arg_name="timer")
def seal_audit_digest(timer: func.TimerRequest, context: func.Context) -> None:
    """Sign a digest of everything the audit archive holds (docs/audit-format.md, section 4)."""
    result = get_services().require_ready().audit_sealer.seal()
    log.info(
        "audit digest %s: %s", "sealed" if result.created else "already sealed", result.path,
        extra={"correlation_id": context.invocation_id, "past_due": timer.past_due},
    )  # fmt: skip


@app.function_name("drain_audit_outbox")
@app.timer_trigger(schedule="%AUDIT_OUTBOX_SCHEDULE%", arg_name="timer")
def drain_audit_outbox(timer: func.TimerRequest, context: func.Context) -> None:
    """Append audit records whose writer died between its state change and the append."""
    report = get_services().require_ready().audit_outbox.drain_expired()
    log.info("audit outbox: %s", report, extra={"correlation_id": context.invocation_id, "past_due": timer.past_due})


@app.function_name("validate_images")
@app.timer_trigger(schedule="%VALIDATE_SCHEDULE%", arg_name="timer")
def validate_images(timer: func.TimerRequest, context: func.Context) -> None:
    """The validation gate: evaluate built versions (boot test included), remediate or ask for approval."""
    outcomes = get_services().require_ready().validation.validate_pending(context.invocation_id)
    summary: dict[str, int] = {}
    for outcome in outcomes:
        summary[outcome.outcome] = summary.get(outcome.outcome, 0) + 1
    log.info("validation: %s", summary, extra={"correlation_id": context.invocation_id, "past_due": timer.past_due})


# --- HTTP: validation evidence and dry runs ----------------------------------------------------


@app.function_name("submit_scan")
@app.route(route="images/{gallery}/{image}/{version}/scans", methods=["POST"])
def submit_scan(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """A pipeline's scanner summary for a staged version (Builder role); re-validates at once."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        caller = services.access.require(
            req.headers, (Role.BUILDER,), operation="submit_scan", correlation_id=context.invocation_id
        )
        scan = _model(ScanSubmission, _body(req)).summary()
        params = req.route_params
        key = TattooKey(partition=partition_of(params["gallery"], params["image"]), row=params["version"].lower())
        receipt = services.scans.submit(key, scan, caller=caller, correlation_id=context.invocation_id)
        body = {
            "recorded": receipt.recorded,
            "status": receipt.tattoo.status.value,
            "scans": len(receipt.tattoo.scans),
            "validation": receipt.tattoo.validation.model_dump(mode="json") if receipt.tattoo.validation else None,
        }
        return _json(body, status=201 if receipt.recorded else 200)

    return _respond(req, context, handle)


@app.function_name("get_validation_report")
@app.route(route="images/{gallery}/{image}/{version}/validation", methods=["GET"])
def get_validation_report(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The full report of a version's latest validation: every rule's result and evidence."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        services.access.require(
            req.headers, ANY_ROLE, operation="get_validation_report", correlation_id=context.invocation_id
        )
        params = req.route_params
        tattoo = services.images.get_image(params["gallery"], params["image"], params["version"])
        if tattoo.validation is None or tattoo.validation.report_blob is None:
            raise NotFound(f"version {params['version']} has not been validated yet")
        report = services.validation_reports.read(tattoo.validation.report_blob)
        return func.HttpResponse(report, status_code=200, mimetype="application/json")

    return _respond(req, context, handle)


@app.function_name("evaluate_policy")
@app.route(route="policy/evaluate", methods=["POST"])
def evaluate_policy(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Dry run: the policy's verdict on a version or an ARM version document; records nothing."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        services.access.require(
            req.headers, tuple(Role), operation="evaluate_policy", correlation_id=context.invocation_id
        )
        report = services.policy_dry_run.evaluate(_body(req))
        return func.HttpResponse(report.model_dump_json(), status_code=200, mimetype="application/json")

    return _respond(req, context, handle)


@app.function_name("expire_changes")
@app.timer_trigger(schedule="%EXPIRE_SCHEDULE%", arg_name="timer")
def expire_changes(timer: func.TimerRequest, context: func.Context) -> None:
    """The approval SLA: remind before the deadline, expire after it (audited and announced)."""
    services = get_services().require_ready()
    report = services.approvals.sweep(context.invocation_id)
    # Callback nonces are only needed while their timestamps are within the replay window.
    purged = services.callback_nonces.purge_expired(datetime.now(UTC))
    log.info("changes: %s; expired callback nonces purged: %d", report, purged,
             extra={"correlation_id": context.invocation_id, "past_due": timer.past_due})  # fmt: skip


# --- HTTP: the approval workflow ---------------------------------------------------------------

@app.function_name("list_changes")
@app.route(route="changes", methods=["GET"])
def list_changes(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        services.access.require(req.headers, ANY_ROLE, operation="list_changes", correlation_id=context.invocation_id)
        state = req.params.get("state")
        try:
            filters = ChangeFilter(
                state=ChangeState(state) if state else None,
                gallery=req.params.get("gallery"),
                image=req.params.get("image"),
                ticket=req.params.get("ticket"),
                initiator=req.params.get("initiator"),
            )
        except ValueError:
            raise InvalidInput(f"state: one of {', '.join(s.value for s in ChangeState)}") from None
        page = services.approvals.query(filters, _int_param(req, "top", 50), req.params.get("continuationToken"))
        body = {"value": [c.model_dump(mode="json") for c in page.items], "continuationToken": page.continuation}
        return _json(body)

    return _respond(req, context, handle)


@app.function_name("get_change")
@app.route(route="changes/{change_id}", methods=["GET"])
def get_change(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        change_id = req.route_params["change_id"]
        services.access.require(
            req.headers, ANY_ROLE, operation="get_change", correlation_id=context.invocation_id, change_id=change_id
        )
        change, etag = services.approvals.get(change_id)
        return _change_response(change, etag)

    return _respond(req, context, handle)


@app.function_name("decide_change")
@app.route(route="changes/{change_id}/{decision:regex(^(approve|reject|cancel|release)$)}", methods=["POST"])
def decide_change(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """approve | reject | cancel | release, with a change ticket; `Idempotency-Key` and `If-Match` honoured."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        decision = req.route_params["decision"].lower()  # routes match case-insensitively
        caller = services.access.require(
            req.headers, ANY_ROLE, operation=f"{decision}_change", correlation_id=context.invocation_id,
            change_id=req.route_params["change_id"],
        )  # fmt: skip
        body = _model(DecisionBody, _body(req))
        receipt = services.approvals.decide(
            req.route_params["change_id"], decision, caller,
            ticket=body.ticket, reason=body.reason, correlation_id=context.invocation_id,
            idempotency_key=req.headers.get("Idempotency-Key"), if_match=_if_match(req),
        )  # fmt: skip
        return _change_response(receipt.change, receipt.etag)

    return _respond(req, context, handle)


@app.function_name("change_callback")
@app.route(route="callbacks/{system:regex(^(servicenow|jira)$)}", methods=["POST"])
def change_callback(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """A change system's decision, HMAC-signed (docs/operations.md), applied as that system's identity."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        system = req.route_params["system"].lower()
        try:
            verified = services.callbacks.verify(system, req.headers, req.get_body(), datetime.now(UTC))
        except Unauthenticated as exc:
            log.warning("callback refused", extra={**exc.log_fields(), "correlation_id": context.invocation_id})
            services.access.record_denial(
                None, f"{system}_callback", f"callback refused: {exc.reason}", context.invocation_id, code=exc.reason
            )
            raise
        body = _model(CallbackBody, verified.payload)
        receipt = services.approvals.decide(
            body.change_id, body.decision, verified.identity,
            ticket=body.ticket, reason=body.reason, correlation_id=context.invocation_id,
            # One decision per person per ticket: a second approver on the same ticket is a new decision.
            idempotency_key=f"{system}:{body.ticket}:{body.decision}:{body.approver}",
        )  # fmt: skip
        return _change_response(receipt.change, receipt.etag)

    return _respond(req, context, handle)


@app.function_name("openapi")
@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The HTTP API's OpenAPI 3.1 document (built in shared/services/openapi.py; a test keeps it true)."""

    def handle() -> func.HttpResponse:
        return func.HttpResponse(openapi_document(), status_code=200, mimetype="application/json")

    return _respond(req, context, handle)


# --- HTTP read API -----------------------------------------------------------------------------


@app.function_name("list_images")
@app.route(route="images", methods=["GET"])
def list_images(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        services.access.require(req.headers, ANY_ROLE, operation="list_images", correlation_id=context.invocation_id)
        page = services.images.list_images(
            gallery=req.params.get("gallery"),
            image=req.params.get("image"),
            status=req.params.get("status"),
            page_size=_int_param(req, "top", 50),
            continuation=req.params.get("continuationToken"),
        )
        body = {
            "value": [t.model_dump(mode="json") for t in page.items],
            "continuationToken": page.continuation,
        }
        return _json(body)

    return _respond(req, context, handle)


@app.function_name("get_image")
@app.route(route="images/{gallery}/{image}/{version}", methods=["GET"])
def get_image(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        params = req.route_params
        services = get_services().require_ready()
        services.access.require(req.headers, ANY_ROLE, operation="get_image", correlation_id=context.invocation_id)
        tattoo = services.images.get_image(params["gallery"], params["image"], params["version"])
        return _json(tattoo.model_dump(mode="json"))

    return _respond(req, context, handle)


@app.function_name("search_audit")
@app.route(route="audit", methods=["GET"])
def search_audit(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Audit records from the archive, for Auditors (and Admins)."""

    def handle() -> func.HttpResponse:
        services = get_services().require_ready()
        services.access.require(
            req.headers, (Role.AUDITOR,), operation="search_audit", correlation_id=context.invocation_id
        )
        query = AuditQuery(
            since=_time_param(req, "from"),
            until=_time_param(req, "to"),
            action=req.params.get("action"),
            subject=req.params.get("subject"),
            change_id=req.params.get("changeId"),
            actor=req.params.get("actor"),
            page_size=_int_param(req, "top", 100),
            continuation=req.params.get("continuationToken"),
        )
        page = services.audit_queries.search(query)
        body = {
            "from": page.since.isoformat(),
            "to": page.until.isoformat(),
            "value": page.items,
            "continuationToken": page.continuation,
        }
        return _json(body)

    return _respond(req, context, handle)


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        services = get_services()

        def immutability() -> tuple[bool, str]:
            state = services.audit_immutability
            return state.protected, state.detail

        report = check_health(
            services.settings.mode,
            services.tattoos,
            services.rejected_events,
            immutability,
            services.settings.audit_allow_mutable_container,
        )
        return _json(report.body, status=200 if report.healthy else 503)

    return _respond(req, context, handle)


# --- HTTP plumbing -----------------------------------------------------------------------------


def _respond(req: func.HttpRequest, context: func.Context, handle: Any) -> func.HttpResponse:
    """The one place errors become HTTP responses (RFC 9457 problem+json)."""
    try:
        response: func.HttpResponse = handle()
        return response
    except GovernanceError as exc:
        if exc.status >= 500:
            log.exception("request failed", extra={"correlation_id": context.invocation_id})
        body = problem_for(exc, instance=_path(req), correlation_id=context.invocation_id)
        response = _json(body, status=exc.status, content_type=PROBLEM_CONTENT_TYPE)
        if isinstance(exc, Unauthenticated):
            response.headers["WWW-Authenticate"] = exc.challenge
        return response
    except Exception:
        log.exception("unexpected error", extra={"correlation_id": context.invocation_id})
        body = problem(500, "Internal error", "unexpected error; quote correlationId",
                       instance=_path(req), correlationId=context.invocation_id)  # fmt: skip
        return _json(body, status=500, content_type=PROBLEM_CONTENT_TYPE)


def _change_response(change: ChangeRequest, etag: str) -> func.HttpResponse:
    response = _json(change.model_dump(mode="json"))
    response.headers["ETag"] = etag
    return response


def _if_match(req: func.HttpRequest) -> str | None:
    raw = req.headers.get("If-Match")
    return raw.strip() if raw else None


def _body(req: func.HttpRequest) -> dict[str, Any]:
    try:
        body = req.get_json()
    except ValueError:
        raise InvalidInput("the request body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def _model(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    """Validate a request body; the problem names every bad field by its path."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidInput(f"invalid {model.__name__}: {fields}") from None


def _int_param(req: func.HttpRequest, name: str, default: int) -> int:
    raw = req.params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter {name!r} must be an integer, got {raw!r}") from None


def _time_param(req: func.HttpRequest, name: str) -> datetime | None:
    raw = req.params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"query parameter {name!r} must be an ISO 8601 time, got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _path(req: func.HttpRequest) -> str:
    return "/" + str(req.url).split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype=content_type)
