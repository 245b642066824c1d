"""Command line for the offline Azure provider (a local tool: it may read its defaults from the environment).

    python -m shared.local.offline [--connection-string CS] [--container NAME] seed
    python -m shared.local.offline run TEMPLATE_NAME_OR_ID [--fail|--cancel] [--message M] [--webhook URL]
    python -m shared.local.offline outcome TEMPLATE_NAME_OR_ID succeed|fail|cancel [--message M]
    python -m shared.local.offline show RESOURCE_ID
    python -m shared.local.offline list PREFIX

Defaults: GOVSTORAGE (connection string), OFFLINE_STORE_CONTAINER, OFFLINE_EVENT_WEBHOOK_URL, from the
environment or else from ./local.settings.json (as `make run` serves the app with it).
Output is JSON on stdout; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.domain.resource_ids import IMAGE_TEMPLATE
from shared.errors import GovernanceError, InvalidInput, NotFound
from shared.local.host.config import export_settings, read_local_settings
from shared.local.offline.sample import SAMPLE_SUBSCRIPTION_ID, seed_sample_factory
from shared.local.offline.simulator import DEFAULT_INITIATOR, SimulatedOutcome, run_image_template, set_outcome
from shared.local.offline.store import DEFAULT_CONTAINER, ArmStore


def main(argv: Sequence[str] | None = None) -> int:
    export_settings(read_local_settings(Path("local.settings.json")).values)
    args = _parser().parse_args(argv)
    if not args.connection_string:
        print("error: pass --connection-string or set GOVSTORAGE", file=sys.stderr)
        return 2
    store = ArmStore(args.connection_string, args.container)
    try:
        _print(_COMMANDS[args.command](store, args))
    except GovernanceError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 1
    return 0


def _seed(store: ArmStore, args: argparse.Namespace) -> Any:
    factory = seed_sample_factory(store, subscription_id=args.subscription_id, resource_group=args.resource_group)
    return dataclasses.asdict(factory)


def _run(store: ArmStore, args: argparse.Namespace) -> Any:
    outcome: SimulatedOutcome | None = "fail" if args.fail else "cancel" if args.cancel else None
    result = run_image_template(
        store,
        resolve_template(store, args.template),
        now=datetime.now(UTC),
        initiator=args.initiator,
        webhook_url=args.webhook,
        deliver=not args.no_deliver,
        outcome=outcome,
        message=args.message,
    )
    summary = dataclasses.asdict(result)
    summary["delivered"] = bool(args.webhook and not args.no_deliver)
    return summary


def _outcome(store: ArmStore, args: argparse.Namespace) -> Any:
    template_id = resolve_template(store, args.template)
    set_outcome(store, template_id, args.outcome, args.message)
    return {"templateId": template_id, "outcome": args.outcome, "message": args.message}


def _show(store: ArmStore, args: argparse.Namespace) -> Any:
    return store.get(args.resource_id)


def _list(store: ArmStore, args: argparse.Namespace) -> Any:
    return store.list_by_prefix(args.prefix)


_COMMANDS = {"seed": _seed, "run": _run, "outcome": _outcome, "show": _show, "list": _list}


def resolve_template(store: ArmStore, name_or_id: str) -> str:
    """A template id as given, or the one template of that name anywhere in the store."""
    if name_or_id.startswith("/"):
        return name_or_id
    marker = f"/providers/{IMAGE_TEMPLATE}/{name_or_id}".lower()
    matches = [i for i in store.resource_ids("/subscriptions/") if i.endswith(marker)]
    if not matches:
        raise NotFound(f"no image template named {name_or_id!r}")
    if len(matches) > 1:
        raise InvalidInput(f"{len(matches)} image templates are named {name_or_id!r}; pass the id: {matches}")
    return str(store.get(matches[0])["id"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.local.offline", description=__doc__.splitlines()[0])
    parser.add_argument("--connection-string", default=os.environ.get("GOVSTORAGE"))
    parser.add_argument("--container", default=os.environ.get("OFFLINE_STORE_CONTAINER") or DEFAULT_CONTAINER)
    commands = parser.add_subparsers(dest="command", required=True)

    seed = commands.add_parser("seed", help="create the sample image factory")
    seed.add_argument("--subscription-id", default=SAMPLE_SUBSCRIPTION_ID)
    seed.add_argument("--resource-group", default="rg-image-factory")

    run = commands.add_parser("run", help="simulate an Image Builder run and deliver its events")
    run.add_argument("template", metavar="TEMPLATE_NAME_OR_ID")
    ending = run.add_mutually_exclusive_group()
    ending.add_argument("--fail", action="store_true", help="this run fails while customizing")
    ending.add_argument("--cancel", action="store_true", help="this run is canceled")
    run.add_argument("--message", help="lastRunStatus.message for a failed or canceled run")
    run.add_argument("--webhook", default=os.environ.get("OFFLINE_EVENT_WEBHOOK_URL"))
    run.add_argument("--no-deliver", action="store_true", help="print the events instead of delivering them")
    run.add_argument("--initiator", default=DEFAULT_INITIATOR, help="UPN or application id that started the run")

    outcome = commands.add_parser("outcome", help="how a template's runs end from now on")
    outcome.add_argument("template", metavar="TEMPLATE_NAME_OR_ID")
    outcome.add_argument("outcome", choices=["succeed", "fail", "cancel"])
    outcome.add_argument("--message")

    show = commands.add_parser("show", help="print one ARM document")
    show.add_argument("resource_id")

    listing = commands.add_parser("list", help="print the ARM documents whose id starts with PREFIX")
    listing.add_argument("prefix")
    return parser


def _print(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
