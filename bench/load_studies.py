"""Load a network-sized worklist database (default 1,000,000 studies) with PostgreSQL COPY.

    python -m bench.load_studies [--studies 1000000] [--reload]

A fresh database ``bench_worklist`` is created and migrated with ``worklist migrate``;
then 10 trusts (each with a DICOM node), ~200 users, patients with NHS numbers, the
studies, the claims of the studies being reported and the reports of the reported ones
are generated with numpy (fixed seed: the same data every time) and streamed with
``COPY ... FROM STDIN``, then ``VACUUM ANALYZE``. What was loaded (and how long it took)
is kept as the database's comment, so a later run reuses it unless ``--reload``.
``BENCH_WORKLIST_DATABASE`` names another database in its place (a copy made with
``createdb -T bench_worklist NAME`` and the comment copied: a branch's migrations are then
tried on the copy, never on the shared one).

Distributions (fractions of ``--studies``; see ``bench/README.md``):

- status: 95.7 % ``reported`` over three years; a backlog of 4.2 % ``ready`` (received
  over the last weeks, exponential with a 6-day mean, so many routine studies are overdue),
  0.03 % ``in_progress`` (claimed by a radiologist of the site, half with a draft report)
  and 0.05 % ``receiving`` (arrived in the last ten minutes);
- priority: routine-heavy, the backlog more so (stat and urgent studies are reported first);
  ``due_at`` = ``received_at`` + the default turnaround target of the priority;
- modality CR 28 %, CT 25 %, US 20 %, MR 15 %, XR 12 %, with matching descriptions and
  series/instance counts; trusts of unequal size (18 % down to 4 % of the studies);
- 0.4 patients per study; 95 % have an NHS number, 7 % of them are also known at a
  second trust under the same NHS number (priors across trusts); 139 surnames with a
  long-tailed (Zipf-Mandelbrot) distribution, from ~4 % of patients down to ~0.25 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from bench.shared.procs import BenchError, run_checked
from bench.shared.services import PG_HOST, PG_PORT, PG_USER, pg_admin_conninfo, worklist_cli
from worklist.auth.passwords import PasswordCost, hash_password
from worklist.config import DEFAULT_TURNAROUND, parse_duration_map
from worklist.enums import Priority
from worklist.identity import make_nhs_number
from worklist.routing.matcher import Routed, Rule, StudyFacts, route

DB_NAME = os.environ.get("BENCH_WORKLIST_DATABASE") or "bench_worklist"
DATA_VERSION = "worklist-v3"  # v3: routing rules, study subspecialties, readers' subspecialties
DEFAULT_STUDIES = 1_000_000
SEED = 20261123
BENCH_PASSWORD = "bench-worklist-password"
UID_ROOT = "1.2.826.0.1.3680043.9.7433.3"
COPY_CHUNK = 50_000

# (code, name, share of the network's studies)
SITES: tuple[tuple[str, str, float], ...] = (
    ("RXA", "Riverside Acute Hospitals NHS Trust", 0.18),
    ("RXB", "Bramley Teaching Hospitals NHS Foundation Trust", 0.15),
    ("RXC", "Castleford and District NHS Trust", 0.13),
    ("RXD", "Dunmore University Hospitals NHS Trust", 0.11),
    ("RXE", "Eastgate Healthcare NHS Trust", 0.10),
    ("RXF", "Fenwick Community Hospitals NHS Trust", 0.09),
    ("RXG", "Greystone Royal Infirmary NHS Foundation Trust", 0.08),
    ("RXH", "Harrowden Valley NHS Trust", 0.07),
    ("RXJ", "Juniper Coast Hospitals NHS Trust", 0.05),
    ("RXK", "Kingsmere Community Diagnostic Centre", 0.04),
)
RADIOLOGISTS = 180

STATUS_FRACTIONS = {"receiving": 0.0005, "in_progress": 0.0003, "ready": 0.042}
PRIORITIES = [p.value for p in Priority]
PRIORITY_P_BACKLOG = [0.005, 0.04, 0.12, 0.085, 0.75]
PRIORITY_P_REPORTED = [0.03, 0.09, 0.15, 0.08, 0.65]
TARGET_SECONDS = {
    key: int(value.total_seconds())
    for key, value in parse_duration_map(DEFAULT_TURNAROUND, tuple(PRIORITIES)).items()
}

# modality -> (share, (series min, max), (instances per series min, max), descriptions)
MODALITIES: dict[str, tuple[float, tuple[int, int], tuple[int, int], tuple[str, ...]]] = {
    "CR": (
        0.28,
        (1, 2),
        (1, 2),
        ("XR Chest PA", "XR Chest AP mobile", "XR Knee Left", "XR Hip Right", "XR Hand"),
    ),
    "CT": (
        0.25,
        (2, 6),
        (120, 600),
        (
            "CT Head",
            "CT Chest Abdomen Pelvis with contrast",
            "CT Pulmonary Angiogram",
            "CT Abdomen Pelvis",
            "CT Colonography",
            "CT Cervical Spine",
            "CT Chest High Resolution",
        ),
    ),
    "US": (
        0.20,
        (1, 3),
        (8, 40),
        ("US Abdomen", "US Pelvis Transvaginal", "US Renal Tract", "US Thyroid", "US Doppler DVT"),
    ),
    "MR": (
        0.15,
        (4, 10),
        (20, 200),
        (
            "MRI Brain",
            "MRI Lumbar Spine",
            "MRI Prostate multiparametric",
            "MRI Knee Right",
            "MRI Liver with contrast",
            "MRI Breast bilateral",
        ),
    ),
    "XR": (
        0.12,
        (1, 2),
        (1, 3),
        ("XR Abdomen", "XR Lumbar Spine", "XR Shoulder Left", "XR Foot Right", "XR Skull"),
    ),
}
REPORT_TEXTS = (
    "No acute abnormality.",
    "Appearances within normal limits for age. No focal lesion.",
    "Mild degenerative change. No fracture or dislocation.",
    "Small right pleural effusion. No consolidation. Heart size normal.",
    "Stable appearances compared with the prior examination.",
    "Indeterminate 6 mm nodule: follow-up imaging recommended in 3 months.",
)
SURNAMES = [
    "SMITH",
    "JONES",
    "TAYLOR",
    "BROWN",
    "WILLIAMS",
    "WILSON",
    "JOHNSON",
    "DAVIES",
    "PATEL",
    "WRIGHT",
    "ROBINSON",
    "WOOD",
    "THOMPSON",
    "EVANS",
    "WALKER",
    "WHITE",
    "ROBERTS",
    "GREEN",
    "HALL",
    "THOMAS",
    "CLARKE",
    "JACKSON",
    "HUGHES",
    "EDWARDS",
    "LEWIS",
    "KHAN",
    "HARRIS",
    "TURNER",
    "HILL",
    "COOPER",
    "WARD",
    "MORRIS",
    "KING",
    "HARRISON",
    "MORGAN",
    "BAKER",
    "PHILLIPS",
    "ALLEN",
    "CLARK",
    "JAMES",
    "SCOTT",
    "ADAMS",
    "CAMPBELL",
    "BAILEY",
    "PARKER",
    "MITCHELL",
    "BELL",
    "KELLY",
    "GRIFFITHS",
    "RICHARDSON",
    "REID",
    "WATSON",
    "ANDERSON",
    "YOUNG",
    "LEE",
    "MOORE",
    "MARTIN",
    "PRICE",
    "COOK",
    "SHAW",
    "CARTER",
    "BENNETT",
    "MURPHY",
    "GRAY",
    "COLLINS",
    "RICHARDS",
    "MARSHALL",
    "SIMPSON",
    "ELLIS",
    "CHAPMAN",
    "WEBB",
    "WALSH",
    "HUNT",
    "HUSSAIN",
    "ALI",
    "AHMED",
    "BEGUM",
    "SINGH",
    "KAUR",
    "OKAFOR",
    "ADEYEMI",
    "NGUYEN",
    "CHEN",
    "WONG",
    "KOWALSKI",
    "NOWAK",
    "MULLER",
    "ROSSI",
    "GARCIA",
    "FERNANDES",
    "SILVA",
    "OBRIEN",
    "MCCARTHY",
    "MACDONALD",
    "STEWART",
    "FRASER",
    "HENDERSON",
    "PRICHARD",
    "ATKINSON",
    "BUTCHER",
    "CRAWLEY",
    "DANBY",
    "ELSWORTH",
    "FAIRCLOUGH",
    "GOLIGHTLY",
    "HALLIWELL",
    "INGLEBY",
    "JOWETT",
    "KNOWLES",
    "LANGSTAFF",
    "MAPPLEBECK",
    "NETHERCOTT",
    "OUSBY",
    "PENNYFEATHER",
    "QUIGLEY",
    "RAMSBOTTOM",
    "SHUFFLEBOTTOM",
    "TWIGG",
    "UNDERHILL",
    "VICKERSTAFF",
    "WAINWRIGHT",
    "YARDLEY",
    "ZANDERS",
    "ABERNETHY",
    "BLENKINSOP",
    "CHOLMONDELEY",
    "DRINKWATER",
    "EWBANK",
    "FOTHERGILL",
    "GREENHALGH",
    "HIGGINBOTTOM",
    "ILLINGWORTH",
    "JESSOP",
    "KILBURN",
    "LOCKWOOD",
    "MIDGLEY",
    "NORCLIFFE",
    "OLDROYD",
    "POSTLETHWAITE",
]
GIVEN_NAMES = [
    "JOHN",
    "MARY",
    "DAVID",
    "SARAH",
    "JAMES",
    "ELIZABETH",
    "MICHAEL",
    "SUSAN",
    "PETER",
    "MARGARET",
    "ROBERT",
    "PATRICIA",
    "PAUL",
    "LINDA",
    "ANDREW",
    "KAREN",
    "MARK",
    "HELEN",
    "RICHARD",
    "JANE",
    "THOMAS",
    "EMMA",
    "DANIEL",
    "LAURA",
    "MOHAMMED",
    "FATIMA",
    "AHMED",
    "AISHA",
    "OLIVER",
    "AMELIA",
    "GEORGE",
    "ISLA",
    "HARRY",
    "AVA",
    "JACK",
    "GRACE",
    "NOAH",
    "SOPHIA",
    "ARJUN",
    "PRIYA",
    "CHIDI",
    "NGOZI",
    "PIOTR",
    "AGNIESZKA",
    "WEI",
    "MEI",
    "SEAN",
    "SIOBHAN",
]


@dataclass
class LoadInfo:
    """What is in ``bench_worklist`` and how long loading it took."""

    version: str
    studies: int
    seed: int
    patients: int
    users: int
    sites: int
    status_counts: dict[str, int]
    priority_counts_backlog: dict[str, int]
    load_seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    table_bytes: dict[str, int] = field(default_factory=dict)
    loaded_at: str = ""
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def database_url() -> str:
    """The SQLAlchemy URL of the benchmark database."""
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{DB_NAME}"


def conninfo() -> str:
    """libpq connection string of the benchmark database."""
    return pg_admin_conninfo(DB_NAME)


def read_comment() -> LoadInfo | None:
    """The LoadInfo kept as the database's comment, if the database exists and has one."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (DB_NAME,),
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        data = json.loads(row[0])
        return LoadInfo(**data)
    except (ValueError, TypeError):
        return None


