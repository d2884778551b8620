"""Demo data for `worklist up --demo`: three trusts, their users, and studies sent over DICOM.

Everything here is idempotent: trusts, nodes and users that exist are left alone,
and studies already in the index are not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit.repository import ActorKind
from worklist.auth.passwords import PasswordCost
from worklist.db import run_in_transaction
from worklist.enums import Role
from worklist.errors import DomainError
from worklist.identity import make_nhs_number
from worklist.models import Study
from worklist.routing import repository as routing_repository
from worklist.routing import service as routing_service
from worklist.routing.matcher import Rule
from worklist.sites import repository as site_repository
from worklist.sites.service import Actor, register_site_node
from worklist.synthetic import (
    SOP_CLASS_BY_MODALITY,
    PatientSpec,
    SeriesSpec,
    StudySpec,
    iter_instances,
    new_uid,
)
from worklist.users import repository as user_repository
from worklist.users.service import create_user

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-password"
DEMO_HOSTS = ["127.0.0.1", "::1"]
STATUS_SUCCESS = 0x0000


@dataclass(frozen=True)
class DemoSite:
    """A demo trust and the AE title its PACS sends from."""

    code: str
    name: str
    ae_title: str


@dataclass(frozen=True)
class DemoUser:
    """A demo account."""

    username: str
    role: Role
    sites: tuple[str, ...] = ()
    note: str = ""


DEMO_SITES = (
    DemoSite("RXA", "Riverside Acute Hospitals NHS Trust", "RXA_PACS"),
    DemoSite("RXB", "Bridgeford Teaching Hospitals NHS Trust", "RXB_PACS"),
    DemoSite("RXC", "Coastal Community Health NHS Trust", "RXC_PACS"),
)

DEMO_USERS = (
    DemoUser("dr.patel", Role.RADIOLOGIST, ("RXA", "RXB"), "radiologist at RXA and RXB"),
    DemoUser("dr.jones", Role.RADIOLOGIST, ("RXC",), "radiologist at RXC"),
    DemoUser("manager.rxa", Role.MANAGER, ("RXA",), "manager of RXA"),
    DemoUser("manager.rxb", Role.MANAGER, ("RXB",), "manager of RXB"),
    DemoUser("manager.rxc", Role.MANAGER, ("RXC",), "manager of RXC"),
    DemoUser("admin", Role.ADMIN, (), "network admin"),
    DemoUser("alerts.rxa", Role.ALERT_CLIENT, ("RXA",), "alerting system of RXA"),
)


@dataclass
class DemoStudy:
    """A synthetic study and the trust that sends it."""

    site: str
    spec: StudySpec
    instance_count: int = field(init=False)

    def __post_init__(self) -> None:
        self.instance_count = sum(series.count for series in self.spec.series)


def _series(key: str, modality: str, count: int, description: str) -> SeriesSpec:
    return SeriesSpec(
        modality=modality,
        count=count,
        description=description,
        series_uid=new_uid(f"worklist-demo-series-{key}"),
    )


def _study(
    key: str,
    site: str,
    patient: PatientSpec,
    *,
    accession: str,
    description: str,
    when: datetime,
    priority: str | None,
    series: list[SeriesSpec],
) -> DemoStudy:
    spec = StudySpec(
        patient=patient,
        series=series,
        study_uid=new_uid(f"worklist-demo-study-{key}"),
        accession_number=accession,
        description=description,
        study_datetime=when,
        requested_priority=priority,
    )
    return DemoStudy(site=site, spec=spec)


def demo_studies() -> list[DemoStudy]:
    """The demo studies: shared patients (priors across trusts), non-ASCII names, mixed work."""
    shared_nhs = make_nhs_number(4_857_773)
    smith_a = PatientSpec("RXA100234", "SMITH^JOHN", shared_nhs, "19580312", "M")
    smith_b = PatientSpec("B-55-0192", "SMITH^JOHN^A", shared_nhs, "19580312", "M")
    muller = PatientSpec(
        "RXB200871", "MÜLLER^JÜRGEN", make_nhs_number(7_123_401), "19721105", "M", "ISO_IR 100"
    )
    zielinska = PatientSpec(
        "C0009913", "ZIELIŃSKA^ŁUCJA", make_nhs_number(3_210_987), "19890220", "F", "ISO_IR 192"
    )
    okafor_a = PatientSpec("RXA100977", "OKAFOR^GRACE", make_nhs_number(5_550_123), "19450630", "F")
    okafor_c = PatientSpec("C0004410", "OKAFOR^GRACE", okafor_a.nhs_number, "19450630", "F")
    evans = PatientSpec("RXA101500", "EVANS^CARYS", None, "20010915", "F")
    return [
        _study(
            "smith-ct-head", "RXA", smith_a, accession="RXA-CT-1001",
            description="CT Head without contrast", when=datetime(2026, 11, 2, 8, 15),
            priority="STAT", series=[_series("smith-ct-head-1", "CT", 4, "Axial 5mm")],
        ),
        _study(
            "smith-ct-chest-prior", "RXB", smith_b, accession="RXB-CT-7750",
            description="CT Chest with contrast", when=datetime(2025, 6, 19, 14, 0),
            priority="ROUTINE", series=[_series("smith-ct-chest-1", "CT", 3, "Axial 1mm")],
        ),
        _study(
            "muller-mr-spine", "RXB", muller, accession="RXB-MR-7812",
            description="MRT Lendenwirbelsäule", when=datetime(2026, 11, 1, 16, 40),
            priority="HIGH",
            series=[
                _series("muller-mr-1", "MR", 2, "Sag T1"),
                _series("muller-mr-2", "MR", 2, "Sag T2"),
            ],
        ),
        _study(
            "zielinska-cr-chest", "RXC", zielinska, accession="RXC-CR-3301",
            description="Zdjęcie klatki piersiowej PA", when=datetime(2026, 11, 2, 7, 5),
            priority="ROUTINE", series=[_series("zielinska-cr-1", "CR", 1, "PA")],
        ),
        _study(
            "okafor-ct-abdo", "RXA", okafor_a, accession="RXA-CT-1002",
            description="CT Abdomen Pelvis", when=datetime(2026, 11, 2, 9, 45),
            priority="HIGH", series=[_series("okafor-ct-abdo-1", "CT", 3, "Portal venous")],
        ),
        _study(
            "okafor-cr-prior", "RXC", okafor_c, accession="RXC-CR-2950",
            description="Chest X-ray", when=datetime(2024, 3, 8, 11, 20),
            priority=None, series=[_series("okafor-cr-1", "CR", 1, "AP")],
        ),
        _study(
            "evans-mr-knee", "RXA", evans, accession="RXA-MR-1003",
            description="MR Knee left", when=datetime(2026, 10, 30, 13, 0),
            priority="ROUTINE", series=[_series("evans-mr-knee-1", "MR", 3, "PD fat sat")],
        ),
    ]  # fmt: skip


# A small rule list (docs/routing.md): the demo descriptions name the body part, in
# English, German and Polish.
DEMO_ROUTING_RULES = (
    Rule(0, "paediatric", max_age_years=16),
    Rule(1, "neuro", procedure_pattern=r"head|brain"),
    Rule(2, "chest", procedure_pattern=r"chest|klatki"),
    Rule(3, "abdomen", procedure_pattern=r"abdomen"),
    Rule(4, "msk", procedure_pattern=r"knee|spine|wirbels"),
    Rule(5, "general"),
)


async def seed_accounts(session: AsyncSession, *, password_cost: PasswordCost) -> list[str]:
    """Create the demo trusts, their PACS nodes and users that do not exist yet, and the
    demo routing rules when there are none."""
    created: list[str] = []
    for site in DEMO_SITES:
        if await site_repository.get_node_by_ae_title(session, site.ae_title) is None:
            await register_site_node(
                session=session,
                code=site.code,
                name=site.name,
                ae_title=site.ae_title,
                hosts=DEMO_HOSTS,
                port=None,
                webhook_url=None,
            )
            created.append(f"site {site.code}")
    for user in DEMO_USERS:
        if await user_repository.get_user(session, user.username) is None:
            await create_user(
                session=session,
                username=user.username,
                password=DEMO_PASSWORD,
                password_cost=password_cost,
                role=user.role,
                site_codes=list(user.sites),
            )
            created.append(f"user {user.username}")
    if not await routing_repository.list_rules(session):
        demo = Actor(name="demo", kind=ActorKind.SYSTEM)
        await routing_service.replace_rules(session, actor=demo, rules=DEMO_ROUTING_RULES)
        created.append("routing rules")
    return created


async def missing_studies(session: AsyncSession, studies: list[DemoStudy]) -> list[DemoStudy]:
    """The demo studies not yet fully in the index."""
    wanted = {s.spec.study_uid: s for s in studies}
    rows = await session.execute(
        select(Study.study_uid, Study.instance_count).where(Study.study_uid.in_(wanted))
    )
    counts = dict(rows.all())
    return [s for uid, s in wanted.items() if counts.get(uid, 0) < s.instance_count]


def send_studies(
    studies: list[DemoStudy],
    *,
    host: str,
    port: int,
    called_ae_title: str,
    on_sent: Callable[[DemoStudy], None] | None = None,
) -> int:
    """C-STORE every instance of ``studies`` to the gateway from its trust's AE title."""
    ae_titles = {site.code: site.ae_title for site in DEMO_SITES}
    sent = 0
    for study in studies:
        calling = ae_titles[study.site]
        ae = AE(ae_title=calling)
        for sop_class in SOP_CLASS_BY_MODALITY.values():
            ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
        assoc = ae.associate(host, port, ae_title=called_ae_title)
        if not assoc.is_established:
            raise DomainError(
                f"the gateway at {host}:{port} refused the demo association from {calling}"
            )
        try:
            for instance in iter_instances(study.spec):
                _store(assoc, instance)
                sent += 1
        finally:
            assoc.release()
        if on_sent is not None:
            on_sent(study)
    return sent


