"""A simulated boot test over the offline ARM store: the offline world's `ports.BootTester`.

It does what the Azure boot tester (`shared.adapters.boot_test`) does, with documents for a VM:

1. creates the throw-away VM's document (`Microsoft.Compute/virtualMachines`: the body the
   Azure adapter sends, as GET returns it, without the password) in the store;
2. "runs" the in-guest check: the in-guest tattoo is the image version's tags (the artifact
   tags a build writes into the guest), the settings come from a simulated guest configuration;
3. ends as configured: `pass` (the default), `fail` (the check reports `message`), `hang` (the
   check never answers: waits for the request's timeout, then TIMED_OUT) or `error` (the VM
   cannot be created);
4. always deletes the VM document.

Behaviour and guest settings are set with `set_boot_behaviour` for a version, its image
definition, or a template distributing to that image (looked up in that order), kept in a
control blob beside the documents like `simulator.set_outcome`, so the ARM documents stay
exactly what Azure would return.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from shared.adapters.boot_test import (
    DEFAULT_DELETE_TIMEOUT_SECONDS,
    RESULT_MARKER,
    VIRTUAL_MACHINE,
    Verdict,
    boot_test_vm_name,
    random_suffix,
    throwaway_vm_document,
    truncate_output,
    vm_resource_id,
)
from shared.domain.evidence import BootTestOutcome, BootTestRequest, BootTestResult
from shared.domain.resource_ids import GALLERY_IMAGE_VERSION, IMAGE_TEMPLATE, ResourceId, same_resource
from shared.errors import InvalidInput, UpstreamError
from shared.local.offline.store import ArmStore, Document, blob_name

log = logging.getLogger(__name__)

BootBehaviour = Literal["pass", "fail", "hang", "error"]
_CONTROL_PREFIX = "boot-test/"
_DEFAULT_FAILURE = "the in-guest check reported a problem (simulated)"
_DEFAULT_ERROR = "HTTP 409 AllocationFailed: Allocation failed. We do not have sufficient capacity (simulated)."


# What the simulated guest of a sample (hardened) image reports when nothing else is configured:
# the baseline the sample policy asks for. `guest_settings` in a control overrides single names.
HARDENED_GUEST = {
    "registry:HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecureBoot\\State\\UEFISecureBootEnabled": "1",
    "registry:HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\EnableLUA": "1",
    "sysctl:kernel.randomize_va_space": "2",
    "sysctl:net.ipv4.ip_forward": "0",
    "sshd:permitrootlogin": "no",
}


@dataclass(frozen=True)
class BootControl:
    """How boot tests of one version behave, and what its simulated guest holds."""

    behaviour: BootBehaviour = "pass"
    message: str | None = None
    guest_settings: dict[str, str] = field(default_factory=dict)


# --- behaviour control ----------------------------------------------------------------------


def set_boot_behaviour(
    store: ArmStore,
    target_id: str,
    behaviour: BootBehaviour = "pass",
    message: str | None = None,
    *,
    guest_settings: Mapping[str, str] | None = None,
) -> None:
    """Make boot tests of a version (or of every version of an image, or built by a template) behave so.

    `guest_settings` is what the simulated guest reports for the setting names a request asks for.
    """
    if behaviour not in get_args(BootBehaviour):
        raise InvalidInput(f"behaviour must be one of {get_args(BootBehaviour)}, not {behaviour!r}")
    control = {"behaviour": behaviour, "message": message, "guestSettings": dict(guest_settings or {})}
    store.put_control(_control_key(target_id), control)


def get_boot_control(store: ArmStore, version_id: str) -> BootControl:
    """The control of the version, else of its image definition, else of a template distributing to it."""
    version = ResourceId.parse(version_id)
    if not version.is_type(GALLERY_IMAGE_VERSION):
        raise InvalidInput(f"{version_id!r} is not a gallery image version id")
    image_id = version.parent().raw
    control = store.get_control(_control_key(version_id)) or store.get_control(_control_key(image_id))
    if control is None:
        control = _template_control(store, version.subscription, image_id)
    if control is None:
        return BootControl()
    behaviour = control.get("behaviour", "pass")
    return BootControl(
        behaviour=behaviour if behaviour in get_args(BootBehaviour) else "pass",
        message=control.get("message"),
        guest_settings={str(k): str(v) for k, v in (control.get("guestSettings") or {}).items()},
    )


def _template_control(store: ArmStore, subscription: str, image_id: str) -> Document | None:
    for resource_id in store.resource_ids(f"/subscriptions/{subscription}/"):
        parsed = ResourceId.parse(resource_id)
        if not parsed.is_type(IMAGE_TEMPLATE):
            continue
        control = store.get_control(_control_key(resource_id))
        template = store.find(resource_id) if control is not None else None
        distribute = ((template or {}).get("properties") or {}).get("distribute") or []
        if any(same_resource(str(d.get("galleryImageId", "")), image_id) for d in distribute):
            return control
    return None


def _control_key(resource_id: str) -> str:
    # Beside simulator.set_outcome's key for the same template, never on it.
    return _CONTROL_PREFIX + blob_name(resource_id)


# --- the tester -----------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OfflineBootTester:
    """`ports.BootTester` over the offline store; `sleep` is what a hanging check waits with."""

    def __init__(
        self,
        store: ArmStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        new_suffix: Callable[[], str] = random_suffix,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._new_suffix = new_suffix

    def set_boot_behaviour(
        self,
        target_id: str,
        behaviour: BootBehaviour = "pass",
        message: str | None = None,
        *,
        guest_settings: Mapping[str, str] | None = None,
    ) -> None:
        """See `set_boot_behaviour`."""
        set_boot_behaviour(self._store, target_id, behaviour, message, guest_settings=guest_settings)

    def run(self, request: BootTestRequest) -> BootTestResult:
        started = self._clock()
        suffix = self._new_suffix()
        name = boot_test_vm_name(request.version_id, suffix)
        vm_id = vm_resource_id(request.resource_group_id, name)
        document = throwaway_vm_document(
            request,
            name,
            computer_name=f"bt{suffix}"[:15],
            delete_after=started + timedelta(seconds=request.timeout_seconds + DEFAULT_DELETE_TIMEOUT_SECONDS),
        ) | {"id": vm_id, "name": name, "type": VIRTUAL_MACHINE}
        control = get_boot_control(self._store, request.version_id)
        try:
            verdict = self._boot_and_check(request, document, control)
        finally:
            deleted = self._delete(vm_id, request.correlation_id)
        return BootTestResult(
            outcome=verdict.outcome,
            vm_name=name,
            started=started,
            finished=self._clock(),
            message=verdict.message,
            in_guest_tattoo=verdict.in_guest_tattoo,
            settings=verdict.settings,
            output=verdict.output,
            vm_deleted=deleted,
        )

    def _boot_and_check(self, request: BootTestRequest, document: Document, control: BootControl) -> Verdict:
        # 1. The VM: Compute refuses a version it cannot find; a failed creation leaves a Failed VM.
        version = self._store.find(request.version_id)
        if version is None:
            return Verdict(
                BootTestOutcome.ERROR,
                f"the VM could not be created: HTTP 404 GalleryImageNotFound: {request.version_id} was not found",
            )
        failed = control.behaviour == "error"
        self._store.create(_provisioned(document, "Failed" if failed else "Succeeded", self._clock()))
        if failed:
            return Verdict(BootTestOutcome.ERROR, f"the VM could not be created: {control.message or _DEFAULT_ERROR}")
        # 2. The check.
        if control.behaviour == "hang":
            self._sleep(request.timeout_seconds)
            return Verdict(
                BootTestOutcome.TIMED_OUT, f"the in-guest check did not finish within {request.timeout_seconds} s"
            )
        tattoo = {str(k): str(v) for k, v in (version.get("tags") or {}).items()}
        guest = HARDENED_GUEST | control.guest_settings
        settings = {name: guest[name] for name in request.settings if name in guest}
        problems = [control.message or _DEFAULT_FAILURE] if control.behaviour == "fail" else []
        if not tattoo and not problems:
            problems = ["the in-guest tattoo is empty"]
        # 3. What the guest would have printed, and the verdict in it.
        report = {"tattoo": tattoo, "settings": settings, "problems": problems}
        output = truncate_output(RESULT_MARKER + json.dumps(report, sort_keys=True))
        outcome = BootTestOutcome.FAILED if problems else BootTestOutcome.PASSED
        return Verdict(outcome, "; ".join(problems) or None, tattoo, settings, output)

    # 4. Always; a store fault is recorded (vm_deleted False), not raised, as in Azure.
    def _delete(self, vm_id: str, correlation_id: str) -> bool:
        try:
            self._store.delete(vm_id)
        except UpstreamError as exc:
            context = {"vm_id": vm_id, "correlation_id": correlation_id, "error": str(exc)}
            log.error("offline boot test VM not deleted", extra=context)
            return False
        return True


def _provisioned(document: Document, state: str, now: datetime) -> dict[str, Any]:
    properties = dict(document["properties"]) | {
        "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, document["id"].lower())),
        "provisioningState": state,
        "timeCreated": now.astimezone(UTC).isoformat(),
    }
    return document | {"properties": properties}