def migrate_env() -> dict[str, str]:
    """Environment for ``worklist migrate`` on the benchmark database."""
    return {"WORKLIST_DATABASE_URL": database_url(), "WORKLIST_LOG_LEVEL": "WARNING"}


def ensure_loaded(
    *, studies: int = DEFAULT_STUDIES, reload: bool = False, seed: int = SEED
) -> LoadInfo:
    """Reuse ``bench_worklist`` when it holds this data set, else build it from scratch.

    A reused database is still brought to the newest migration (``worklist migrate``).
    """
    existing = None if reload else read_comment()
    if (
        existing is not None
        and existing.version == DATA_VERSION
        and existing.studies == studies
        and existing.seed == seed
    ):
        run_checked(worklist_cli("migrate"), env=migrate_env(), timeout=1800)
        existing.reused = True
        print(
            f"reusing {DB_NAME}: {existing.studies:,} studies loaded {existing.loaded_at} "
            f"in {existing.load_seconds:.0f} s (--reload to rebuild)",
            flush=True,
        )
        return existing
    return load(studies=studies, seed=seed)


# --------------------------------------------------------------------------- generation

# The routing rules the data set is loaded under (``routing_rules``), and each study's
# subspecialty from them (``worklist.routing.matcher``, on modality and description).
BENCH_RULES = (
    Rule(0, "breast", modality="MG"),
    Rule(1, "nuclear_medicine", modality="NM"),
    Rule(2, "neuro", procedure_pattern=r"head|brain|spine"),
    Rule(3, "vascular_ir", procedure_pattern=r"angio|doppler"),
    Rule(4, "chest", procedure_pattern=r"chest|thorax"),
    Rule(5, "msk", procedure_pattern=r"knee|hip|hand|shoulder"),
    Rule(6, "gu", procedure_pattern=r"renal|pelvis|prostate"),
    Rule(7, "abdomen", procedure_pattern=r"abdo|colon|liver"),
    Rule(8, "general"),
)
# A radiologist holds one or two of these (a third of them also general).
READER_SUBSPECIALTIES = ("neuro", "chest", "msk", "abdomen", "gu", "breast", "vascular_ir")


