"""A small v2-model app for the local host's tests: one function per behaviour the host reproduces.

Event Grid and timer functions append JSON lines to the files named by SAMPLE_EVENTS_FILE and
SAMPLE_TIMER_FILE, so tests can see what the functions received.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _record(setting: str, document: dict[str, object]) -> None:
    with Path(os.environ[setting]).open("a", encoding="utf-8") as records:
        records.write(json.dumps(document) + "\n")


@app.route(route="images/{gallery}/{image}/{version}", methods=["GET", "POST"])
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    document = {
        "method": req.method,
        "url": req.url,
        "route": dict(req.route_params),
        "query": dict(req.params),
        "headers": dict(req.headers),
        "body": req.get_body().decode(),
        "invocationId": context.invocation_id,
        "functionName": context.function_name,
        "greeting": os.environ.get("SAMPLE_GREETING"),
        "audience": os.environ.get("SAMPLE_AUDIENCE"),
    }
    status = int(req.params.get("status", "200"))
    return func.HttpResponse(
        json.dumps(document), status_code=status, mimetype="application/json", headers={"x-sample": "echo"}
    )


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> str:
    return f"id {req.route_params['id']}"


@app.route(route="items/{name}", methods=["GET"])
def item_by_name(req: func.HttpRequest) -> str:
    return f"name {req.route_params['name']}"


@app.route(route="pages/{page?}", methods=["GET"])
def pages(req: func.HttpRequest) -> str:
    return f"page {req.route_params.get('page', 'none')}"


@app.route(route="public", auth_level=func.AuthLevel.ANONYMOUS)
def public(req: func.HttpRequest) -> str:
    return "hello"


@app.route(route="secured", auth_level=func.AuthLevel.FUNCTION)
def secured(req: func.HttpRequest) -> str:
    return "secured"


@app.route(route="operators", auth_level=func.AuthLevel.ADMIN)
def operators(req: func.HttpRequest) -> str:
    return "operators"


@app.route(route="later")
async def later(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("awaited", status_code=201)


@app.route(route="explode")
def explode(req: func.HttpRequest) -> func.HttpResponse:
    # The host must log this but never return its text (it stands for a secret in an exception).
    raise RuntimeError("connection string AccountKey=sample-secret-value refused")


@app.function_name("on_image_event")
@app.event_grid_trigger(arg_name="event")
def record_image_event(event: func.EventGridEvent, context: func.Context) -> None:
    data = event.get_json()
    if isinstance(data, dict) and data.get("fail"):
        raise ValueError("the event asked to fail")
    _record(
        "SAMPLE_EVENTS_FILE",
        {
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "eventType": event.event_type,
            "eventTime": event.event_time.isoformat() if event.event_time else None,
            "dataVersion": event.data_version,
            "data": data,
            "invocationId": context.invocation_id,
        },
    )


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer")
def nightly(timer: func.TimerRequest) -> None:
    _record("SAMPLE_TIMER_FILE", {"function": "nightly", "pastDue": timer.past_due})


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    _record("SAMPLE_TIMER_FILE", {"function": "on_startup", "pastDue": timer.past_due})
