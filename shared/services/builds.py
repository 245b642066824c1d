"""Scheduled build work: the monthly refresh and the reconciliation of missed events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.domain.resource_ids import ResourceId
from shared.domain.tattoo import partition_of, run_id_of
from shared.errors import GovernanceError
from shared.ports import ImageBuilder, TattooRepository
from shared.services.intake import BuildIntake, gallery_target

log = logging.getLogger(__name__)


@dataclass
class ScheduleReport:
    """What one timer run did, template by template."""

    started: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    recorded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class BuildScheduler:
    def __init__(self, builder: ImageBuilder, tattoos: TattooRepository, intake: BuildIntake) -> None:
        self._builder = builder
        self._tattoos = tattoos
        self._intake = intake

    def refresh(self, template_ids: Sequence[str]) -> ScheduleReport:
        """Start a run of every configured template that is not already running."""
        report = ScheduleReport()
        for template_id in template_ids:
            try:
                status = self._builder.get_template(template_id).properties.last_run_status
                if status is not None and status.run_state and not status.is_final:
                    report.skipped[template_id] = f"already {status.run_state}"
                    continue
                self._builder.run_template(template_id)
                report.started.append(template_id)
            except GovernanceError as exc:
                # One broken template must not stop the refresh of the others.
                report.failed[template_id] = str(exc)
                log.error("refresh failed for %s: %s", template_id, exc)
        return report

    def reconcile(self, template_ids: Sequence[str], correlation_id: str) -> ScheduleReport:
        """Record any finished run whose final state is not in the tattoo table (a missed event)."""
        report = ScheduleReport()
        for template_id in template_ids:
            try:
                template = self._builder.get_template(template_id)
                status, run_id = template.properties.last_run_status, run_id_of(template)
                target = gallery_target(template)
                if status is None or run_id is None or not status.is_final or target is None:
                    report.skipped[template_id] = "no finished run"
                    continue
                gallery, image = ResourceId.parse(target[0]).names[:2]
                if self._tattoos.find_by_run(partition_of(gallery, image), run_id) is not None:
                    report.skipped[template_id] = "already recorded"
                    continue
                result = self._intake.record_run(template_id, correlation_id)
                report.recorded.append(f"{template_id}: {result.outcome} {result.detail}")
            except GovernanceError as exc:
                report.failed[template_id] = str(exc)
                log.error("reconcile failed for %s: %s", template_id, exc)
        return report