def routed(modality: str, description: str) -> Routed:
    """The subspecialty ``BENCH_RULES`` give a study of ``modality`` and ``description``."""
    return route(BENCH_RULES, StudyFacts(modalities=(modality,), procedure_texts=(description,)))


def _iso(epoch_seconds: np.ndarray) -> list[str]:
    """ISO timestamps (UTC) for COPY, from epoch seconds."""
    text = np.datetime_as_string(epoch_seconds.astype("datetime64[s]"), unit="s")
    return [f"{t}+00" for t in text.tolist()]


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[str],
) -> int:
    """COPY text-format lines (tab-separated, newline-terminated) into ``table``."""
    count = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        buffer: list[str] = []
        for line in rows:
            buffer.append(line)
            if len(buffer) >= COPY_CHUNK:
                copy.write("".join(buffer))
                count += len(buffer)
                buffer.clear()
        if buffer:
            copy.write("".join(buffer))
            count += len(buffer)
    return count


class _Timer:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        self.phases[name] = round(elapsed, 3)
        print(f"  {name:<28} {elapsed:7.1f} s", flush=True)
        return result


@dataclass
class _Users:
    """The generated accounts and, per site, the radiologists holding privileges there."""

    rows: list[str]
    user_sites: list[str]
    radiologists_by_site: list[np.ndarray]


