"""`python -m shared COMMAND`: the package's command line, a dispatcher only.

Each command lives with its code and registers itself here: `audit verify` (the audit archive
verifier, `shared.audit_verify.cli`).
"""

from __future__ import annotations

import argparse
import sys

from shared.audit_verify import cli as audit_verify_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    audit = groups.add_parser("audit", help="the audit archive").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    audit_verify_cli.register(audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)  # exits 2 on bad arguments
    code: int = arguments.run(arguments)
    return code


if __name__ == "__main__":
    sys.exit(main())
