"""Azure VM Image Builder templates through azure-mgmt-imagebuilder: the `ports.ImageBuilder` adapter.

Owns the translation between the SDK and the domain: resource ids become SDK call arguments,
SDK models go back to the REST JSON (`as_dict()`, read-only fields such as `lastRunStatus`
and `exactVersion` included) that `shared.domain.arm` parses, and SDK exceptions become
`NotFound` / `UpstreamError`.

The SDK is imported on first use, not at import time: `azure.core` alone costs ~75 ms and the
app's cold start is benchmarked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.adapters.arm import SubscriptionClients, mapped_errors, parse_typed
from shared.domain.arm import ImageTemplate, RunOutput
from shared.domain.resource_ids import IMAGE_TEMPLATE, ResourceId

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.polling import LROPoller
    from azure.mgmt.imagebuilder import ImageBuilderClient


class AzureImageBuilder:
    """`ports.ImageBuilder` over Resource Manager; one SDK client per subscription, built on first use.

    `client_kwargs` go to `ImageBuilderClient` unchanged (base_url, retry_total, polling_interval,
    authentication_policy, transport...).
    """

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        def build(subscription: str) -> ImageBuilderClient:
            from azure.mgmt.imagebuilder import ImageBuilderClient

            return ImageBuilderClient(credential, subscription, **client_kwargs)

        self._clients = SubscriptionClients(build, lambda client: client.close())

    def get_template(self, template_id: str) -> ImageTemplate:
        template = _template(template_id)
        with mapped_errors("image template", template_id):
            model = self._client(template.subscription).virtual_machine_image_templates.get(
                template.resource_group, template.name
            )
        parsed: ImageTemplate = ImageTemplate.from_arm(model.as_dict())
        return parsed

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        from azure.core.exceptions import ResourceNotFoundError

        template = _template(template_id)
        with mapped_errors(f"run output {run_output_name!r} of image template", template_id):
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
        template = _template(template_id)
        with mapped_errors("run of image template", template_id):
            return self._client(template.subscription).virtual_machine_image_templates.begin_run(
                template.resource_group, template.name
            )

    def run_template(self, template_id: str) -> None:
        template = _template(template_id)
        # polling=False: a build takes an hour and completion arrives as Resource Manager events;
        # the default poller would keep a background thread polling ARM for all that time.
        with mapped_errors("run of image template", template_id):
            self._client(template.subscription).virtual_machine_image_templates.begin_run(
                template.resource_group, template.name, polling=False
            )

    def close(self) -> None:
        """Close every client's connection pool (the app itself keeps them for the worker's life)."""
        self._clients.close()

    def _client(self, subscription: str) -> ImageBuilderClient:
        return self._clients.for_subscription(subscription)


def _template(template_id: str) -> ResourceId:
    return parse_typed(template_id, IMAGE_TEMPLATE)