def _make_users(rng: np.random.Generator, site_p: np.ndarray) -> _Users:
    password_hash = hash_password(BENCH_PASSWORD, cost=PasswordCost())
    rows: list[str] = []
    links: list[str] = []
    by_site: list[list[int]] = [[] for _ in SITES]
    user_id = 0
    for number in range(1, RADIOLOGISTS + 1):
        user_id += 1
        held = sorted(
            rng.choice(len(READER_SUBSPECIALTIES), size=int(rng.integers(1, 3)), replace=False)
        )
        codes = [READER_SUBSPECIALTIES[k] for k in held] + (["general"] if number % 3 == 0 else [])
        rows.append(
            f"{user_id}\trad{number:03d}\t{password_hash}\tradiologist\t{{{','.join(codes)}}}\n"
        )
        count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        for site in sorted(rng.choice(len(SITES), size=count, replace=False, p=site_p).tolist()):
            links.append(f"{user_id}\t{site + 1}\n")
            by_site[site].append(user_id)
    for site, (code, _name, _share) in enumerate(SITES):
        for role, prefix in (("manager", "mgr"), ("alert_client", "alerts")):
            user_id += 1
            rows.append(f"{user_id}\t{prefix}.{code.lower()}\t{password_hash}\t{role}\t{{}}\n")
            links.append(f"{user_id}\t{site + 1}\n")
    user_id += 1
    rows.append(f"{user_id}\tbench-admin\t{password_hash}\tadmin\t{{}}\n")
    for site, members in enumerate(by_site):
        if not members:  # every trust has at least one radiologist
            members.append(1 + site)
            links.append(f"{1 + site}\t{site + 1}\n")
    return _Users(rows, sorted(set(links)), [np.array(m) for m in by_site])


