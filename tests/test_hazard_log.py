"""Every control in the hazard log names tests that exist: a control without a test is none."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_test_the_hazard_log_cites_exists() -> None:
    text = (ROOT / "docs" / "hazard-log.md").read_text()
    cited = CITED.findall(text)
    assert len(cited) > 40
    defined: dict[str, set[str]] = {}
    for path in {path for path, _ in cited}:
        tree = ast.parse((ROOT / path).read_text())
        defined[path] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    missing = [f"{path}::{name}" for path, name in cited if name not in defined[path]]
    assert missing == []


def test_every_hazard_has_controls_with_tests() -> None:
    text = (ROOT / "docs" / "hazard-log.md").read_text()
    sections = re.split(r"^## (HAZ-\d+)", text, flags=re.MULTILINE)[1:]
    hazards = dict(zip(sections[::2], sections[1::2], strict=True))
    assert set(hazards) == {f"HAZ-{n:02d}" for n in range(1, 8)}
    for hazard, body in hazards.items():
        assert "**Causes.**" in body, hazard
        assert "**Controls.**" in body, hazard
        assert CITED.search(body), hazard
