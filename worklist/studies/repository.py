"""SQL for the worklist, study detail and priors."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, contains_eager
from sqlalchemy.orm.util import AliasedClass

from worklist.enums import PatientSource, Priority, ReportStatus, StudyStatus
from worklist.identity import normalise_nhs_number
from worklist.models import Claim, Order, Patient, Report, Series, Site, Study, User
from worklist.studies.schemas import WorklistFilters

MAX_PRIORS = 100
_NAME_TOKEN_SPLIT = re.compile(r"[\s^,]+")


@dataclass(frozen=True)
class WorklistKey:
    """A study's position in worklist order: (due_at, priority, received_at, id)."""

    due_at: datetime
    priority: Priority
    received_at: datetime
    id: int

    @classmethod
    def of(cls, study: Study) -> WorklistKey:
        """The key of ``study``."""
        return cls(study.due_at, study.priority, study.received_at, study.id)


@dataclass(frozen=True)
class WorklistRow:
    """A study (site and patient loaded) with its unexpired claim and its report status."""

    study: Study
    claimed_by: str | None
    claim_expires_at: datetime | None
    report_status: ReportStatus | None


# Outer joins: username, expiry and report status are None where there is no row.
_WorklistSelect = Select[Study, str, datetime, ReportStatus]

WORKLIST_ORDER = (Study.due_at, Study.priority, Study.received_at, Study.id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Binds:
    """Named bind parameters and their values, collected as conditions are built.

    A statement assembled once per shape (``worklist.studies.page``) is run with
    ``values`` as they are: building the conditions is cheap, assembling and compiling
    the statement around them is not. Names are prefixed ``wl_``, so they never meet a
    caller's own.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, name: str, value: Any, type_: Any = None) -> BindParameter[Any]:
        """A bind parameter ``wl_<name>`` holding ``value``."""
        key = f"wl_{name}"
        self.values[key] = value
        return bindparam(key, value, type_=type_)


def search_condition(q: str, binds: Binds | None = None) -> ColumnElement[bool] | None:
    """Match patient name (every word), accession (case-insensitive), NHS number, description."""
    text = q.strip()
    if not text:
        return None
    bind = binds or Binds()
    options: list[ColumnElement[bool]] = [
        Study.description.ilike(bind("q_contains", f"%{_escape_like(text)}%", Text), escape="\\"),
        Study.accession_number.ilike(bind("q_accession", _escape_like(text), Text), escape="\\"),
    ]
    words = [w for w in _NAME_TOKEN_SPLIT.split(text) if w]
    if words:
        options.append(
            and_(
                *(
                    Patient.name.ilike(
                        bind(f"q_word_{i}", f"%{_escape_like(w)}%", Text), escape="\\"
                    )
                    for i, w in enumerate(words)
                )
            )
        )
    nhs_number = normalise_nhs_number(text)
    if nhs_number is not None:
        options.append(Patient.nhs_number == bind("q_nhs_number", nhs_number, Text))
    return or_(*options)


def active_claim_condition(claim: type[Claim] | AliasedClass[Claim] = Claim) -> ColumnElement[bool]:
    """Claims that are still running (an expired claim no longer holds its study)."""
    return claim.expires_at > func.now()


def held_by(user_id: int | BindParameter[int] | None = None) -> ColumnElement[bool]:
    """True for studies with an unexpired claim (held by ``user_id`` when given).

    The subquery uses its own alias of ``claims`` so that it correlates with the outer
    ``studies`` only, even when the outer query joins ``claims`` itself.
    """
    claim = aliased(Claim)
    conditions = [claim.study_id == Study.id, active_claim_condition(claim)]
    if user_id is not None:
        conditions.append(claim.user_id == user_id)
    return exists().where(*conditions)


def patient_source_condition(sources: Sequence[PatientSource]) -> ColumnElement[bool]:
    """True for studies whose order was referred from one of ``sources``.

    Its own alias of ``orders``: it holds whether or not the outer query joins the order
    (the worklist page does, ``worklist/next`` does not).
    """
    order = aliased(Order)
    return exists().where(order.id == Study.order_id, order.patient_source.in_(_literals(sources)))


def _literals(values: Sequence[Any]) -> BindParameter[Any]:
    # Rendered into the statement when it runs (values of an enum only, never user text).
    return bindparam(None, list(values), expanding=True, literal_execute=True)


def filter_conditions(
    filters: WorklistFilters, *, user_id: int | None = None, binds: Binds | None = None
) -> list[ColumnElement[bool]]:
    """SQL conditions for the worklist filters (Study joined with Site and Patient).

    ``mine`` needs the caller's ``user_id``; without it ``mine`` matches nothing. The
    values go into named parameters (``binds``: collected for a statement compiled once).
    """
    bind = binds or Binds()
    # Statuses and priorities are a handful of enum values: rendered as literals, so the
    # planner can match the backlog's partial index. Site codes and modalities are arrays
    # (one statement text whatever their number, so it stays prepared).
    conditions: list[ColumnElement[bool]] = [Study.status.in_(_literals(filters.statuses))]
    if len(filters.sites) == 1:
        # One site (the usual case): its id as a parameter of the statement (an InitPlan),
        # so the site's own backlog index is walked in worklist order.
        site_id = select(Site.id).where(Site.code == bind("site_code", filters.sites[0], Text))
        conditions.append(Study.site_id == site_id.scalar_subquery())
    elif filters.sites:
        # Needs ``sites`` joined (``sites_joined``): the planner can then start from the site.
        conditions.append(Site.code == any_(bind("site_codes", list(filters.sites), ARRAY(Text))))
    if filters.modalities:
        modalities = type_coerce(Study.modalities, ARRAY(Text))
        conditions.append(
            modalities.overlap(bind("modalities", list(filters.modalities), ARRAY(Text)))
        )
    if filters.priorities:
        conditions.append(Study.priority.in_(_literals(filters.priorities)))
    if filters.patient_sources:
        conditions.append(patient_source_condition(filters.patient_sources))
    if filters.q:
        search = search_condition(filters.q, bind)
        if search is not None:
            conditions.append(search)
    if filters.mine:
        if user_id is None:
            conditions.append(false())
        else:
            conditions.append(held_by(bind("user_id", user_id, Integer)))
    return conditions


def sites_joined(filters: WorklistFilters) -> bool:
    """Whether ``filter_conditions`` needs ``sites`` joined (several site codes)."""
    return len(filters.sites) > 1


@dataclass(frozen=True)
class FilterShape:
    """What of ``filters`` decides the text of ``filter_conditions``: the parameters it
    binds (by name) and the enum values it renders in; never a value."""

    binds: tuple[str, ...]
    statuses: tuple[StudyStatus, ...]
    priorities: tuple[Priority, ...]
    patient_sources: tuple[PatientSource, ...]
    mine: bool
    sites_joined: bool


def filter_shape(filters: WorklistFilters, binds: Binds) -> FilterShape:
    """The shape of ``filters``, whose conditions filled ``binds``."""
    return FilterShape(
        binds=tuple(binds.values),
        statuses=filters.statuses,
        priorities=filters.priorities,
        patient_sources=filters.patient_sources,
        mine=filters.mine,
        sites_joined=sites_joined(filters),
    )


def _studies_with_site_and_patient() -> Select[Study]:
    return (
        select(Study)
        .join(Study.site)
        .join(Study.patient)
        .options(contains_eager(Study.site), contains_eager(Study.patient))
    )


def _worklist_rows() -> _WorklistSelect:
    # claims and reports are at most one row per study (primary key / unique study_id),
    # so the outer joins never multiply rows and the page stays one index-ordered query.
    return (
        select(Study, User.username, Claim.expires_at, Report.status)
        .join(Study.site)
        .join(Study.patient)
        .outerjoin(Claim, and_(Claim.study_id == Study.id, active_claim_condition()))
        .outerjoin(User, User.id == Claim.user_id)
        .outerjoin(Report, Report.study_id == Study.id)
        .options(contains_eager(Study.site), contains_eager(Study.patient))
        .execution_options(populate_existing=True)
    )


async def _rows(session: AsyncSession, stmt: _WorklistSelect) -> list[WorklistRow]:
    return [
        WorklistRow(study=study, claimed_by=username, claim_expires_at=expires_at, report_status=rs)
        for study, username, expires_at, rs in (await session.execute(stmt)).all()
    ]


def _claimed_by() -> ScalarSelect[str]:
    return (
        select(User.username)
        .join(Claim, Claim.user_id == User.id)
        .where(Claim.study_id == Study.id, active_claim_condition())
        .scalar_subquery()
    )


def _claim_expires_at() -> ScalarSelect[datetime]:
    return (
        select(Claim.expires_at)
        .where(Claim.study_id == Study.id, active_claim_condition())
        .scalar_subquery()
    )


def _report_status() -> ScalarSelect[ReportStatus]:
    return select(Report.status).where(Report.study_id == Study.id).scalar_subquery()


def _site_column(name: str) -> ScalarSelect[str]:
    # Its own alias: the outer query may join ``sites`` itself (the site filter).
    site = aliased(Site)
    column: InstrumentedAttribute[str] = getattr(site, name)
    return select(column).where(site.id == Study.site_id).scalar_subquery()


# The columns of a worklist item, read as plain rows (no ORM objects). Site, claim and
# report are scalar subqueries rather than joins: a six-table join cost the planner more
# than the whole query takes to run, while these are planned in a fraction of that and
# each is one primary-key or unique-index probe per row of the page.
WORKLIST_COLUMNS = (
    Study.id,
    Study.study_uid,
    _site_column("code").label("site_code"),
    _site_column("name").label("site_name"),
    Study.accession_number,
    Patient.name.label("patient_name"),
    Patient.nhs_number,
    Patient.local_id,
    Patient.birth_date,
    Patient.sex,
    Study.modalities,
    Study.description,
    Study.study_datetime,
    Study.received_at,
    Study.series_count,
    Study.instance_count,
    Study.priority,
    Study.due_at,
    Study.status,
    _claimed_by().label("claimed_by"),
    _claim_expires_at().label("claim_expires_at"),
    _report_status().label("report_status"),
    Study.flags,
    Study.subspecialty,
    Study.subspecialty_rule,
    Study.order_id,
    # The matched order (all None without one): outer-joined by its primary key.
    Order.placer_order_number.label("order_placer_order_number"),
    Order.filler_order_number.label("order_filler_order_number"),
    Order.procedure_code.label("order_procedure_code"),
    Order.procedure_name.label("order_procedure_name"),
    Order.indication.label("order_indication"),
    Order.referrer_name.label("order_referrer_name"),
    Order.referrer_code.label("order_referrer_code"),
    Order.referrer_organisation.label("order_referrer_organisation"),
    Order.patient_source.label("order_patient_source"),
    Order.requested_at.label("order_requested_at"),
)


# studies is the first FROM of WORKLIST_COLUMNS; the patient is one per study and the
# order at most one (primary key), so neither join multiplies rows. Built once: every
# request only adds its conditions (coercing 35 columns per request cost more than that).
_WORKLIST_SELECT = (
    select(*WORKLIST_COLUMNS).join(Study.patient).outerjoin(Order, Order.id == Study.order_id)
)


def worklist_columns() -> Select[*tuple[Any, ...]]:
    return _WORKLIST_SELECT


# The page is chosen without the order (the patient_source filter has its own EXISTS), and
# the order is joined to the rows chosen: joined inside, it was probed for every backlog
# row the walk examined, not only for the page (bench/README.md, worklist results).
ORDER_COLUMNS = tuple(
    c for c in WORKLIST_COLUMNS if c.key.startswith("order_") and c.key != "order_id"
)
PAGE_SELECT = select(*(c for c in WORKLIST_COLUMNS if c not in ORDER_COLUMNS)).join(Study.patient)


class StudyLoad(enum.Enum):
    """What ``get_visible_study`` loads: the study row alone, with its site and patient,
    or as a ``WorklistRow`` (site, patient, unexpired claim, report status)."""

    STUDY = "study"
    SITE_AND_PATIENT = "site_and_patient"
    WORKLIST_ROW = "worklist_row"


@overload
async def get_visible_study(
    session: AsyncSession,
    *,
    study_uid: str,
    visible: ColumnElement[bool],
    load: Literal[StudyLoad.WORKLIST_ROW],
    lock: bool = False,
) -> WorklistRow | None: ...


@overload
async def get_visible_study(
    session: AsyncSession,
    *,
    study_uid: str,
    visible: ColumnElement[bool],
    load: Literal[StudyLoad.STUDY, StudyLoad.SITE_AND_PATIENT] = StudyLoad.STUDY,
    lock: bool = False,
) -> Study | None: ...


async def get_visible_study(
    session: AsyncSession,
    *,
    study_uid: str,
    visible: ColumnElement[bool],
    load: StudyLoad = StudyLoad.STUDY,
    lock: bool = False,
) -> Study | WorklistRow | None:
    """The study with this UID if ``visible`` admits it, else None: the one such fetch.

    ``visible`` is the caller's rule from ``worklist.studies.visibility`` (or an explicit,
    audited widening of it: a via study's ``prior_condition``), so a study the caller may
    not see is indistinguishable from a missing one. ``load`` says what comes with it.

    ``lock`` takes ``FOR NO KEY UPDATE`` on the study row until the transaction ends: it
    serialises changes to the study without blocking inserts that merely reference it
    (instances, claims, audit). Lock order for every change to a study and its claim: the
    study row first, then the claim row; keeping to it rules out deadlocks between claims,
    releases, report saves and the lease-expiry job. The row is always read afresh
    (``populate_existing``), so a copy the session held from before the lock is replaced.
    """
    where = (Study.study_uid == study_uid, visible)
    if load is StudyLoad.WORKLIST_ROW:
        rows_stmt = _worklist_rows().where(*where)
        if lock:
            rows_stmt = rows_stmt.with_for_update(of=Study, key_share=True)
        rows = await _rows(session, rows_stmt)
        return rows[0] if rows else None
    stmt = _studies_with_site_and_patient() if load is StudyLoad.SITE_AND_PATIENT else select(Study)
    stmt = stmt.where(*where).execution_options(populate_existing=True)
    if lock:
        # OF studies: the joined site and patient rows are read, not locked.
        stmt = stmt.with_for_update(of=Study, key_share=True)
    study: Study | None = (await session.scalars(stmt)).one_or_none()
    return study


async def get_worklist_columns(session: AsyncSession, *, study_id: int) -> RowMapping:
    """A study known to exist (e.g. locked in this transaction) as ``WORKLIST_COLUMNS``."""
    stmt = worklist_columns().where(Study.id == study_id)
    return (await session.execute(stmt)).mappings().one()


async def list_worklist_columns(
    session: AsyncSession,
    *,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
    limit: int,
) -> Sequence[RowMapping]:
    """Studies matching ``where`` as ``WORKLIST_COLUMNS``, in ``order_by``, at most ``limit``
    (e.g. the 28-day breach list of ``worklist.stats``)."""
    stmt = worklist_columns().where(*where).order_by(*order_by).limit(limit)
    return (await session.execute(stmt)).mappings().all()


async def list_series(session: AsyncSession, *, study_id: int) -> Sequence[Series]:
    """The study's series by series number."""
    stmt = (
        select(Series)
        .where(Series.study_id == study_id)
        .order_by(Series.number.asc().nulls_last(), Series.series_uid)
    )
    return (await session.scalars(stmt)).all()


def _prior_order(study: type[Study] | AliasedClass[Study]) -> tuple[ColumnElement[Any], ...]:
    return (
        study.study_datetime.desc().nulls_last(),
        study.received_at.desc(),
        study.id.desc(),
    )


def same_patient_condition(
    *,
    patient_id: int | BindParameter[int],
    nhs_number: str | BindParameter[str] | None,
    study: type[Study] | AliasedClass[Study] = Study,
) -> ColumnElement[bool]:
    """True for studies of the same patient at any site: the same patient row, or the same
    valid NHS number. The one rule priors and ``worklist/next``'s keep-together use.

    The patients are chosen first (primary key, NHS number index), then their studies by
    ``patient_id``: an OR across the joined study and patient rows could use neither
    index and scanned the backlog (0.5 s at 1M studies).
    """
    patient = aliased(Patient)
    same: ColumnElement[bool] = patient.id == patient_id
    # A bound NHS number (a statement compiled once) is normalised by the caller.
    normalised = (
        nhs_number if isinstance(nhs_number, BindParameter) else normalise_nhs_number(nhs_number)
    )
    if normalised is not None:
        same = or_(same, patient.nhs_number == normalised)
    return study.patient_id.in_(select(patient.id).where(same))


def prior_condition(study: Study) -> ColumnElement[bool]:
    """True for ``study``'s priors: the definition the detail lists and prior reads check.

    The patient's other studies at any site (``same_patient_condition``), the newest
    ``MAX_PRIORS`` of them. ``study`` must have its patient loaded.
    The subquery has its own aliases, so it never correlates with an outer ``Study``.
    """
    prior = aliased(Study)
    same_patient = same_patient_condition(
        patient_id=study.patient_id, nhs_number=study.patient.nhs_number, study=prior
    )
    newest = (
        select(prior.id)
        .where(prior.id != study.id, same_patient)
        .order_by(*_prior_order(prior))
        .limit(MAX_PRIORS)
    )
    return Study.id.in_(newest)


async def list_priors(session: AsyncSession, *, study: Study) -> list[WorklistRow]:
    """``study``'s priors (``prior_condition``), newest first."""
    stmt = _worklist_rows().where(prior_condition(study)).order_by(*_prior_order(Study))
    return await _rows(session, stmt)


async def get_prior(session: AsyncSession, *, study: Study, prior_uid: str) -> WorklistRow | None:
    """The prior of ``study`` with this UID, if it is one of the priors its detail lists."""
    return await get_visible_study(
        session, study_uid=prior_uid, visible=prior_condition(study), load=StudyLoad.WORKLIST_ROW
    )
