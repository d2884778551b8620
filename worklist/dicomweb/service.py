"""DICOMweb rules: who may see what, which files a request names, and the audit of each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.dicomweb import dicomjson, repository
from worklist.dicomweb.dicomjson import JsonDataset
from worklist.dicomweb.query import QidoQuery, audit_detail
from worklist.dicomweb.repository import StoredInstance
from worklist.enums import AuditAction
from worklist.errors import NotFound
from worklist.matching.values import Matching
from worklist.models import Study, User
from worklist.priors import service as priors
from worklist.studies import grants
from worklist.studies import repository as studies
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import readable_study_condition, require_worklist_access

SERIES_NOT_FOUND = "series not found"
INSTANCE_NOT_FOUND = "instance not found"
NO_INSTANCES = "no instances stored"
# An audit row names at most this many matched studies (a broad search can match many).
MAX_AUDITED_STUDY_UIDS = 200


@dataclass(frozen=True)
class Scope:
    """Where a request points: a study, optionally one of its series and instances."""

    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who asks, from where, the base URL their links are built on, and any ``?via=``.

    With ``via`` (a study the caller may see) the request reaches that study's priors
    instead of the caller's own studies: see ``worklist.priors``.
    """

    user: User
    address: str | None
    base_url: str
    via: str | None = None

    @property
    def link_query(self) -> str:
        """What links in responses carry so that following them keeps the same access."""
        return f"?{urlencode({'via': self.via})}" if self.via is not None else ""


@dataclass(frozen=True)
class Access:
    """The studies a request reaches, and the via study when they are its priors."""

    visible: ColumnElement[bool]
    via: Study | None = None


async def _access(session: AsyncSession, caller: Caller) -> Access:
    require_worklist_access(caller.user)
    if caller.via is None:
        return Access(visible=readable_study_condition(caller.user))
    via = await priors.via_study(session, user=caller.user, study_uid=caller.via)
    return Access(visible=via.priors, via=via.study)


def _linked(caller: Caller, dataset: JsonDataset) -> JsonDataset:
    """``dataset`` with its Retrieve URL carrying the caller's ``?via=``."""
    url = dataset.get(dicomjson.RETRIEVE_URL, {}).get("Value")
    if caller.via is None or not url:
        return dataset
    return {**dataset, dicomjson.RETRIEVE_URL: dicomjson.element("UR", url[0] + caller.link_query)}


@dataclass(frozen=True)
class Retrieval:
    """The study and the stored instances one WADO-RS request returns, in order."""

    study: Study
    instances: list[StoredInstance] = field(default_factory=list)

    @property
    def transfer_syntaxes(self) -> set[str]:
        """Every transfer syntax among the instances."""
        return {i.transfer_syntax_uid for i in self.instances}


def _scoped(matching: Matching, scope: Scope) -> Matching:
    """``matching`` within the study (and series) of the path, whatever the query said."""
    if scope.study_uid is not None:
        matching = replace(matching, study_uids=(scope.study_uid,))
    if scope.series_uid is not None:
        matching = replace(matching, series_uids=(scope.series_uid,))
    return matching


