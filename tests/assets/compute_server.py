"""Compute's virtual machine operations on the ARM look-alike, for driving the boot tester's SDK client.

Follows the Compute REST API (`Microsoft.Compute/virtualMachines`, 2026-04-01):

- PUT `.../virtualMachines/{vm}` validates what Compute validates up front (the gallery image
  version exists, a networkApiVersion comes with networkInterfaceConfigurations, a password
  comes with osProfile), stores the VM (`provisioningState: Creating`, never echoing
  `adminPassword`) and answers 201 with `Azure-AsyncOperation`. The operation succeeds after
  `polls_before_done` polls, or fails with `create_failure`; a failed VM stays, as in Azure.
- POST `.../virtualMachines/{vm}/runCommand` answers 202 with `Azure-AsyncOperation` and a
  `Location` (`monitor=true`). `guest(input)` plays the VM: it returns the RunCommandResult's
  `value`. The operation carries it in `properties.output`; the Location answers 202 while it
  runs, then 200 with the RunCommandResult. `hang_run_command` keeps it InProgress forever.
- DELETE `.../virtualMachines/{vm}` answers 202 and removes the VM when its operation
  succeeds, or 204 when there is no such VM.

`windows_output` / `linux_output` build the instance view statuses the two Run Command
handlers report; `run_linux_check_here` runs a RunShellScript on this machine, for a real guest.
"""

from __future__ import annotations

import copy
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.assets.arm_server import _ASYNC_OPERATION, ArmServer, _arm_error, _normalize, _Response

Statuses = list[dict[str, Any]]
_STARTED = "2024-07-20T10:00:01.1234567+00:00"
_ENDED = "2024-07-20T10:02:13.7654321+00:00"


def windows_output(stdout: str, stderr: str = "") -> Statuses:
    """What RunPowerShellScript reports: one status per stream."""
    return [
        {
            "code": "ComponentStatus/StdOut/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": stdout,
        },
        {
            "code": "ComponentStatus/StdErr/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": stderr,
        },
    ]


def linux_output(stdout: str, stderr: str = "", exit_status: int = 0) -> Statuses:
    """What RunShellScript reports: one status, both streams in its message."""
    if exit_status == 0:
        code, display, head = "ProvisioningState/succeeded", "Provisioning succeeded", "Enable succeeded: "
    else:
        code, display = f"ProvisioningState/failed/{exit_status}", "Provisioning failed"
        head = f"Enable failed: failed to execute command: command terminated with exit status={exit_status}"
    message = f"{head}\n[stdout]\n{stdout}\n[stderr]\n{stderr}"
    level = "Info" if exit_status == 0 else "Error"
    return [{"code": code, "level": level, "displayStatus": display, "message": message}]


def run_linux_check_here(command: dict[str, Any]) -> Statuses:
    """Run a RunShellScript input with bash on this machine and report it as RunShellScript would."""
    assert command["commandId"] == "RunShellScript"
    script = "\n".join(command["script"])
    done = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=30, check=False)
    return linux_output(done.stdout, done.stderr, done.returncode)


@dataclass
class _Operation:
    kind: str  # create, runCommand, delete
    vm_key: str
    polls: int = 0
    result: Statuses | None = None
    failure: tuple[str, str] | None = None
    hang: bool = False


