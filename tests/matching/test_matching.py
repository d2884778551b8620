"""One matcher: the same match as a C-FIND identifier and as QIDO-RS parameters is one
``Matching`` and finds the same rows, through the gateway's sync SQL and the API's async SQL.
"""

from __future__ import annotations

import asyncio
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode
from sqlalchemy import select, true
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.qr_match import InvalidIdentifier, parse_identifier
from dicom_gateway.qr_repository import find_matches
from tests.api.conftest import add_patient, add_site, add_study
from tests.matching.cases import (
    CASES,
    CT_IMAGE,
    LABEL,
    MR_IMAGE,
    REFUSED,
    SEEDS,
    UID,
    Case,
    series_uid,
    sop_uid,
)
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.dicomweb import repository
from worklist.dicomweb.query import parse_query
from worklist.errors import InvalidInput
from worklist.matching.values import Level, Matching
from worklist.models import Instance, Series, Site

# Peers send values pydicom would not write itself; that is what is being tested.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


def _identifier(case: Case) -> Dataset:
    """The case as a C-FIND identifier, encoded and decoded as it crosses the wire."""
    ds = Dataset()
    ds.QueryRetrieveLevel = case.level.value
    for keyword, value in case.dicom.items():
        setattr(ds, keyword, value)
    encoded = encode(ds, True, True)
    assert encoded is not None
    return decode(BytesIO(encoded), True, True)


def _seed(db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in ("RXA", "RXB")}
        for seed in SEEDS:
            patient = add_patient(
                session, sites[seed.site], local_id=seed.patient_id, name=seed.name
            )
            study = add_study(
                session,
                patient,
                study_uid=UID[seed.label],
                accession_number=seed.accession,
                description=seed.description,
                study_datetime=seed.when,
                modalities=sorted({modality for modality, _ in seed.series}),
            )
            for index, (modality, count) in enumerate(seed.series):
                series = Series(
                    study_id=study.id,
                    series_uid=series_uid(seed.label, index),
                    number=index + 1,
                    modality=modality,
                )
                session.add(series)
                session.flush()
                for number in range(1, count + 1):
                    session.add(
                        Instance(
                            study_id=study.id,
                            series_id=series.id,
                            sop_instance_uid=sop_uid(seed.label, index, number),
                            sop_class_uid=CT_IMAGE if modality == "CT" else MR_IMAGE,
                            transfer_syntax_uid="1.2.840.10008.1.2.1",
                            instance_number=number,
                            path=f"{seed.label}/{index}/{number}.dcm",
                            size_bytes=1,
                            received_at=study.received_at,
                        )
                    )


# The column of a gateway match that names it, by level.
_ROW_KEY = {Level.STUDY: "study_uid", Level.SERIES: "series_uid", Level.IMAGE: "sop_instance_uid"}


def _gateway_found(db: sessionmaker[Session], matching: Matching) -> set[str]:
    key = _ROW_KEY[matching.level]
    with db() as session:
        site_ids = set(session.scalars(select(Site.id)))
        rows = find_matches(session, matching, site_ids, 1000)
    return {LABEL[row[key]] for row in rows}


def _qido_found(database_url: str, matching: Matching) -> set[str]:
    async def go() -> set[str]:
        engine = make_async_engine(database_url)
        try:
            async with make_async_sessionmaker(engine)() as session:
                page = {"visible": true(), "matching": matching, "limit": 1000, "offset": 0}
                if matching.level is Level.STUDY:
                    studies = await repository.search_studies(session, **page)
                    return {LABEL[s.study_uid] for s in studies}
                if matching.level is Level.SERIES:
                    rows = await repository.search_series(session, **page)
                    return {LABEL[r.series.series_uid] for r in rows}
                found = await repository.search_instances(session, **page)
                return {LABEL[r.instance.sop_instance_uid] for r in found}
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_same_match_written_for_c_find_and_qido_is_one_matching_finding_the_same_rows(
    case: Case, db: sessionmaker[Session], database_url: str
) -> None:
    from_dicom = parse_identifier(_identifier(case))
    from_qido = parse_query(case.qido.items(), level=case.level).matching
    assert from_dicom == case.matching
    assert from_qido == case.matching

    _seed(db)
    assert _gateway_found(db, case.matching) == case.found
    assert _qido_found(database_url, case.matching) == case.found


@pytest.mark.parametrize(("keyword", "value"), REFUSED, ids=[f"{k}={v}" for k, v in REFUSED])
def test_a_value_refused_by_one_protocol_is_refused_by_the_other_naming_the_key(
    keyword: str, value: str
) -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    setattr(ds, keyword, value)
    with pytest.raises(InvalidIdentifier) as refused:
        parse_identifier(ds)
    assert refused.value.status == status.UNABLE_TO_PROCESS
    assert refused.value.reason == f"{keyword} has an invalid value"

    with pytest.raises(InvalidInput) as invalid:
        parse_query([(keyword, value)], level=Level.SERIES)
    assert str(invalid.value.detail).startswith(f"{keyword}: ")
