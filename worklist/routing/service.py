"""Routing: validating and replacing the rule list, and giving studies their subspecialty.

Studies are routed when the worker makes them ready (``promote_quiet_studies``), when an
order is applied to them (``worklist.orders.service``), and all unreported ones again
when an admin replaces the rules. A study a manager routed by hand (``subspecialty`` set,
``subspecialty_rule`` null) is left alone; reported and cancelled studies too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction
from worklist.errors import InvalidInput
from worklist.events import EventType, WorklistEvent, stage
from worklist.routing import repository
from worklist.routing.matcher import Rule, StudyFacts, age_in_years, compile_pattern, route
from worklist.routing.repository import FactsRow, RoutedStudy
from worklist.sites.service import Actor
from worklist.subspecialties.service import check_admin, check_codes
from worklist.timezones import SITE_TIMEZONE

ONLY_ADMINS = "only admins manage the routing rules"
# Studies re-routed per statement when the rules change (bounds each round trip).
REROUTE_BATCH = 2000


def facts_of(row: FactsRow) -> StudyFacts:
    """What the matcher sees of a study: age on the study's (local) date, else arrival."""
    when = row.study_datetime or row.received_at
    texts = tuple(t for t in (row.procedure_code, row.procedure_name, row.description) if t)
    return StudyFacts(
        modalities=tuple(row.modalities),
        body_part=row.body_part,
        procedure_texts=texts,
        age_years=age_in_years(row.birth_date, when.astimezone(SITE_TIMEZONE).date()),
    )


async def _route_rows(
    session: AsyncSession, rules: Sequence[Rule], rows: Sequence[FactsRow]
) -> list[RoutedStudy]:
    changes = []
    for row in rows:
        routed = route(rules, facts_of(row))
        if routed != row.current:
            changes.append((row.study_id, routed))
    return await repository.set_routing(session, changes)


async def hold_rules(session: AsyncSession) -> None:
    """Hold the rules steady until this transaction ends (a shared lock).

    Call it before the transaction locks the studies it will route: a change of the rules
    takes the lock exclusively and then locks every unreported study, so taking the two
    locks in the other order could deadlock with it.
    """
    await repository.lock_rules(session, exclusive=False)


async def route_studies(session: AsyncSession, study_ids: Sequence[int]) -> list[RoutedStudy]:
    """Route these studies (the routable ones) by the current rules; those that changed.

    The caller has called ``hold_rules`` (or taken the same lock with its own, as an
    order's accession lock does) before locking the studies, so it is not taken again here.
    """
    if not study_ids:
        return []
    rules = await repository.list_rules(session)
    rows = await repository.routable_facts(session, study_ids=study_ids)
    return await _route_rows(session, rules, rows)


async def reroute_all(session: AsyncSession, rules: Sequence[Rule]) -> list[RoutedStudy]:
    """Route every routable study by ``rules`` (the caller holds the exclusive lock)."""
    changed: list[RoutedStudy] = []
    after: int | None = None
    while True:
        rows = await repository.routable_facts(session, after_id=after, limit=REROUTE_BATCH)
        if not rows:
            return changed
        changed += await _route_rows(session, rules, rows)
        after = rows[-1].study_id


def stage_updates(session: AsyncSession, routed: Sequence[RoutedStudy]) -> None:
    """Announce each study's new routing (``study.updated``) once the transaction commits."""
    for study in routed:
        stage(
            session,
            WorklistEvent(
                type=EventType.STUDY_UPDATED,
                site_id=study.site_id,
                study_uid=study.study_uid,
                data={
                    "subspecialty": study.routed.subspecialty,
                    "subspecialty_rule": study.routed.rule,
                },
            ),
        )


def _clean(value: str | None, *, upper: bool) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip().upper() if upper else value.strip()


async def check_rules(session: AsyncSession, rules: Sequence[Rule]) -> list[Rule]:
    """The list renumbered 0.. in its order, codes and patterns checked (422 otherwise).

    Modality and body part are DICOM code strings: stored in capitals.
    """
    await check_codes(session, {rule.subspecialty for rule in rules})
    checked = []
    for index, rule in enumerate(rules):
        pattern = _clean(rule.procedure_pattern, upper=False)
        if pattern is not None:
            try:
                compile_pattern(pattern)
            except re.error as exc:
                raise InvalidInput(f"rule {index}: invalid procedure_pattern: {exc}") from None
        if rule.max_age_years is not None and rule.max_age_years < 1:
            raise InvalidInput(f"rule {index}: max_age_years must be at least 1")
        checked.append(
            Rule(
                position=index,
                subspecialty=rule.subspecialty,
                modality=_clean(rule.modality, upper=True),
                body_part=_clean(rule.body_part, upper=True),
                procedure_pattern=pattern,
                max_age_years=rule.max_age_years,
            )
        )
    return checked


async def get_rules(session: AsyncSession, *, actor: Actor) -> list[Rule]:
    """The rule list in order (admins and the CLI operator)."""
    check_admin(actor, ONLY_ADMINS)
    return await repository.list_rules(session)


async def replace_rules(
    session: AsyncSession, *, actor: Actor, rules: Sequence[Rule]
) -> tuple[list[Rule], int]:
    """Replace the whole list, re-route the unreported studies; the list and how many
    studies changed. Audited with the old and new lists."""
    check_admin(actor, ONLY_ADMINS)
    # First, before any study is locked (see hold_rules).
    await repository.lock_rules(session, exclusive=True)
    checked = await check_rules(session, rules)
    old = await repository.list_rules(session)
    await repository.replace_rules(session, checked)
    routed = await reroute_all(session, checked)
    stage_updates(session, routed)
    audit.record(
        session,
        actor=actor.name,
        actor_kind=actor.kind,
        action=AuditAction.ROUTING_CHANGED,
        address=actor.address,
        detail={
            "from": [asdict(rule) for rule in old],
            "to": [asdict(rule) for rule in checked],
            "rerouted": len(routed),
        },
    )
    return checked, len(routed)
