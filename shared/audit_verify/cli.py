"""`python -m shared audit verify`: check an archive copy or container against pinned public keys.

Exit status: 0 everything verifies, 1 anything failed (each failure names its path, line and
sequence), 2 the command could not run (bad arguments, unreadable keys or archive).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import GovernanceError, InvalidInput

EXIT_VERIFIED, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def register(commands: Any) -> None:
    """Add `verify` to the `audit` command group (an argparse sub-parsers object)."""
    parser = commands.add_parser(
        "verify",
        help="verify the audit archive offline",
        description="Verify an audit archive (docs/audit-format.md section 5) against pinned public keys.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dir", type=Path, help="a copy made with `az storage blob download-batch` (holds v1/)")
    source.add_argument("--connection-string", help="a Blob storage connection string")
    parser.add_argument("--container", help="the container with --connection-string (default: audit)")
    parser.add_argument(
        "--public-key", action="append", required=True, type=Path, metavar="PEM", help="a trusted key (repeatable)"
    )
    parser.add_argument("--from", dest="time_from", type=instant, metavar="ISO", help="window start (UTC)")
    parser.add_argument("--to", dest="time_to", type=instant, metavar="ISO", help="window end, exclusive (UTC)")
    parser.add_argument("--strict", action="store_true", help="also parse every record: schema and RFC 8785 form")
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes scanning a --dir copy (default: 1; try the CPU count)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(run=run)


def instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or date-time: {text!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run(arguments: argparse.Namespace) -> int:
    from shared.adapters.signing import load_public_key
    from shared.audit_verify.verifier import verify_archive

    if arguments.container and not arguments.connection_string:
        return _unusable("--container goes with --connection-string")
    if arguments.time_from and arguments.time_to and arguments.time_from >= arguments.time_to:
        return _unusable("--from must be before --to")
    if arguments.workers < 1:
        return _unusable("--workers must be at least 1")
    try:
        keys = [path.read_bytes() for path in arguments.public_key]
        for key in keys:
            load_public_key(key)
        reader = _reader(arguments)
        report = verify_archive(
            reader,
            keys,
            time_from=arguments.time_from,
            time_to=arguments.time_to,
            strict=arguments.strict,
            progress=False if arguments.no_progress else None,
            workers=arguments.workers,
        )
    except OSError as exc:
        return _unusable(f"{exc.filename or ''}: {exc.strerror or exc}")
    except GovernanceError as exc:
        return _unusable(exc.diagnostics())
    print(json.dumps(report.to_dict(), indent=2) if arguments.json else report.render())
    return EXIT_VERIFIED if report.ok else EXIT_FAILED


def _reader(arguments: argparse.Namespace) -> Any:
    from shared.adapters.audit_archive import BlobContainerArchive, LocalDirectoryArchive

    if arguments.dir is not None:
        return LocalDirectoryArchive(arguments.dir)
    from azure.storage.blob import BlobServiceClient

    try:
        service = BlobServiceClient.from_connection_string(arguments.connection_string)
    except ValueError as exc:
        raise InvalidInput(f"--connection-string: {exc}") from exc
    return BlobContainerArchive(service.get_container_client(arguments.container or "audit"))


def _unusable(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE
