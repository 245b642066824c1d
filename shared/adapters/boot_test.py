"""Boot tests on a throw-away VM through azure-mgmt-compute: the `ports.BootTester` adapter.

One boot test, start to end:

1. Create a VM from the staging image version (`storageProfile.imageReference.id`) in the boot
   test's own resource group. Compute creates its NIC in the request's subnet
   (`networkInterfaceConfigurations`, no public IP); OS disk and NIC have `deleteOption: Delete`,
   so deleting the VM deletes them. Tags mark it throw-away, with the correlation id and a
   `deleteAfter` time for anyone sweeping leftovers.
2. Run the in-guest check with Run Command (`RunPowerShellScript` / `RunShellScript`): it prints
   the in-guest tattoo (registry key `HKLM:\\SOFTWARE\\GoldenImage` on Windows,
   `/etc/golden-image/tattoo.json` on Linux) and the requested settings as one JSON line.
3. Turn the output into a `BootTestResult`: PASSED when the line parses and reports no problem,
   FAILED when the check reports one (or prints nothing readable), TIMED_OUT when
   `timeout_seconds` pass before steps 1-2 finish, ERROR when Resource Manager refuses or fails
   the VM or the Run Command.
4. Always delete the VM, whatever happened before, with its own time budget; the result says
   whether the deletion was confirmed.

Every long-running operation is polled against a deadline, so a hanging one cannot hold the
caller past `timeout_seconds`. The document and script builders are pure: the offline boot
tester (`shared.local.offline.boot_test`) writes the same VM document.

The SDK is imported on first use, not at import time (cold start is benchmarked).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.arm import SubscriptionClients, mapped_errors, parse_typed
from shared.domain.evidence import BootTestOutcome, BootTestRequest, BootTestResult
from shared.domain.resource_ids import GALLERY_IMAGE_VERSION
from shared.errors import InvalidInput

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.core.polling import LROPoller, PollingMethod
    from azure.mgmt.compute import ComputeManagementClient

log = logging.getLogger(__name__)

VIRTUAL_MACHINE = "Microsoft.Compute/virtualMachines"
THROWAWAY_TAG = "goldenImageBootTest"  # value "throwaway": nothing else may live in the group
CORRELATION_TAG = "correlationId"
IMAGE_VERSION_TAG = "imageVersion"
DELETE_AFTER_TAG = "deleteAfter"
RESULT_MARKER = "GOLDEN-IMAGE-BOOT-TEST "
WINDOWS_TATTOO_KEY = "HKLM:\\SOFTWARE\\GoldenImage"
LINUX_TATTOO_PATH = "/etc/golden-image/tattoo.json"
OUTPUT_LIMIT = 4096
DEFAULT_DELETE_TIMEOUT_SECONDS = 900  # deleting a VM with its disk and NIC takes a few minutes
ADMIN_USERNAME = "bootcheck"
# With a networkApiVersion, Compute creates (and deletes) the NIC itself: no Network SDK needed.
NETWORK_API_VERSION = "2020-11-01"
_RESOURCE_GROUP = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/?$", re.IGNORECASE)
_TAG_VALUE_LIMIT = 256
_OS_PROVISIONING_TIMEOUT = "osprovisioningtimedout"  # the image never reported ready


def _utcnow() -> datetime:
    return datetime.now(UTC)


def random_suffix() -> str:
    return uuid.uuid4().hex[:8]


def random_admin_password() -> str:
    """Used once to satisfy osProfile, never stored or logged; the VM has no public IP."""
    return "Bt1!" + secrets.token_urlsafe(24)


# --- the VM document (pure; shared with the offline boot tester) ------------------------------


def boot_test_vm_name(version_id: str, suffix: str) -> str:
    """`bt-<image>-<version>-<suffix>`, at most 64 characters of [a-z0-9-]."""
    version = parse_typed(version_id, GALLERY_IMAGE_VERSION)
    _, image, name = version.names
    tail = "-" + re.sub(r"[^a-z0-9]+", "-", f"{name}-{suffix}".lower()).strip("-")
    head = re.sub(r"[^a-z0-9]+", "-", f"bt-{image}".lower()).strip("-")[: 64 - len(tail)].rstrip("-")
    return (head + tail)[:64]


def vm_resource_id(resource_group_id: str, name: str) -> str:
    return f"{resource_group_id.rstrip('/')}/providers/{VIRTUAL_MACHINE}/{name}"


def throwaway_vm_document(
    request: BootTestRequest,
    name: str,
    *,
    computer_name: str,
    delete_after: datetime,
    admin_password: str | None = None,
    ephemeral_placement: str | None = None,
) -> dict[str, Any]:
    """The VM's REST body (`admin_password` None gives what GET returns: ARM never echoes it)."""
    version = parse_typed(request.version_id, GALLERY_IMAGE_VERSION)
    if not request.subnet_id:
        raise InvalidInput("a boot test needs subnet_id: the throw-away VM's NIC goes there")
    windows = request.os_type.lower() == "windows"
    security = _security_type(request.security_type)
    os_disk: dict[str, Any] = {"createOption": "FromImage", "deleteOption": "Delete", "caching": "ReadWrite"}
    if ephemeral_placement:
        os_disk |= {"caching": "ReadOnly", "diffDiskSettings": {"option": "Local", "placement": ephemeral_placement}}
    else:
        os_disk["managedDisk"] = {"storageAccountType": "StandardSSD_LRS"}
    if security == "ConfidentialVM":
        os_disk.setdefault("managedDisk", {})["securityProfile"] = {"securityEncryptionType": "VMGuestStateOnly"}
    os_profile: dict[str, Any] = {"computerName": computer_name, "adminUsername": ADMIN_USERNAME}
    if admin_password is not None:
        os_profile["adminPassword"] = admin_password
    os_profile |= (
        {"windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": False}}
        if windows
        else {"linuxConfiguration": {"provisionVMAgent": True, "disablePasswordAuthentication": False}}
    )
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": request.vm_size},
        "storageProfile": {"imageReference": {"id": request.version_id}, "osDisk": os_disk},
        "osProfile": os_profile,
        "networkProfile": {
            "networkApiVersion": NETWORK_API_VERSION,
            "networkInterfaceConfigurations": [
                {
                    "name": f"{name}-nic",
                    "properties": {
                        "primary": True,
                        "deleteOption": "Delete",
                        "ipConfigurations": [
                            {"name": "ipconfig1", "properties": {"primary": True, "subnet": {"id": request.subnet_id}}}
                        ],
                    },
                }
            ],
        },
    }
    if security:
        properties["securityProfile"] = {
            "securityType": security,
            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
        }
    return {
        "location": request.location,
        "tags": {
            THROWAWAY_TAG: "throwaway",
            CORRELATION_TAG: request.correlation_id[:_TAG_VALUE_LIMIT],
            IMAGE_VERSION_TAG: "/".join(version.names)[:_TAG_VALUE_LIMIT],
            DELETE_AFTER_TAG: delete_after.astimezone(UTC).isoformat(timespec="seconds"),
        },
        "properties": properties,
    }


def _security_type(requested: str | None) -> str | None:
    """The VM's securityType for the image's (`TrustedLaunchSupported` -> `TrustedLaunch`)."""
    lowered = (requested or "standard").lower()
    if lowered == "standard":
        return None
    if lowered.startswith("trustedlaunch"):
        return "TrustedLaunch"
    if lowered.startswith("confidentialvm"):
        return "ConfidentialVM"
    raise InvalidInput(f"unknown security_type {requested!r}: expected TrustedLaunch or ConfidentialVM")


# --- the in-guest check (pure) ----------------------------------------------------------------


def check_command(os_type: str, settings: tuple[str, ...]) -> dict[str, Any]:
    """The Run Command input: a script printing `RESULT_MARKER` + JSON {tattoo, settings, problems}.

    Setting names travel base64-encoded (one a line), so no name can break out of the script's quoting.
    Windows names are registry values (`HKLM:\\...\\Key\\ValueName`); Linux names are files
    (`/etc/...`) or sysctl keys (read from /proc/sys). An absent setting is left out, not a
    problem: the policy rules judge the values.
    """
    if any("\n" in name or "\r" in name for name in settings):
        raise InvalidInput("a setting name cannot contain a line break")
    names = base64.b64encode("\n".join(settings).encode()).decode()
    if os_type.lower() == "windows":
        return {"commandId": "RunPowerShellScript", "script": _WINDOWS_SCRIPT.replace("@NAMES@", names).splitlines()}
    return {"commandId": "RunShellScript", "script": _LINUX_SCRIPT.replace("@NAMES@", names).splitlines()}


_WINDOWS_SCRIPT = f"""$ErrorActionPreference = 'Stop'
$names = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('@NAMES@')) -split "`n"
$tattoo = [ordered]@{{}}; $settings = [ordered]@{{}}; $problems = @()
try {{
  $key = Get-Item -LiteralPath '{WINDOWS_TATTOO_KEY}'
  foreach ($name in $key.GetValueNames()) {{ $tattoo[$name] = [string]$key.GetValue($name) }}
}} catch {{ $problems += "no in-guest tattoo at {WINDOWS_TATTOO_KEY}: $($_.Exception.Message)" }}
foreach ($setting in $names) {{
  if (-not $setting) {{ continue }}
  $path = Split-Path $setting -Parent; $value = Split-Path $setting -Leaf
  $item = Get-ItemProperty -LiteralPath $path -Name $value -ErrorAction SilentlyContinue
  if ($null -ne $item) {{ $settings[$setting] = [string]$item.$value }}
}}
$report = [ordered]@{{ tattoo = $tattoo; settings = $settings; problems = @($problems) }}
'{RESULT_MARKER}' + ($report | ConvertTo-Json -Compress -Depth 4)
"""

# The Azure Linux agent, which Run Command needs, is Python: every image that can run this has one.
_LINUX_SCRIPT = f"""for py in python3 /usr/libexec/platform-python python; do
  if command -v "$py" >/dev/null 2>&1; then
    exec "$py" - <<'PY'
import base64, json
names = [n for n in base64.b64decode("@NAMES@").decode("utf-8").split("\\n") if n]
report = {{"tattoo": {{}}, "settings": {{}}, "problems": []}}
try:
    with open("{LINUX_TATTOO_PATH}") as handle:
        tattoo = json.load(handle)
    report["tattoo"] = dict((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in tattoo.items())
except (OSError, ValueError, AttributeError) as exc:
    report["problems"].append("no readable in-guest tattoo at {LINUX_TATTOO_PATH}: %s" % exc)
for name in names:
    path = name if name.startswith("/") else "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path) as handle:
            report["settings"][name] = handle.read(1024).strip()
    except (OSError, UnicodeDecodeError):
        pass
print("{RESULT_MARKER}" + json.dumps(report, sort_keys=True))
PY
  fi
done
echo "no Python interpreter in the guest" >&2
exit 1
"""


@dataclass(frozen=True)
class Verdict:
    """What a boot test found, before the VM's deletion is known."""

    outcome: BootTestOutcome
    message: str | None = None
    in_guest_tattoo: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    output: str = ""


def read_check_output(run_command_result: dict[str, Any]) -> Verdict:
    """The verdict in a RunCommandResult (`{"value": [InstanceViewStatus...]}`).

    Windows reports `ComponentStatus/StdOut/...` and `ComponentStatus/StdErr/...` entries; Linux
    one `ProvisioningState/...` entry whose message holds `[stdout]` and `[stderr]` sections.
    """
    stdout, stderr = _streams(run_command_result.get("value") or [])
    output = truncate_output(stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else ""))
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        hint = stderr.strip().splitlines()[0] if stderr.strip() else "no output"
        return Verdict(BootTestOutcome.FAILED, f"the in-guest check printed no result ({hint[:200]})", output=output)
    try:
        report = json.loads(lines[-1][len(RESULT_MARKER) :])
        tattoo, settings, problems = report["tattoo"], report["settings"], report["problems"]
        if not (isinstance(tattoo, dict) and isinstance(settings, dict) and isinstance(problems, list)):
            raise TypeError("tattoo, settings and problems have the wrong types")
    except (ValueError, KeyError, TypeError) as exc:
        return Verdict(BootTestOutcome.FAILED, f"the in-guest check printed an unreadable result: {exc}", output=output)
    if not problems and not tattoo:
        problems = ["the in-guest tattoo is empty"]
    verdict = Verdict(
        BootTestOutcome.FAILED if problems else BootTestOutcome.PASSED,
        "; ".join(str(p) for p in problems) or None,
        {str(k): str(v) for k, v in tattoo.items()},
        {str(k): str(v) for k, v in settings.items()},
        output,
    )
    return verdict


def _streams(statuses: list[dict[str, Any]]) -> tuple[str, str]:
    stdout: list[str] = []
    stderr: list[str] = []
    for status in statuses:
        code, message = str(status.get("code") or ""), str(status.get("message") or "")
        if "/stderr/" in code.lower():
            stderr.append(message)
        elif "[stdout]" in message:
            before, _, rest = message.partition("[stdout]\n")
            out, _, err = rest.partition("\n[stderr]\n")
            stdout.append(out)
            stderr.append("\n".join(part for part in (before.strip(), err) if part))
        else:
            stdout.append(message)
    return "\n".join(stdout), "\n".join(stderr)


def truncate_output(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[: OUTPUT_LIMIT - 20] + "\n...[truncated]"


# --- the adapter ------------------------------------------------------------------------------


class DeadlinePassed(Exception):
    """A long-running operation was still running when the boot test's time was up."""


class AzureBootTester:
    """`ports.BootTester` over Resource Manager; one SDK client per subscription, built on first use.

    `client_kwargs` go to `ComputeManagementClient` unchanged (base_url, retry_total,
    polling_interval, authentication_policy, transport...). `ephemeral_placement`
    (`ResourceDisk`, `CacheDisk`, `NvmeDisk`) asks for an ephemeral OS disk, which needs a VM
    size with a local disk large enough; otherwise the OS disk is a small managed disk.
    """

    def __init__(
        self,
        credential: TokenCredential,
        *,
        ephemeral_placement: str | None = None,
        delete_timeout_seconds: float = DEFAULT_DELETE_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] = _utcnow,
        new_suffix: Callable[[], str] = random_suffix,
        new_password: Callable[[], str] = random_admin_password,
        **client_kwargs: Any,
    ) -> None:
        def build(subscription: str) -> ComputeManagementClient:
            from azure.mgmt.compute import ComputeManagementClient

            return ComputeManagementClient(credential, subscription, **client_kwargs)

        self._clients = SubscriptionClients(build, lambda client: client.close())
        self._ephemeral_placement = ephemeral_placement
        self._delete_timeout = delete_timeout_seconds
        self._polling_interval = float(client_kwargs.get("polling_interval", 30))
        self._clock = clock
        self._new_suffix = new_suffix
        self._new_password = new_password

    def run(self, request: BootTestRequest) -> BootTestResult:
        started = self._clock()
        deadline = time.monotonic() + request.timeout_seconds
        subscription, group = _resource_group(request.resource_group_id)
        suffix = self._new_suffix()
        name = boot_test_vm_name(request.version_id, suffix)
        document = throwaway_vm_document(
            request,
            name,
            computer_name=f"bt{suffix}"[:15],
            delete_after=started + timedelta(seconds=request.timeout_seconds + self._delete_timeout),
            admin_password=self._new_password(),
            ephemeral_placement=self._ephemeral_placement,
        )
        command = check_command(request.os_type, request.settings)  # refuses bad names before any call
        client = self._clients.for_subscription(subscription)
        context = {"correlation_id": request.correlation_id, "vm_name": name, "version_id": request.version_id}
        log.info("boot test starting", extra=context)
        try:
            verdict = self._boot_and_check(
                client=client,
                group=group,
                name=name,
                document=document,
                command=command,
                request=request,
                deadline=deadline,
            )
        finally:
            deleted = self._delete(client, group, name, context)
        log.info("boot test finished", extra=context | {"outcome": verdict.outcome.value, "vm_deleted": deleted})
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

    def close(self) -> None:
        self._clients.close()

    # 1-3: create, check, read. HTTP answers become verdicts; no answer at all raises UpstreamError.
    def _boot_and_check(
        self,
        *,
        client: ComputeManagementClient,
        group: str,
        name: str,
        document: dict[str, Any],
        command: dict[str, Any],
        request: BootTestRequest,
        deadline: float,
    ) -> Verdict:
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.compute.models import RunCommandInput, VirtualMachine

        vm_id = vm_resource_id(request.resource_group_id, name)
        with mapped_errors("boot test VM", vm_id):
            try:
                poller = client.virtual_machines.begin_create_or_update(
                    group, name, VirtualMachine(document), polling=self._polling(deadline)
                )
                self._wait(poller, deadline)
            except DeadlinePassed:
                return Verdict(BootTestOutcome.TIMED_OUT, f"the VM was not ready within {request.timeout_seconds} s")
            except HttpResponseError as exc:
                outcome = BootTestOutcome.TIMED_OUT if _code(exc) == _OS_PROVISIONING_TIMEOUT else BootTestOutcome.ERROR
                return Verdict(outcome, f"the VM could not be created: {_describe(exc)}")
            try:
                check = client.virtual_machines.begin_run_command(
                    group, name, RunCommandInput(command), polling=self._polling(deadline)
                )
                result = self._wait(check, deadline)
            except DeadlinePassed:
                return Verdict(
                    BootTestOutcome.TIMED_OUT, f"the in-guest check did not finish within {request.timeout_seconds} s"
                )
            except HttpResponseError as exc:
                return Verdict(BootTestOutcome.ERROR, f"the in-guest check could not run: {_describe(exc)}")
        return read_check_output(result.as_dict() if result is not None else {})

    # 4: always, with its own budget; a 409 (another operation still running on the VM) is retried.
    def _delete(self, client: ComputeManagementClient, group: str, name: str, context: dict[str, str]) -> bool:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        deadline = time.monotonic() + self._delete_timeout
        while True:
            try:
                self._wait(client.virtual_machines.begin_delete(group, name, polling=self._polling(deadline)), deadline)
                return True
            except ResourceNotFoundError:
                return True  # the resource group is gone, and the VM with it
            except HttpResponseError as exc:
                remaining = deadline - time.monotonic()
                if exc.status_code == 409 and remaining > 0:
                    time.sleep(min(self._polling_interval, remaining))
                    continue
                log.error("boot test VM not deleted", extra=context | {"error": _describe(exc)})
                return False
            except (DeadlinePassed, AzureError) as exc:
                log.error("boot test VM not deleted", extra=context | {"error": f"{type(exc).__name__}: {exc}"})
                return False

    def _polling(self, deadline: float) -> PollingMethod[Any]:
        polling: PollingMethod[Any] = _deadline_polling_type()(deadline, self._polling_interval)
        return polling

    @staticmethod
    def _wait(poller: LROPoller[Any], deadline: float) -> Any:
        # The poller's thread stops itself at the deadline; the margin covers one request in flight.
        result = poller.result(timeout=max(0.0, deadline - time.monotonic()) + 30)
        if not poller.done():
            raise DeadlinePassed
        return result


@functools.cache
def _deadline_polling_type() -> type[Any]:
    """ARMPolling that gives up at a deadline instead of polling for as long as ARM says InProgress."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class DeadlinePolling(ARMPolling):
        def __init__(self, deadline: float, interval: float) -> None:
            super().__init__(timeout=interval)
            self._deadline = deadline

        def _delay(self) -> None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlinePassed
            self._sleep(min(self._extract_delay(), remaining))

    return DeadlinePolling


def _resource_group(resource_group_id: str) -> tuple[str, str]:
    match = _RESOURCE_GROUP.match(resource_group_id.strip())
    if not match:
        raise InvalidInput(f"expected a resource group id (/subscriptions/S/resourceGroups/G): {resource_group_id!r}")
    return match.group(1), match.group(2)


def _code(exc: HttpResponseError) -> str:
    return str((exc.error.code if exc.error else None) or "").lower()


def _describe(exc: HttpResponseError) -> str:
    status = exc.status_code if exc.status_code is not None else "no response"
    code = (exc.error.code if exc.error else None) or "no ARM error code"
    message = (exc.error.message if exc.error else None) or exc.reason or ""
    return f"HTTP {status} {code}: {message}"[:1000]