class ComputeServer(ArmServer):
    """`ArmServer` plus virtual machine create, Run Command and delete."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guest: Callable[[dict[str, Any]], Statuses] = lambda command: windows_output("")
        self.create_failure: tuple[str, str] | None = None
        self.hang_run_command = False
        self.deleted: list[str] = []  # VM names, in deletion order
        self._vm_operations: dict[str, _Operation] = {}

    def vms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(doc)
                for doc in self._resources.values()
                if doc.get("type", "").lower() == "microsoft.compute/virtualmachines"
            ]

    def _route(self, method: str, path: str, query: dict[str, str], body: Any = None) -> _Response:
        operation = _ASYNC_OPERATION.match(path)
        if method == "GET" and operation and operation.group(2) in self._vm_operations:
            return self._vm_operation(operation.group(2), path, query)
        key = _normalize(path)
        vm_key = key.removesuffix("/runcommand")
        if "/providers/microsoft.compute/virtualmachines/" in key and vm_key.count("/") == 8:
            if method == "PUT" and vm_key == key:
                return self._create(key, path, query, body or {})
            if method == "POST" and vm_key != key:
                return self._run_command(vm_key, path, query, body or {})
            if method == "DELETE" and vm_key == key:
                return self._delete(key, path, query)
        return super()._route(method, path, query, body)

    def _start(
        self, operation: _Operation, path: str, query: dict[str, str], status: int, body: Any = None
    ) -> _Response:
        operation_id = str(uuid.uuid4())
        self._vm_operations[operation_id] = operation
        subscription, location = path.split("/")[2], "westeurope"
        vm = self._resources.get(operation.vm_key)
        if vm is not None:
            location = vm["location"]
        base = f"{self.url}/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/operations"
        version = query["api-version"]
        headers = {"Azure-AsyncOperation": f"{base}/{operation_id}?p={uuid.uuid4()}&api-version={version}"}
        if operation.kind != "create":
            headers["Location"] = f"{base}/{operation_id}?p={uuid.uuid4()}&monitor=true&api-version={version}"
        return _Response(status, body, headers)

    def _create(self, key: str, path: str, query: dict[str, str], body: dict[str, Any]) -> _Response:
        properties = body.get("properties") or {}
        image_id = ((properties.get("storageProfile") or {}).get("imageReference") or {}).get("id", "")
        if not body.get("location") or not (properties.get("hardwareProfile") or {}).get("vmSize"):
            return _arm_error(400, "InvalidParameter", "Required parameter 'location' or 'vmSize' is missing (null).")
        if _normalize(image_id) not in self._resources:
            return _arm_error(
                404,
                "GalleryImageNotFound",
                f"The gallery image {image_id} is not available in {body['location']} region. Please contact image "
                "owner to replicate to this region, or change your requested region.",
            )
        network = properties.get("networkProfile") or {}
        if network.get("networkInterfaceConfigurations") and not network.get("networkApiVersion"):
            return _arm_error(
                400, "InvalidParameter", "networkApiVersion is required when networkInterfaceConfigurations is used."
            )
        os_profile = properties.get("osProfile")
        if os_profile is not None and not os_profile.get("adminPassword"):
            return _arm_error(400, "InvalidParameter", "Required parameter 'adminPassword' is missing (null).")
        document = copy.deepcopy(body)
        document["properties"].get("osProfile", {}).pop("adminPassword", None)
        name = path.rstrip("/").rsplit("/", 1)[1]
        document |= {"id": path, "name": name, "type": "Microsoft.Compute/virtualMachines"}
        document["properties"] |= {"vmId": str(uuid.uuid4()), "provisioningState": "Creating", "timeCreated": _STARTED}
        self._resources[key] = document
        operation = _Operation("create", key, failure=self.create_failure)
        return self._start(operation, path, query, 201, copy.deepcopy(document))

    def _run_command(self, vm_key: str, path: str, query: dict[str, str], body: dict[str, Any]) -> _Response:
        if vm_key not in self._resources:
            return _arm_error(404, "ResourceNotFound", f"The Resource '{vm_key}' was not found.")
        if body.get("commandId") not in {"RunPowerShellScript", "RunShellScript"}:
            return _arm_error(400, "InvalidParameter", f"The command '{body.get('commandId')}' is not supported.")
        operation = _Operation("runCommand", vm_key, hang=self.hang_run_command)
        if not operation.hang:
            operation.result = self.guest(copy.deepcopy(body))
        return self._start(operation, path, query, 202)

    def _delete(self, key: str, path: str, query: dict[str, str]) -> _Response:
        if key not in self._resources:
            return _Response(204)
        return self._start(_Operation("delete", key), path, query, 202)

    def _vm_operation(self, operation_id: str, path: str, query: dict[str, str]) -> _Response:
        operation = self._vm_operations[operation_id]
        if query.get("monitor") == "true":  # the Location: 202 until done, then the result
            if operation.hang or operation.polls <= self.polls_before_done:
                location = f"{self.url}{path}?monitor=true&api-version={query['api-version']}"
                return _Response(202, headers={"Location": location})
            return _Response(200, {"value": operation.result}) if operation.kind == "runCommand" else _Response(204)
        operation.polls += 1
        body: dict[str, Any] = {"startTime": _STARTED, "status": "InProgress", "name": operation_id}
        if operation.hang or operation.polls <= self.polls_before_done:
            return _Response(200, body)
        body["endTime"] = _ENDED
        vm = self._resources.get(operation.vm_key)
        if operation.failure:
            code, message = operation.failure
            body |= {"status": "Failed", "error": {"code": code, "message": message}}
            if vm is not None:
                vm["properties"]["provisioningState"] = "Failed"
            return _Response(200, body)
        body["status"] = "Succeeded"
        if operation.kind == "create" and vm is not None:
            vm["properties"]["provisioningState"] = "Succeeded"
        elif operation.kind == "runCommand":
            body["properties"] = {"output": {"value": operation.result}}
        elif operation.kind == "delete" and vm is not None:
            del self._resources[operation.vm_key]
            self.deleted.append(vm["name"])
        return _Response(200, body)