def load(*, studies: int = DEFAULT_STUDIES, seed: int = SEED) -> LoadInfo:
    """Recreate ``bench_worklist``, migrate it and COPY the whole data set in."""
    started = time.perf_counter()
    timer = _Timer()
    print(f"loading {studies:,} studies into {DB_NAME} (COPY) ...", flush=True)

    def recreate() -> None:
        with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        run_checked(worklist_cli("migrate"), env=migrate_env(), timeout=600)

    timer.run("create + worklist migrate", recreate)
    rng = np.random.default_rng(seed)
    now = int(datetime.now(UTC).timestamp())
    site_p = np.array([s[2] for s in SITES])
    site_p = site_p / site_p.sum()
    n_sites = len(SITES)

    users = timer.run("users (argon2 hash once)", lambda: _make_users(rng, site_p))

    # ---- patients
    n_patients = max(n_sites, int(studies * 0.4))
    patient_site = rng.choice(n_sites, size=n_patients, p=site_p)
    patient_site.sort(kind="stable")
    site_first = np.searchsorted(patient_site, np.arange(n_sites))
    site_count = np.bincount(patient_site, minlength=n_sites)
    # NHS "persons": 7 % of patient records reuse a person already known (another trust).
    person = np.arange(n_patients)
    shared = rng.random(n_patients) < 0.07
    person[shared] = rng.integers(0, n_patients, size=int(shared.sum()))
    has_nhs = rng.random(n_patients) < 0.95
    # Zipf-Mandelbrot over the list: SMITH ~4 %, the rarest names ~0.25 % of patients.
    surname_weight = 1.0 / (np.arange(len(SURNAMES)) + 10.0)
    surname_pick = rng.choice(
        len(SURNAMES), size=n_patients, p=surname_weight / surname_weight.sum()
    )
    given_pick = rng.integers(0, len(GIVEN_NAMES), size=n_patients)
    birth = (
        np.datetime64("1925-01-01")
        + rng.integers(0, 365 * 95, size=n_patients).astype("timedelta64[D]")
    ).astype(str)
    sex = rng.choice(np.array(["F", "M"]), size=n_patients)

    def patient_rows() -> Iterator[str]:
        nhs_cache: dict[int, str] = {}
        local = np.arange(n_patients) - site_first[patient_site]
        for i, (site, person_id, nhs_ok, sur, giv, dob, sx, loc) in enumerate(
            zip(
                patient_site.tolist(),
                person.tolist(),
                has_nhs.tolist(),
                surname_pick.tolist(),
                given_pick.tolist(),
                birth.tolist(),
                sex.tolist(),
                local.tolist(),
                strict=True,
            )
        ):
            if nhs_ok:
                nhs = nhs_cache.get(person_id)
                if nhs is None:
                    nhs = nhs_cache[person_id] = make_nhs_number(400_000_000 + 13 * person_id)
            else:
                nhs = "\\N"
            code = SITES[site][0]
            yield (
                f"{i + 1}\t{site + 1}\t{code}{loc + 1:07d}\t{nhs}\t"
                f"{SURNAMES[sur]}^{GIVEN_NAMES[giv]}\t{dob.replace('-', '')}\t{sx}\n"
            )

    # ---- studies (ids in arrival order, like the gateway assigns them)
    n_receiving = int(studies * STATUS_FRACTIONS["receiving"])
    n_progress = int(studies * STATUS_FRACTIONS["in_progress"])
    n_ready = int(studies * STATUS_FRACTIONS["ready"])
    n_reported = studies - n_receiving - n_progress - n_ready
    status = np.array(
        ["reported"] * n_reported
        + ["ready"] * n_ready
        + ["in_progress"] * n_progress
        + ["receiving"] * n_receiving
    )
    day = 86400
    age = np.empty(studies)
    age[:n_reported] = rng.uniform(0.5 * day, 1095 * day, size=n_reported)
    backlog = slice(n_reported, n_reported + n_ready + n_progress)
    age[backlog] = np.minimum(rng.exponential(6 * day, size=n_ready + n_progress), 60 * day)
    age[n_reported + n_ready + n_progress :] = rng.uniform(5, 600, size=n_receiving)
    received = now - age.astype(np.int64)
    order = np.argsort(received, kind="stable")
    received = received[order]
    status = status[order]
    is_backlog = status != "reported"
    priority_idx = np.where(
        is_backlog,
        rng.choice(len(PRIORITIES), size=studies, p=PRIORITY_P_BACKLOG),
        rng.choice(len(PRIORITIES), size=studies, p=PRIORITY_P_REPORTED),
    )
    targets = np.array([TARGET_SECONDS[p] for p in PRIORITIES])
    due = received + targets[priority_idx]
    study_site = rng.choice(n_sites, size=studies, p=site_p)
    study_patient = site_first[study_site] + (rng.random(studies) * site_count[study_site]).astype(
        np.int64
    )
    modality_names = list(MODALITIES)
    modality_p = np.array([MODALITIES[m][0] for m in modality_names])
    modality_idx = rng.choice(len(modality_names), size=studies, p=modality_p / modality_p.sum())
    desc_pick = rng.integers(0, 1000, size=studies)
    series_lo = np.array([MODALITIES[m][1][0] for m in modality_names])
    series_hi = np.array([MODALITIES[m][1][1] for m in modality_names])
    inst_lo = np.array([MODALITIES[m][2][0] for m in modality_names])
    inst_hi = np.array([MODALITIES[m][2][1] for m in modality_names])
    series_count = rng.integers(series_lo[modality_idx], series_hi[modality_idx] + 1)
    instance_count = series_count * rng.integers(inst_lo[modality_idx], inst_hi[modality_idx] + 1)
    acquired = received - rng.integers(300, 7200, size=studies)
    last_instance = np.minimum(received + rng.integers(5, 300, size=studies), now)
    flagged = (~is_backlog) & (rng.random(studies) < 0.001)

    routing: dict[tuple[str, str], tuple[str, str]] = {}
    for modality_name, spec in MODALITIES.items():
        for text in spec[3]:
            given = routed(modality_name, text)
            routing[modality_name, text] = (
                given.subspecialty or "\\N",
                "\\N" if given.rule is None else str(given.rule),
            )

    def study_rows() -> Iterator[str]:
        rec = _iso(received)
        due_s = _iso(due)
        acq = _iso(acquired)
        last = _iso(last_instance)
        for i in range(studies):
            site = int(study_site[i])
            modality = modality_names[modality_idx[i]]
            descriptions = MODALITIES[modality][3]
            description = descriptions[desc_pick[i] % len(descriptions)]
            study_id = i + 1
            yield (
                f"{study_id}\t{UID_ROOT}.{site + 1}.{study_id}\t{site + 1}\t"
                f"{study_patient[i] + 1}\t{SITES[site][0]}{study_id:08d}\t"
                f"{description}\t{acq[i]}\t{{{modality}}}\t"
                f"{PRIORITIES[priority_idx[i]]}\t{due_s[i]}\t{status[i]}\t{rec[i]}\t{last[i]}\t"
                f"{series_count[i]}\t{instance_count[i]}\t"
                f"{'{new_images_after_report}' if flagged[i] else '{}'}\t"
                f"{routing[modality, description][0]}\t{routing[modality, description][1]}\n"
            )

    # ---- claims (in_progress) and reports (reported: final; half of in_progress: draft)
    progress_ids = np.flatnonzero(status == "in_progress")
    reported_ids = np.flatnonzero(status == "reported")

    def radiologist_for(ids: np.ndarray) -> np.ndarray:
        result = np.empty(len(ids), dtype=np.int64)
        for site in range(n_sites):
            mask = study_site[ids] == site
            members = users.radiologists_by_site[site]
            result[mask] = members[rng.integers(0, len(members), size=int(mask.sum()))]
        return result

    claim_user = radiologist_for(progress_ids)
    claimed_at = now - rng.integers(60, 25 * 60, size=len(progress_ids))

    def claim_rows() -> Iterator[str]:
        claimed = _iso(claimed_at)
        expires = _iso(claimed_at + 1800)
        for j, study_index in enumerate(progress_ids.tolist()):
            yield f"{study_index + 1}\t{claim_user[j]}\t{claimed[j]}\t{expires[j]}\n"

    draft_ids = progress_ids[: len(progress_ids) // 2]
    report_study = np.concatenate([reported_ids, draft_ids])
    report_author = np.concatenate([radiologist_for(reported_ids), claim_user[: len(draft_ids)]])
    finalised_at = np.minimum(
        received[reported_ids] + rng.integers(600, 3 * day, size=len(reported_ids)), now
    )
    report_time = np.concatenate([finalised_at, claimed_at[: len(draft_ids)] + 30])
    report_text = rng.integers(0, len(REPORT_TEXTS), size=len(report_study))

    def report_rows() -> Iterator[str]:
        at = _iso(report_time)
        n_final = len(reported_ids)
        for j, study_index in enumerate(report_study.tolist()):
            final = j < n_final
            author = report_author[j]
            yield (
                f"{j + 1}\t{study_index + 1}\t{'final' if final else 'draft'}\t"
                f"{REPORT_TEXTS[report_text[j]]}\t1\t{author}\t{at[j]}\t{at[j]}\t"
                f"{at[j] if final else chr(92) + 'N'}\t{author if final else chr(92) + 'N'}\n"
            )

    def report_version_rows() -> Iterator[str]:
        at = _iso(report_time)
        n_final = len(reported_ids)
        for j in range(len(report_study)):
            yield (
                f"{j + 1}\t{j + 1}\t1\t{'final' if j < n_final else 'draft'}\t"
                f"{REPORT_TEXTS[report_text[j]]}\t{report_author[j]}\t{at[j]}\n"
            )

    with psycopg.connect(conninfo()) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        # No triggers for the load: demand's rollup marks (migration 0013) would mark
        # every past day of a data set the rollup does not hold yet, row by row.
        conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            for i, (code, name, _share) in enumerate(SITES):
                conn.execute(
                    "INSERT INTO sites (id, code, name) VALUES (%s, %s, %s)", (i + 1, code, name)
                )
                conn.execute(
                    "INSERT INTO dicom_nodes (site_id, ae_title, hosts) VALUES (%s, %s, %s)",
                    (i + 1, f"{code}_PACS", ["127.0.0.1"]),
                )
            timer.run(
                "COPY users",
                lambda: _copy(
                    conn,
                    "users",
                    ("id", "username", "password_hash", "role", "subspecialties"),
                    users.rows,
                ),
            )
            _copy(conn, "user_sites", ("user_id", "site_id"), users.user_sites)
            timer.run(
                f"COPY patients ({n_patients:,})",
                lambda: _copy(
                    conn,
                    "patients",
                    ("id", "site_id", "local_id", "nhs_number", "name", "birth_date", "sex"),
                    patient_rows(),
                ),
            )
            study_columns = (
                "id",
                "study_uid",
                "site_id",
                "patient_id",
                "accession_number",
                "description",
                "study_datetime",
                "modalities",
                "priority",
                "due_at",
                "status",
                "received_at",
                "last_instance_at",
                "series_count",
                "instance_count",
                "flags",
                "subspecialty",
                "subspecialty_rule",
            )
            for rule in BENCH_RULES:
                conn.execute(
                    "INSERT INTO routing_rules (position, subspecialty, modality, "
                    "procedure_pattern) VALUES (%s, %s, %s, %s)",
                    (rule.position, rule.subspecialty, rule.modality, rule.procedure_pattern),
                )
            timer.run(
                f"COPY studies ({studies:,})",
                lambda: _copy(conn, "studies", study_columns, study_rows()),
            )
            timer.run(
                f"COPY claims ({len(progress_ids):,})",
                lambda: _copy(
                    conn,
                    "claims",
                    ("study_id", "user_id", "claimed_at", "expires_at"),
                    claim_rows(),
                ),
            )
            report_columns = (
                "id",
                "study_id",
                "status",
                "text",
                "version",
                "author_id",
                "created_at",
                "updated_at",
                "finalised_at",
                "finalised_by_id",
            )
            timer.run(
                f"COPY reports ({len(report_study):,})",
                lambda: _copy(conn, "reports", report_columns, report_rows()),
            )
            timer.run(
                "COPY report_versions",
                lambda: _copy(
                    conn,
                    "report_versions",
                    ("id", "report_id", "version", "status", "text", "saved_by_id", "saved_at"),
                    report_version_rows(),
                ),
            )
            for table in ("sites", "dicom_nodes", "users", "patients", "studies", "reports"):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('report_versions', 'id'), "
                "(SELECT max(id) FROM report_versions))"
            )

    def vacuum() -> None:
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute("VACUUM (ANALYZE, FREEZE)")

    timer.run("VACUUM (ANALYZE, FREEZE)", vacuum)
    elapsed = time.perf_counter() - started
    info = LoadInfo(
        version=DATA_VERSION,
        studies=studies,
        seed=seed,
        patients=n_patients,
        users=len(users.rows),
        sites=n_sites,
        status_counts={s: int((status == s).sum()) for s in np.unique(status).tolist()},
        priority_counts_backlog={
            p: int(((priority_idx == k) & (status == "ready")).sum())
            for k, p in enumerate(PRIORITIES)
        },
        load_seconds=round(elapsed, 1),
        phase_seconds=timer.phases,
        table_bytes=table_sizes(),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        comment = json.dumps(info.as_dict()).replace("'", "''")
        conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{comment}'")
    print(f"loaded in {elapsed:.0f} s", flush=True)
    return info


def table_sizes() -> dict[str, int]:
    """Total bytes (heap + indexes + TOAST) of the main tables."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname IN ('studies', 'patients', 'reports', 'report_versions', 'claims')"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def refresh_claims(min_lease: timedelta = timedelta(minutes=30)) -> int:
    """Renew the leases of the loaded claims (the radiologists are at work during the run)."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        cur = conn.execute(
            "UPDATE claims SET expires_at = now() + %s WHERE expires_at < now() + %s",
            (min_lease, min_lease / 2),
        )
        return cur.rowcount


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load_studies", description="Load the worklist benchmark database."
    )
    parser.add_argument("--studies", type=int, default=DEFAULT_STUDIES)
    parser.add_argument("--reload", action="store_true", help="rebuild even if already loaded")
    args = parser.parse_args(argv)
    try:
        info = ensure_loaded(studies=args.studies, reload=args.reload)
    except BenchError as exc:
        print(f"LOAD FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
