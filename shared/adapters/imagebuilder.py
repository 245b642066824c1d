"""Azure VM Image Builder templates through azure-mgmt-imagebuilder: the `ports.ImageBuilder` adapter.

Owns the translation between the SDK and the domain: resource ids become SDK call arguments,
SDK models go back to the REST JSON (`as_dict()`, read-only fields such as `lastRunStatus`
and `exactVersion` included) that `shared.domain.arm` parses, and SDK exceptions become
`NotFound` / `UpstreamError`.

The SDK is imported on first use, not at import time: `azure.core` alone costs ~75 ms and the
app's cold start is benchmarked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.domain.arm import ImageTemplate, RunOutput
from shared.domain.resource_ids import IMAGE_TEMPLATE, ResourceId
from shared.errors import InvalidInput, NotFound, UpstreamError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.core.polling import LROPoller
    from azure.mgmt.imagebuilder import ImageBuilderClient


class AzureImageBuilder:
    """`ports.ImageBuilder` over Resource Manager; one SDK client per subscription, built on first use.

    `client_kwargs` go to `ImageBuilderClient` unchanged (base_url, retry_total, polling_interval,
    authentication_policy, transport...).
    """

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._credential = credential
        self._client_kwargs = client_kwargs
        self._clients: dict[str, ImageBuilderClient] = {}
        self._lock = threading.Lock()

    def get_template(self, template_id: str) -> ImageTemplate:
        template = _parse_template_id(template_id)
        with _mapped_errors("image template", template_id):
            model = self._client(template.subscription).virtual_machine_image_templates.get(
                template.resource_group, template.name
            )
        parsed: ImageTemplate = ImageTemplate.from_arm(model.as_dict())
        return parsed

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        from azure.core.exceptions import ResourceNotFoundError

        template = _parse_template_id(template_id)
        with _mapped_errors(f"run output {run_output_name!r} of image template", template_id):
            try:
                model = self._client(template.subscription).virtual_machine_image_templates.get_run_output(
                    template.resource_group, template.name, run_output_name
                )
            except ResourceNotFoundError:
                # A run that failed before distributing leaves no run output: a result, not a fault.
                return None
        parsed: RunOutput = RunOutput.from_arm(model.as_dict())
        return parsed

    def start_run(self, template_id: str) -> LROPoller[None]:
        """Start a run and poll it in the background; for callers that wait (tools, tests).

        Failures reported while polling surface from `LROPoller.result()` as SDK exceptions.
        """
        template = _parse_template_id(template_id)
        with _mapped_errors("run of image template", template_id):
            return self._client(template.subscription).virtual_machine_image_templates.begin_run(
                template.resource_group, template.name
            )

    def run_template(self, template_id: str) -> None:
        template = _parse_template_id(template_id)
        # polling=False: a build takes an hour and completion arrives as Resource Manager events;
        # the default poller would keep a background thread polling ARM for all that time.
        with _mapped_errors("run of image template", template_id):
            self._client(template.subscription).virtual_machine_image_templates.begin_run(
                template.resource_group, template.name, polling=False
            )

    def close(self) -> None:
        """Close every client's connection pool (the app itself keeps them for the worker's life)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _client(self, subscription: str) -> ImageBuilderClient:
        key = subscription.lower()
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # Functions may run sync handlers on several threads at once
                client = self._clients.get(key)
                if client is None:
                    from azure.mgmt.imagebuilder import ImageBuilderClient

                    client = ImageBuilderClient(self._credential, subscription, **self._client_kwargs)
                    self._clients[key] = client
        return client


def _parse_template_id(template_id: str) -> ResourceId:
    parsed = ResourceId.parse(template_id)
    if not parsed.is_type(IMAGE_TEMPLATE):
        raise InvalidInput(f"expected a {IMAGE_TEMPLATE} id, got {parsed.full_type}: {template_id}")
    return parsed


@contextmanager
def _mapped_errors(what: str, resource_id: str) -> Iterator[None]:
    """SDK exceptions as the port's errors. Messages carry status and ARM code, never headers."""
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what} not found: {resource_id} ({_arm_code(exc)})") from exc
    except HttpResponseError as exc:
        status = exc.status_code if exc.status_code is not None else "no response"
        raise UpstreamError(
            f"Resource Manager answered HTTP {status} {_arm_code(exc)} for {what} {resource_id}: {_arm_message(exc)}"
        ) from exc
    except AzureError as exc:  # no HTTP answer: connection refused, timeouts, broken responses
        raise UpstreamError(
            f"Resource Manager request for {what} {resource_id} failed: {type(exc).__name__}: {exc.message}"
        ) from exc


def _arm_code(exc: HttpResponseError) -> str:
    # `error` is the parsed ARM body {"error": {"code", "message"}}; absent when the body is not JSON.
    return (exc.error.code if exc.error else None) or "no ARM error code"


def _arm_message(exc: HttpResponseError) -> str:
    return (exc.error.message if exc.error else None) or exc.reason or ""
