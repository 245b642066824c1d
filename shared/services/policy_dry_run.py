"""`POST /api/policy/evaluate`: the validation gate's verdict without recording anything.

For pipelines to check a version before they publish it: either a version the app knows (its
tattoo and evidence are used, as validation would), a version it can read from the gallery, or an
ARM image version document given in the request (only what the document says is known, so
provenance rules fail: the report shows what could not be established). Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion
from shared.domain.policy import Policy, ValidationReport, ValidationSubject, evaluate
from shared.domain.resource_ids import GALLERY_IMAGE_VERSION, ResourceId
from shared.domain.tattoo import TattooKey
from shared.errors import InvalidInput, NotFound
from shared.ports import Gallery, TattooRepository


class PolicyDryRun:
    def __init__(
        self,
        policy: Policy,
        tattoos: TattooRepository,
        gallery: Gallery,
        environment_of: Callable[[str], str],
        clock: Callable[[], datetime],
    ) -> None:
        self._policy = policy
        self._tattoos = tattoos
        self._gallery = gallery
        self._environment_of = environment_of
        self._clock = clock

    def evaluate(self, body: Mapping[str, Any]) -> ValidationReport:
        environment = body.get("environment")
        if environment is not None and not isinstance(environment, str):
            raise InvalidInput("environment: must be a string")
        if "imageVersion" in body:
            return self._evaluate_document(body, environment)
        version_id = body.get("versionId")
        if not isinstance(version_id, str) or not version_id:
            raise InvalidInput("give versionId (a gallery image version id) or imageVersion (its ARM document)")
        parsed = _version_id(version_id, "versionId")
        definition = self._definition(parsed.parent().raw)
        gallery = parsed.names[0]
        env = environment or self._environment_of(gallery)
        stored = self._tattoos.get(TattooKey.for_version(version_id))
        if stored is not None:
            tattoo = stored[0]
            subject = ValidationSubject.from_tattoo(
                tattoo, environment=env, definition=definition, scans=tattoo.scans, boot_test=tattoo.boot_test
            )
        else:
            subject = ValidationSubject.from_version(
                self._gallery.get_image_version(version_id), environment=env, definition=definition
            )
        return evaluate(self._policy, subject, self._clock())

    def _evaluate_document(self, body: Mapping[str, Any], environment: str | None) -> ValidationReport:
        document, definition_document = body.get("imageVersion"), body.get("imageDefinition")
        if not isinstance(document, dict):
            raise InvalidInput("imageVersion: must be an ARM image version document (a JSON object)")
        version: GalleryImageVersion = GalleryImageVersion.from_arm(document)
        parsed = _version_id(version.id, "imageVersion.id")
        if definition_document is None:
            definition = self._definition(parsed.parent().raw)
        elif isinstance(definition_document, dict):
            definition = GalleryImageDefinition.from_arm(definition_document)
        else:
            raise InvalidInput("imageDefinition: must be an ARM image definition document (a JSON object)")
        env = environment or self._environment_of(parsed.names[0])
        subject = ValidationSubject.from_version(version, environment=env, definition=definition)
        return evaluate(self._policy, subject, self._clock())

    def _definition(self, image_id: str) -> GalleryImageDefinition | None:
        try:
            return self._gallery.get_image_definition(image_id)
        except NotFound:
            return None


def _version_id(raw: str, field: str) -> ResourceId:
    parsed = ResourceId.parse(raw)
    if not parsed.is_type(GALLERY_IMAGE_VERSION):
        raise InvalidInput(f"{field}: {raw!r} is not a gallery image version id")
    return parsed
