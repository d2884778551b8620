"""The demo seeds a routing rule list once; its studies each get the subspecialty their
description names."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_PASSWORD_COST, run_committed
from worklist.demo import DEMO_ROUTING_RULES, demo_studies, seed_accounts
from worklist.models import RoutingRule
from worklist.routing.matcher import StudyFacts, route


def test_the_demo_seeds_its_rules_once(db: sessionmaker[Session], database_url: str) -> None:
    first = run_committed(
        database_url, lambda session: seed_accounts(session, password_cost=TEST_PASSWORD_COST)
    )
    again = run_committed(
        database_url, lambda session: seed_accounts(session, password_cost=TEST_PASSWORD_COST)
    )

    assert "routing rules" in first
    assert "routing rules" not in again
    with db() as session:
        stored = session.scalars(select(RoutingRule.subspecialty).order_by(RoutingRule.position))
        assert list(stored) == [rule.subspecialty for rule in DEMO_ROUTING_RULES]


def test_each_demo_study_gets_the_subspecialty_its_description_names() -> None:
    routed = {
        study.spec.description: route(
            DEMO_ROUTING_RULES,
            StudyFacts(
                modalities=tuple(s.modality for s in study.spec.series),
                procedure_texts=(study.spec.description,),
                age_years=40,
            ),
        ).subspecialty
        for study in demo_studies()
    }

    assert routed == {
        "CT Head without contrast": "neuro",
        "CT Chest with contrast": "chest",
        "MRT Lendenwirbelsäule": "msk",
        "Zdjęcie klatki piersiowej PA": "chest",
        "CT Abdomen Pelvis": "abdomen",
        "Chest X-ray": "chest",
        "MR Knee left": "msk",
    }
