"""DICOM JSON (PS3.18 F.2) for QIDO-RS results built from the index rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worklist.dicomweb.query import QidoQuery
from worklist.models import Instance, Series, Study
from worklist.timezones import SITE_TIMEZONE

# Study dates in DICOM carry no zone; the gateway stores them as Europe/London times.
UTF8_CHARSET = "ISO_IR 192"
ONLINE = "ONLINE"

SPECIFIC_CHARACTER_SET = "00080005"
SOP_CLASS_UID = "00080016"
SOP_INSTANCE_UID = "00080018"
STUDY_DATE = "00080020"
STUDY_TIME = "00080030"
ACCESSION_NUMBER = "00080050"
INSTANCE_AVAILABILITY = "00080056"
MODALITIES_IN_STUDY = "00080061"
MODALITY = "00080060"
REFERRING_PHYSICIAN_NAME = "00080090"
STUDY_DESCRIPTION = "00081030"
SERIES_DESCRIPTION = "0008103E"
RETRIEVE_URL = "00081190"
AVAILABLE_TRANSFER_SYNTAX_UID = "00083002"
PATIENT_NAME = "00100010"
PATIENT_ID = "00100020"
ISSUER_OF_PATIENT_ID = "00100021"
PATIENT_BIRTH_DATE = "00100030"
PATIENT_SEX = "00100040"
STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
STUDY_ID = "00200010"
SERIES_NUMBER = "00200011"
INSTANCE_NUMBER = "00200013"
NUMBER_OF_STUDY_RELATED_SERIES = "00201206"
NUMBER_OF_STUDY_RELATED_INSTANCES = "00201208"
NUMBER_OF_SERIES_RELATED_INSTANCES = "00201209"

JsonDataset = dict[str, dict[str, Any]]


def element(vr: str, *values: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; no ``Value`` when every value is empty."""
    present = [v for v in values if v is not None and v != ""]
    return {"vr": vr, "Value": present} if present else {"vr": vr}


def person_name(name: str | None) -> dict[str, Any]:
    """A PN attribute: the stored ``a=i=p`` groups as Alphabetic/Ideographic/Phonetic."""
    if not name:
        return {"vr": "PN"}
    groups = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), name.split("="), strict=False))
    return {"vr": "PN", "Value": [{k: v for k, v in groups.items() if v}]}


def _local(when: datetime | None) -> datetime | None:
    return when.astimezone(SITE_TIMEZONE) if when is not None else None


def study_url(base_url: str, study_uid: str) -> str:
    """The WADO-RS URL of a study."""
    return f"{base_url}/dicomweb/studies/{study_uid}"


def series_url(base_url: str, study_uid: str, series_uid: str) -> str:
    """The WADO-RS URL of a series."""
    return f"{study_url(base_url, study_uid)}/series/{series_uid}"


def instance_url(base_url: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    """The WADO-RS URL of an instance."""
    return f"{series_url(base_url, study_uid, series_uid)}/instances/{sop_uid}"


def study_attributes(study: Study, base_url: str) -> JsonDataset:
    """Study-level attributes of a study loaded with its patient and site."""
    local = _local(study.study_datetime)
    patient = study.patient
    return {
        SPECIFIC_CHARACTER_SET: element("CS", UTF8_CHARSET),
        STUDY_DATE: element("DA", local.strftime("%Y%m%d") if local else None),
        STUDY_TIME: element("TM", local.strftime("%H%M%S") if local else None),
        ACCESSION_NUMBER: element("SH", study.accession_number),
        INSTANCE_AVAILABILITY: element("CS", ONLINE),
        MODALITIES_IN_STUDY: element("CS", *study.modalities),
        REFERRING_PHYSICIAN_NAME: element("PN"),
        STUDY_DESCRIPTION: element("LO", study.description),
        RETRIEVE_URL: element("UR", study_url(base_url, study.study_uid)),
        PATIENT_NAME: person_name(patient.name),
        PATIENT_ID: element("LO", patient.local_id),
        ISSUER_OF_PATIENT_ID: element("LO", study.site.code),
        PATIENT_BIRTH_DATE: element(
            "DA", patient.birth_date.strftime("%Y%m%d") if patient.birth_date else None
        ),
        PATIENT_SEX: element("CS", patient.sex),
        STUDY_INSTANCE_UID: element("UI", study.study_uid),
        STUDY_ID: element("SH"),
        NUMBER_OF_STUDY_RELATED_SERIES: element("IS", study.series_count),
        NUMBER_OF_STUDY_RELATED_INSTANCES: element("IS", study.instance_count),
    }


def series_attributes(series: Series, study_uid: str, base_url: str) -> JsonDataset:
    """Series-level attributes (with the Study Instance UID that places the series)."""
    return {
        MODALITY: element("CS", series.modality),
        SERIES_DESCRIPTION: element("LO", series.description),
        RETRIEVE_URL: element("UR", series_url(base_url, study_uid, series.series_uid)),
        STUDY_INSTANCE_UID: element("UI", study_uid),
        SERIES_INSTANCE_UID: element("UI", series.series_uid),
        SERIES_NUMBER: element("IS", series.number),
        NUMBER_OF_SERIES_RELATED_INSTANCES: element("IS", series.instance_count),
    }


def instance_attributes(
    instance: Instance, series_uid: str, study_uid: str, base_url: str
) -> JsonDataset:
    """Instance-level attributes (with the UIDs that place the instance)."""
    return {
        SOP_CLASS_UID: element("UI", instance.sop_class_uid),
        SOP_INSTANCE_UID: element("UI", instance.sop_instance_uid),
        INSTANCE_AVAILABILITY: element("CS", ONLINE),
        RETRIEVE_URL: element(
            "UR", instance_url(base_url, study_uid, series_uid, instance.sop_instance_uid)
        ),
        AVAILABLE_TRANSFER_SYNTAX_UID: element("UI", instance.transfer_syntax_uid),
        STUDY_INSTANCE_UID: element("UI", study_uid),
        SERIES_INSTANCE_UID: element("UI", series_uid),
        INSTANCE_NUMBER: element("IS", instance.instance_number),
    }


def compose(query: QidoQuery, own: JsonDataset, *parents: JsonDataset) -> JsonDataset:
    """A result: the level's own attributes plus the parents' that ``includefield`` asks for."""
    result = dict(own)
    for parent in parents:
        for tag, value in parent.items():
            if tag not in result and (query.include_all or tag in query.include_tags):
                result[tag] = value
    return dict(sorted(result.items()))
