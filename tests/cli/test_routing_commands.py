"""`worklist subspecialty list|add` and `worklist routing list|set|add|test`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_site, add_study
from tests.cli.conftest import Invoke
from worklist.enums import AuditAction
from worklist.models import AuditEvent, RoutingRule, Study, Subspecialty

RULES = [
    {"subspecialty": "paediatric", "max_age_years": 16},
    {"subspecialty": "neuro", "modality": "CT", "body_part": "HEAD"},
    {"subspecialty": "chest", "procedure_pattern": "chest|thorax"},
]


def rules_file(tmp_path: Path, content: object) -> str:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


def stored_rules(db: sessionmaker[Session]) -> list[tuple[int, str]]:
    with db() as session:
        rows = session.scalars(select(RoutingRule).order_by(RoutingRule.position))
        return [(rule.position, rule.subspecialty) for rule in rows]


def test_subspecialty_add_then_list_and_give_it_to_a_user(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    added = invoke("subspecialty", "add", "cardiac_ct", "--name", "Cardiac CT")
    assert added.exit_code == 0, added.output
    assert "cardiac_ct" in added.output

    listed = invoke("subspecialty", "list")
    assert listed.exit_code == 0, listed.output
    assert "cardiac_ct" in listed.output
    assert "Cardiac CT" in listed.output
    assert "nuclear_medicine" in listed.output
    with db() as session:
        assert session.get(Subspecialty, "cardiac_ct") is not None
        [row] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.SUBSPECIALTY_ADDED)
        )
        assert row.actor.startswith("cli:")
    with db() as session, session.begin():
        add_site(session, "RXA")
    user = invoke(
        "user", "add", "dr.heart", "--role", "radiologist", "--site", "RXA",
        "--home-site", "RXA", "--subspecialty", "cardiac_ct", "--password-stdin",
        input="a-long-enough-password\n",
    )  # fmt: skip
    assert user.exit_code == 0, user.output


def test_subspecialty_add_refuses_a_bad_or_existing_code(invoke: Invoke) -> None:
    bad = invoke("subspecialty", "add", "Bad-Code", "--name", "X")
    assert bad.exit_code == 1
    assert "code" in bad.output

    again = invoke("subspecialty", "add", "neuro", "--name", "Again")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_routing_set_from_a_file_lists_and_reroutes(
    invoke: Invoke, db: sessionmaker[Session], tmp_path: Path
) -> None:
    with db() as session, session.begin():
        add_study(session, add_patient(session, add_site(session, "RXA")), body_part="HEAD")

    result = invoke("routing", "set", rules_file(tmp_path, RULES))

    assert result.exit_code == 0, result.output
    assert "3 rules set; 1 unreported studies re-routed" in result.output
    assert stored_rules(db) == [(0, "paediatric"), (1, "neuro"), (2, "chest")]
    with db() as session:
        study = session.scalars(select(Study)).one()
        assert (study.subspecialty, study.subspecialty_rule) == ("neuro", 1)
    listed = invoke("routing", "list")
    assert listed.exit_code == 0, listed.output
    assert "chest|thorax" in listed.output
    assert "paediatric" in listed.output


def test_routing_set_takes_the_api_shape_too(
    invoke: Invoke, db: sessionmaker[Session], tmp_path: Path
) -> None:
    result = invoke("routing", "set", rules_file(tmp_path, {"rules": RULES[:1]}))

    assert result.exit_code == 0, result.output
    assert stored_rules(db) == [(0, "paediatric")]


def test_routing_set_refuses_an_invalid_file_and_keeps_the_rules(
    invoke: Invoke, db: sessionmaker[Session], tmp_path: Path
) -> None:
    invoke("routing", "set", rules_file(tmp_path, RULES))

    for content in (
        [{"subspecialty": "dermatology"}],
        [{"subspecialty": "neuro", "procedure_pattern": "(("}],
        [{"subspecialty": "neuro", "age": 3}],
    ):
        result = invoke("routing", "set", rules_file(tmp_path, content))
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ")
    missing = invoke("routing", "set", str(tmp_path / "missing.json"))
    assert missing.exit_code == 1
    assert len(stored_rules(db)) == 3


def test_routing_add_inserts_a_rule_where_asked(
    invoke: Invoke, db: sessionmaker[Session], tmp_path: Path
) -> None:
    invoke("routing", "set", rules_file(tmp_path, RULES))

    at_end = invoke("routing", "add", "--subspecialty", "general")
    first = invoke(
        "routing", "add", "--subspecialty", "breast", "--modality", "mg", "--position", "0"
    )

    assert at_end.exit_code == 0, at_end.output
    assert first.exit_code == 0, first.output
    assert stored_rules(db) == [
        (0, "breast"), (1, "paediatric"), (2, "neuro"), (3, "chest"), (4, "general"),
    ]  # fmt: skip
    with db() as session:
        assert session.get(RoutingRule, 0).modality == "MG"  # type: ignore[union-attr]


def test_routing_test_names_the_matching_rule(
    invoke: Invoke, db: sessionmaker[Session], tmp_path: Path
) -> None:
    invoke("routing", "set", rules_file(tmp_path, RULES))

    child = invoke("routing", "test", "--modality", "CT", "--body-part", "HEAD", "--age", "9")
    adult = invoke("routing", "test", "--modality", "CT", "--body-part", "head", "--age", "40")
    chest = invoke("routing", "test", "--procedure", "XR Chest PA")
    none = invoke("routing", "test", "--modality", "US")

    assert "rule 0 matches: subspecialty paediatric" in child.output
    assert "rule 1 matches: subspecialty neuro" in adult.output
    assert "rule 2 matches: subspecialty chest" in chest.output
    assert "no rule matches" in none.output