async def _resolve_scope(session: AsyncSession, access: Access, scope: Scope) -> Study | None:
    """The scope's study (404 when absent or not reached) and series (404 when absent)."""
    if scope.study_uid is None:
        return None
    study = await studies.get_visible_study(
        session, study_uid=scope.study_uid, visible=access.visible
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    if scope.series_uid is not None and not await repository.series_exists(
        session, study_id=study.id, series_uid=scope.series_uid
    ):
        raise NotFound(SERIES_NOT_FOUND)
    return study


def _audit_query(
    session: AsyncSession,
    caller: Caller,
    access: Access,
    *,
    level: str,
    query: QidoQuery,
    study: Study | None,
    matched: Sequence[Study],
) -> None:
    if not matched:
        return
    distinct = list({s.study_uid: s for s in matched}.values())
    if access.via is not None:
        # A prior read is recorded against each prior's own study and site.
        for prior in distinct:
            priors.audit_prior_read(
                session,
                user=caller.user,
                action=AuditAction.PRIOR_QUERIED,
                prior_uid=prior.study_uid,
                prior_site_id=prior.site_id,
                via=access.via,
                address=caller.address,
                detail={
                    "channel": "dicomweb",
                    "level": level,
                    "matching": audit_detail(query.matching),
                },
            )
        return
    audit.record(
        session,
        actor=caller.user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.STUDY_QUERIED,
        study_uid=study.study_uid if study else None,
        site_id=study.site_id if study else None,
        address=caller.address,
        detail={
            "via": "dicomweb",
            "level": level,
            "matching": audit_detail(query.matching),
            "results": len(matched),
            "study_uids": [s.study_uid for s in distinct[:MAX_AUDITED_STUDY_UIDS]],
            "study_uids_truncated": len(distinct) > MAX_AUDITED_STUDY_UIDS,
            **_grants_read(caller.user, distinct),
        },
    )


def _grants_read(user: User, studies: Sequence[Study]) -> dict[str, Any]:
    """The grants a query read studies through, by study UID (empty when none)."""
    through = {s.study_uid: grants.audit_detail(user, s).get("grant") for s in studies}
    read = {uid: grant for uid, grant in through.items() if grant is not None}
    return {"grants": read} if read else {}


async def search_studies(
    *, session: AsyncSession, caller: Caller, query: QidoQuery
) -> list[JsonDataset]:
    """QIDO-RS study search over the studies the caller may see; audited when it matches.

    With ``?via=`` the search covers that study's priors only.
    """
    access = await _access(session, caller)
    studies = await repository.search_studies(
        session,
        visible=access.visible,
        matching=query.matching,
        limit=query.limit,
        offset=query.offset,
    )
    _audit_query(session, caller, access, level="study", query=query, study=None, matched=studies)
    return [_linked(caller, dicomjson.study_attributes(s, caller.base_url)) for s in studies]


async def search_series(
    *, session: AsyncSession, caller: Caller, query: QidoQuery, scope: Scope
) -> list[JsonDataset]:
    """QIDO-RS series search, network-wide or within one visible study."""
    access = await _access(session, caller)
    study = await _resolve_scope(session, access, scope)
    rows = await repository.search_series(
        session,
        visible=access.visible,
        matching=_scoped(query.matching, scope),
        limit=query.limit,
        offset=query.offset,
    )
    matched = [r.study for r in rows]
    _audit_query(session, caller, access, level="series", query=query, study=study, matched=matched)
    base = caller.base_url
    return [
        _linked(
            caller,
            dicomjson.compose(
                query,
                dicomjson.series_attributes(r.series, r.study.study_uid, base),
                dicomjson.study_attributes(r.study, base),
            ),
        )
        for r in rows
    ]


async def search_instances(
    *, session: AsyncSession, caller: Caller, query: QidoQuery, scope: Scope
) -> list[JsonDataset]:
    """QIDO-RS instance search, network-wide, within a study or within a series."""
    access = await _access(session, caller)
    study = await _resolve_scope(session, access, scope)
    rows = await repository.search_instances(
        session,
        visible=access.visible,
        matching=_scoped(query.matching, scope),
        limit=query.limit,
        offset=query.offset,
    )
    matched = [r.study for r in rows]
    _audit_query(
        session, caller, access, level="instance", query=query, study=study, matched=matched
    )
    base = caller.base_url
    return [
        _linked(
            caller,
            dicomjson.compose(
                query,
                dicomjson.instance_attributes(
                    r.instance, r.series.series_uid, r.study.study_uid, base
                ),
                dicomjson.series_attributes(r.series, r.study.study_uid, base),
                dicomjson.study_attributes(r.study, base),
            ),
        )
        for r in rows
    ]


async def prepare_retrieval(
    *, session: AsyncSession, caller: Caller, scope: Scope, what: str
) -> Retrieval:
    """The instances a WADO-RS request returns; the retrieval is audited before streaming.

    ``what`` names the resource for the audit row: ``instances``, ``metadata``, ``frames``.
    """
    if scope.study_uid is None:  # pragma: no cover - every WADO-RS route names a study
        raise NotFound(STUDY_NOT_FOUND)
    access = await _access(session, caller)
    study = await _resolve_scope(session, access, scope)
    assert study is not None
    instances = await repository.list_stored_instances(
        session,
        study_id=study.id,
        series_uid=scope.series_uid,
        sop_instance_uid=scope.sop_instance_uid,
    )
    if not instances:
        raise NotFound(INSTANCE_NOT_FOUND if scope.sop_instance_uid else NO_INSTANCES)
    level = "instance" if scope.sop_instance_uid else "series" if scope.series_uid else "study"
    detail = {
        "level": level,
        "resource": what,
        "series_uid": scope.series_uid,
        "sop_instance_uid": scope.sop_instance_uid,
        "instances": len(instances),
    }
    if access.via is not None:
        priors.audit_prior_read(
            session,
            user=caller.user,
            action=AuditAction.PRIOR_RETRIEVED,
            prior_uid=study.study_uid,
            prior_site_id=study.site_id,
            via=access.via,
            address=caller.address,
            detail={"channel": "dicomweb", **detail},
        )
    else:
        audit.record(
            session,
            actor=caller.user.username,
            actor_kind=audit.ActorKind.USER,
            action=AuditAction.STUDY_RETRIEVED,
            study_uid=study.study_uid,
            site_id=study.site_id,
            address=caller.address,
            detail={"via": "dicomweb", **grants.audit_detail(caller.user, study), **detail},
        )
    return Retrieval(study=study, instances=instances)
