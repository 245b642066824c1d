"""The reference verifier of the audit archive (docs/audit-format.md section 5).

`verify_archive(reader, trusted_keys)` checks an archive copy (a local directory or the Blob
container) against pinned public keys and returns a `VerificationReport` whose `Failure`s say
what failed and where. `python -m shared audit verify` is its command line (`cli.py`).
"""

from shared.audit_verify.report import Failure, FailureKind, VerificationReport
from shared.audit_verify.verifier import verify_archive

__all__ = ["Failure", "FailureKind", "VerificationReport", "verify_archive"]
