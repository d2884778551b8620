"""The matches both protocols are held to: studies to seed, cases written both ways.

Each case is a C-FIND identifier's keys and QIDO-RS parameters meaning the same match,
the ``Matching`` both must read, and what it finds (labels of seeded studies, series
``label/index`` or instances ``label/index/number``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from worklist.matching.values import DateRange, Level, Matching
from worklist.timezones import SITE_TIMEZONE

ROOT = "1.2.826.0.1.3680043.10.1138.990."
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SITE_TIMEZONE)


@dataclass(frozen=True)
class Seed:
    """One study of the fixture: its patient, keys and series (modality, instances)."""

    label: str
    site: str
    name: str
    patient_id: str
    accession: str | None
    description: str
    when: datetime | None
    series: tuple[tuple[str, int], ...]


SEEDS = [
    Seed(
        "smith",
        "RXA",
        "Smith^Anne",
        "A-1",
        "ACC-1",
        "CT Head",
        _local(2026, 11, 1, 9, 30),
        (("CT", 2), ("MR", 1)),
    ),
    Seed(
        "smyth",
        "RXB",
        "SMITH^ANNA",
        "B-2",
        "ACC-2",
        "Chest X-ray",
        _local(2026, 10, 20, 14),
        (("CR", 1),),
    ),
    # 00:30 on 1 August in London is 23:30 on 31 July in UTC: a StudyDate is the local day.
    Seed(
        "percent",
        "RXA",
        "100%^PURE",
        "P%1",
        "ACC%3",
        "MR knee",
        _local(2026, 8, 1, 0, 30),
        (("MR", 1),),
    ),
    Seed(
        "percent-decoy",
        "RXA",
        "100X^PURE",
        "PX1",
        "ACCX3",
        "MR knee",
        _local(2026, 7, 31, 12),
        (("MR", 1),),
    ),
    Seed(
        "low-line", "RXB", "LOW_LINE^Z", "P_5", "ACC_5", "US", _local(2026, 7, 1, 8), (("US", 1),)
    ),
    Seed(
        "low-line-decoy",
        "RXB",
        "LOWXLINE^Z",
        "PX5",
        "ACCX5",
        "US",
        _local(2026, 7, 1, 9),
        (("US", 1),),
    ),
    Seed(
        "backslash",
        "RXA",
        "BACK\\SLASH",
        "Q-7",
        "ACC-7",
        "XR",
        _local(2026, 6, 1, 10),
        (("DX", 1),),
    ),
    Seed("undated", "RXB", "NODATE^X", "Q-8", None, "XR", None, (("DX", 1),)),
]
ALL = {seed.label for seed in SEEDS}
# Fixed UIDs, so that cases can name them.
UID = {seed.label: f"{ROOT}{number}" for number, seed in enumerate(SEEDS, start=1)}


def series_uid(label: str, index: int) -> str:
    """The UID of a seeded study's series (by index)."""
    return f"{UID[label]}.{index + 1}"


def sop_uid(label: str, index: int, number: int) -> str:
    """The UID of a seeded instance (by series index and instance number)."""
    return f"{series_uid(label, index)}.{number}"


@dataclass(frozen=True)
class Case:
    """One match written both ways, what it is, and what it finds (labels)."""

    id: str
    dicom: dict[str, object]
    qido: dict[str, str]
    matching: Matching
    found: set[str]
    level: Level = Level.STUDY


