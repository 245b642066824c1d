"""`make demo`, the approval workflow (issue #5): Builder > Approver > Publisher over HTTP with
development tokens, separation of duties refusing the builder, a signed ServiceNow callback
(and its replay refused), the outbound CloudEvents, and every image version where it ended."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from shared.domain.callbacks import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback
from shared.local.demo_support import TICKET, Api, Cast, Person, clip, expect, image_path, print_table, short, step
from shared.local.demo_validation import Validated
from shared.local.offline.event_sink import BlobEventSink
from shared.local.offline.events import principal_object_id

SERVICENOW_TICKET = "RITM0012346"


def run_approval_story(
    api: Api, cast: Cast, validated: Validated, *, connection: str, servicenow_secret: str, started: datetime
) -> None:
    change_id = validated.windows_change
    step(f"Approval: {image_path(validated.windows_version)}, change {change_id}, Builder > Approver > Publisher")
    _refused(api, change_id, cast.builder, "Ada Builder (Builder) approves her own build")
    _refused(api, change_id, cast.builder_also_approver, "Ada, given the Approver role too, tries again")
    _decide(api, change_id, "approve", cast.approver, "approved")
    _decide(api, change_id, "release", cast.publisher, "released")
    tattoo = api.image(validated.windows_version)
    print(f"  tattoo: {tattoo['status']}, approvers {[cast.name_of(a) for a in tattoo['approvers']]}, "
          f"tickets {tattoo['change_tickets']}")  # fmt: skip
    expect(tattoo["status"] == "released", f"the tattoo follows the change, got {tattoo['status']}")

    step(f"ServiceNow calls back, HMAC-signed, approving change {validated.linux_change}")
    _servicenow(api, cast, validated.linux_change, servicenow_secret)

    step("Outbound CloudEvents, as a subscriber receives them (offline: the outbound-events container)")
    _outbound_events(connection, started)

    step("Every image version, where it ended")
    _final_table(api, cast)


def _refused(api: Api, change_id: str, person: Person, what: str) -> None:
    response = api.post(f"changes/{change_id}/approve", {"ticket": TICKET, "reason": "LGTM"}, person)
    problem = _problem(response)
    print(f"  {what}: HTTP {response.status_code} {response.headers.get('Content-Type')} "
          f"code={problem.get('code')}: {problem.get('detail')}")  # fmt: skip
    is_problem = response.headers.get("Content-Type", "").startswith("application/problem+json")
    expect(response.status_code == 403 and is_problem and bool(problem.get("code")),
           "the builder may not approve (403 problem+json with a code)")  # fmt: skip


def _decide(api: Api, change_id: str, decision: str, person: Person, state: str) -> None:
    current = api.get(f"changes/{change_id}", person)
    expect(current.status_code == 200, f"{person.name} reads the change (HTTP {current.status_code})")
    response = api.post(
        f"changes/{change_id}/{decision}", {"ticket": TICKET, "reason": f"{decision} per {TICKET}"}, person,
        headers={"If-Match": current.headers["ETag"], "Idempotency-Key": f"demo-{decision}-{change_id}"},
    )  # fmt: skip
    body = response.json()
    print(f"  {person.name} POST .../{decision} ticket {TICKET} (If-Match, Idempotency-Key): "
          f"HTTP {response.status_code}, state {body.get('state', body.get('detail'))}")  # fmt: skip
    expect(response.status_code == 200 and body.get("state") == state, f"{decision}: the change is {state}")


def _servicenow(api: Api, cast: Cast, change_id: str, secret: str) -> None:
    approver = principal_object_id("grace.approver@contoso.com")
    body = json.dumps({"changeId": change_id, "decision": "approve", "ticket": SERVICENOW_TICKET,
                       "approver": approver, "reason": "CAB approved"}).encode()  # fmt: skip
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    headers = {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_callback(secret.encode(), timestamp, nonce, body),
        "Content-Type": "application/json",
    }
    url = f"{api.base}/api/callbacks/servicenow"
    response = api.session.post(url, data=body, headers=headers, timeout=60)
    answer = response.json()
    print(f"  POST /api/callbacks/servicenow ({SERVICENOW_TICKET}, approver {cast.name_of(approver)}): "
          f"HTTP {response.status_code}, state {answer.get('state', answer.get('detail'))}")  # fmt: skip
    expect(response.status_code == 200 and answer.get("state") == "approved", "the signed callback approved the change")
    replay = api.session.post(url, data=body, headers=headers, timeout=60)
    problem = _problem(replay)
    print(f"  the same request replayed: HTTP {replay.status_code} {replay.headers.get('WWW-Authenticate')}, "
          f"{clip(str(problem.get('detail')), 90)} (the reason is in the audit trail)")  # fmt: skip
    expect(replay.status_code == 401, f"a replayed callback is refused (HTTP {replay.status_code})")


def _outbound_events(connection: str, started: datetime) -> None:
    sink = BlobEventSink(BlobServiceClient.from_connection_string(connection))
    events = sink.list_events(since=started)
    print_table(
        ("TIME", "TYPE", "SUBJECT", "STATE"),
        [(e["time"][11:23], e["type"], image_path(e.get("subject")), (e.get("data") or {}).get("state"))
         for e in events],
    )  # fmt: skip
    types = sorted(short(e["type"]) for e in events)
    wanted = sorted(["approval_requested", "approval_requested", "escalated", "approved", "approved", "released"])
    expect(types == wanted, f"outbound events {wanted}, got {types}")


def _final_table(api: Api, cast: Cast) -> None:
    changes: dict[str, dict[str, Any]] = {}
    rows = []
    for tattoo in sorted(api.images(), key=lambda t: (t["image"], t["version"] or "")):
        change_id = tattoo.get("change_id")
        if change_id and change_id not in changes:
            changes[change_id] = api.get_json(f"changes/{change_id}", cast.auditor)
        change = changes.get(change_id or "") or {"attempts": [], "decisions": [], "version_id": None}
        attempt = next((a for a in change["attempts"] if a["version_id"] == tattoo["version_id"]), None)
        candidate = change["version_id"] == tattoo["version_id"]
        approvers = [_decider(d, cast) for d in change["decisions"] if d["action"] == "approve"] if candidate else []
        rows.append((
            f"{tattoo['gallery']}/{tattoo['image']}/{tattoo['version'] or '-'}",
            tattoo["status"],
            f"{change_id} {change['state']}" if change_id else "-",
            f"{attempt['number']} of {len(change['attempts'])}" if attempt else "-",
            ", ".join(approvers) or "-",
        ))  # fmt: skip
    print_table(("IMAGE VERSION", "STATUS", "CHANGE", "ATTEMPT", "APPROVED BY"), rows)
    statuses = sorted(row[1] for row in rows)
    wanted = sorted(["build_failed", "released", "validation_failed", "approved", "validation_failed"])
    expect(statuses == wanted, f"final statuses {wanted}, got {statuses}")


def _decider(decision: dict[str, Any], cast: Cast) -> str:
    actor = decision["actor"]
    person = cast.name_of(actor.get("on_behalf_of") or actor["subject"])
    return f"{person} via {actor['name']}" if actor.get("auth_method") == "callback" else person


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