def _store(assoc: Any, instance: Dataset) -> None:
    response = assoc.send_c_store(instance)
    status = getattr(response, "Status", None)
    if status != STATUS_SUCCESS:
        shown = "no response" if status is None else f"0x{status:04X}"
        raise DomainError(
            f"the gateway did not store demo instance {instance.SOPInstanceUID}: {shown}"
        )


def seed_demo_accounts(database_url: str, *, password_cost: PasswordCost) -> None:
    """Seed the demo trusts and users in their own transaction."""
    created = run_in_transaction(
        database_url,
        lambda session: seed_accounts(session, password_cost=password_cost),
        application_name="worklist-demo",
    )
    if created:
        log.info("demo accounts created", extra={"accounts": ",".join(created)})


def send_demo_studies(*, database_url: str, host: str, port: int, called_ae_title: str) -> None:
    """Send the demo studies the index does not hold yet to the running gateway."""
    todo = run_in_transaction(
        database_url,
        lambda session: missing_studies(session, demo_studies()),
        application_name="worklist-demo",
    )
    sent = send_studies(todo, host=host, port=port, called_ae_title=called_ae_title)
    log.info("demo studies sent", extra={"studies": len(todo), "instances": sent})


def demo_instructions(
    *, api_url: str, gateway_ae_title: str, gateway_address: str, stable_seconds: float
) -> list[str]:
    """Banner lines: the demo accounts and how to log in and send more studies."""
    user = DEMO_USERS[0].username
    extract_token = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return [
        "",
        f"Demo users (password {DEMO_PASSWORD!r}):",
        *(f"  {u.username:<12} {u.role.value:<12} {u.note}" for u in DEMO_USERS),
        "",
        "Log in and read the worklist:",
        f"  TOKEN=$(curl -s {api_url}/api/v1/auth/token -d username={user} "
        f"-d password={DEMO_PASSWORD} | {extract_token})",
        f'  curl -s -H "Authorization: Bearer $TOKEN" '
        f"'{api_url}/api/v1/worklist?status=receiving&status=ready'",
        f"Studies turn ready after {stable_seconds:g}s without new instances "
        "(WORKLIST_STUDY_STABLE_SECONDS).",
        "Send more from a demo trust's PACS, e.g.:",
        f"  storescu -aet {DEMO_SITES[0].ae_title} -aec {gateway_ae_title} "
        f"{gateway_address} FILE.dcm",
    ]