S, SE, IM = Level.STUDY, Level.SERIES, Level.IMAGE
CASES = [
    Case("nothing", {}, {}, Matching(), ALL),
    Case("empty value", {"PatientName": ""}, {"PatientName": ""}, Matching(), ALL),
    Case("star alone", {"PatientName": "*"}, {"PatientName": "*"}, Matching(), ALL),
    # Universal: a study without an accession number matches too.
    Case("star on a null", {"AccessionNumber": "*"}, {"AccessionNumber": "*"}, Matching(), ALL),
    Case(
        "prefix, any case",
        {"PatientName": "smith*"},
        {"PatientName": "smith*"},
        Matching(patient_name="smith*"),
        {"smith", "smyth"},
    ),
    Case(
        "question marks",
        {"PatientName": "SM?TH^ANN?"},
        {"PatientName": "SM?TH^ANN?"},
        Matching(patient_name="SM?TH^ANN?"),
        {"smith", "smyth"},
    ),
    Case(
        "exact, any case",
        {"PatientName": "smith^anne"},
        {"PatientName": "smith^anne"},
        Matching(patient_name="smith^anne"),
        {"smith"},
    ),
    Case(
        "exact is whole",
        {"PatientName": "Smith"},
        {"PatientName": "Smith"},
        Matching(patient_name="Smith"),
        set(),
    ),
    Case(
        "literal percent",
        {"PatientName": "100%^PURE"},
        {"PatientName": "100%^PURE"},
        Matching(patient_name="100%^PURE"),
        {"percent"},
    ),
    Case(
        "literal percent before a wildcard",
        {"PatientName": "100%*"},
        {"PatientName": "100%*"},
        Matching(patient_name="100%*"),
        {"percent"},
    ),
    Case(
        "literal low line",
        {"PatientName": "low_line^z"},
        {"PatientName": "low_line^z"},
        Matching(patient_name="low_line^z"),
        {"low-line"},
    ),
    Case(
        "literal low line with wildcards",
        {"PatientName": "?OW_*"},
        {"PatientName": "?OW_*"},
        Matching(patient_name="?OW_*"),
        {"low-line"},
    ),
    Case(
        "literal backslash",
        {"PatientName": "BACK\\SLASH"},
        {"PatientName": "BACK\\SLASH"},
        Matching(patient_name="BACK\\SLASH"),
        {"backslash"},
    ),
    Case(
        "literal backslash before a wildcard",
        {"PatientName": "back\\s*"},
        {"PatientName": "back\\s*"},
        Matching(patient_name="back\\s*"),
        {"backslash"},
    ),
    Case(
        "patient ID exact, percent literal",
        {"PatientID": "P%1"},
        {"PatientID": "P%1"},
        Matching(patient_id="P%1"),
        {"percent"},
    ),
    Case(
        "patient ID prefix, low line literal",
        {"PatientID": "P_*"},
        {"PatientID": "P_*"},
        Matching(patient_id="P_*"),
        {"low-line"},
    ),
    Case(
        "patient ID is case-sensitive",
        {"PatientID": "a-1"},
        {"PatientID": "a-1"},
        Matching(patient_id="a-1"),
        set(),
    ),
    Case(
        "issuer is the site",
        {"IssuerOfPatientID": "RXB"},
        {"IssuerOfPatientID": "RXB"},
        Matching(issuer_of_patient_id="RXB"),
        {"smyth", "low-line", "low-line-decoy", "undated"},
    ),
    Case(
        "accession with a literal percent",
        {"AccessionNumber": "ACC%3"},
        {"AccessionNumber": "ACC%3"},
        Matching(accession_number="ACC%3"),
        {"percent"},
    ),
    Case(
        "description, any case",
        {"StudyDescription": "*x-RAY"},
        {"StudyDescription": "*x-RAY"},
        Matching(study_description="*x-RAY"),
        {"smyth"},
    ),
    Case(
        "one day",
        {"StudyDate": "20261101"},
        {"StudyDate": "20261101"},
        Matching(study_date=DateRange(date(2026, 11, 1), date(2026, 11, 1))),
        {"smith"},
    ),
    Case(
        "the local day, not the UTC one",
        {"StudyDate": "20260801"},
        {"StudyDate": "2026-08-01"},
        Matching(study_date=DateRange(date(2026, 8, 1), date(2026, 8, 1))),
        {"percent"},
    ),
    Case(
        "closed range",
        {"StudyDate": "20261020-20261101"},
        {"StudyDate": "20261020-20261101"},
        Matching(study_date=DateRange(date(2026, 10, 20), date(2026, 11, 1))),
        {"smith", "smyth"},
    ),
    Case(
        "range open at the end",
        {"StudyDate": "20261021-"},
        {"StudyDate": "20261021-"},
        Matching(study_date=DateRange(date(2026, 10, 21), None)),
        {"smith"},
    ),
    Case(
        "range open at the start",
        {"StudyDate": "-20260731"},
        {"StudyDate": "-20260731"},
        Matching(study_date=DateRange(None, date(2026, 7, 31))),
        {"percent-decoy", "low-line", "low-line-decoy", "backslash"},
    ),
    Case(
        "ACR-NEMA dates",
        {"StudyDate": "2026.07.01-2026.07.01"},
        {"StudyDate": "2026.07.01-2026.07.01"},
        Matching(study_date=DateRange(date(2026, 7, 1), date(2026, 7, 1))),
        {"low-line", "low-line-decoy"},
    ),
    Case(
        "UID list",
        {"StudyInstanceUID": [UID["smith"], UID["undated"]]},
        {"StudyInstanceUID": f"{UID['smith']},{UID['undated']}"},
        Matching(study_uids=(UID["smith"], UID["undated"])),
        {"smith", "undated"},
    ),
    Case(
        "UID list of one",
        {"StudyInstanceUID": UID["smyth"]},
        {"StudyInstanceUID": UID["smyth"]},
        Matching(study_uids=(UID["smyth"],)),
        {"smyth"},
    ),
    Case(
        "modality list",
        {"ModalitiesInStudy": ["MR", "US"]},
        {"ModalitiesInStudy": "MR,US"},
        Matching(modalities_in_study=("MR", "US")),
        {"smith", "percent", "percent-decoy", "low-line", "low-line-decoy"},
    ),
    Case(
        "modality wildcard",
        {"ModalitiesInStudy": "C*"},
        {"ModalitiesInStudy": "c*"},
        Matching(modalities_in_study=("C*",)),
        {"smith", "smyth"},
    ),
    Case(
        "keys together",
        {"PatientName": "smith*", "StudyDate": "-20261031"},
        {"PatientName": "smith*", "StudyDate": "-20261031"},
        Matching(patient_name="smith*", study_date=DateRange(None, date(2026, 10, 31))),
        {"smyth"},
    ),
    Case(
        "series keys do not narrow a study query",
        {"Modality": "DX", "SeriesInstanceUID": series_uid("smith", 0)},
        {"Modality": "DX", "SeriesInstanceUID": series_uid("smith", 0)},
        Matching(),
        ALL,
    ),
    Case(
        "series of a study by modality",
        {"StudyInstanceUID": UID["smith"], "Modality": "mr"},
        {"StudyInstanceUID": UID["smith"], "Modality": "mr"},
        Matching(level=SE, study_uids=(UID["smith"],), modalities=("MR",)),
        {"smith/1"},
        level=SE,
    ),
    Case(
        "series by number across studies",
        {"SeriesNumber": "1", "Modality": "US\\DX"},
        {"SeriesNumber": "1", "Modality": "US,DX"},
        Matching(level=SE, series_number=1, modalities=("US", "DX")),
        {"low-line/0", "low-line-decoy/0", "backslash/0", "undated/0"},
        level=SE,
    ),
    Case(
        "instances by UID list",
        {"SOPInstanceUID": [sop_uid("smith", 0, 2), sop_uid("percent", 0, 1)]},
        {"SOPInstanceUID": f"{sop_uid('smith', 0, 2)},{sop_uid('percent', 0, 1)}"},
        Matching(level=IM, sop_instance_uids=(sop_uid("smith", 0, 2), sop_uid("percent", 0, 1))),
        {"smith/0/2", "percent/0/1"},
        level=IM,
    ),
    Case(
        "instances by number and class",
        {
            "SeriesInstanceUID": series_uid("smith", 0),
            "InstanceNumber": "2",
            "SOPClassUID": CT_IMAGE,
        },
        {
            "SeriesInstanceUID": series_uid("smith", 0),
            "InstanceNumber": "2",
            "SOPClassUID": CT_IMAGE,
        },
        Matching(
            level=IM,
            series_uids=(series_uid("smith", 0),),
            instance_number=2,
            sop_class_uids=(CT_IMAGE,),
        ),
        {"smith/0/2"},
        level=IM,
    ),
]


def _labels() -> dict[str, str]:
    """Each seeded UID's label: ``study``, ``study/series index``, ``study/series/number``."""
    labels: dict[str, str] = {}
    for seed in SEEDS:
        labels[UID[seed.label]] = seed.label
        for index, (_, count) in enumerate(seed.series):
            labels[series_uid(seed.label, index)] = f"{seed.label}/{index}"
            for number in range(1, count + 1):
                labels[sop_uid(seed.label, index, number)] = f"{seed.label}/{index}/{number}"
    return labels


LABEL = _labels()


REFUSED = [
    ("StudyDate", "20261301"),
    ("StudyDate", "2026-1101"),
    ("StudyDate", "20261102-20261101"),
    ("StudyDate", "-"),
    ("StudyDate", "*"),
    ("StudyInstanceUID", "1.2.x"),
    ("StudyInstanceUID", "1..2"),
    ("StudyInstanceUID", "1.2.*"),
    ("SeriesNumber", "2147483648"),
]
