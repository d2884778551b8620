"""`worklist routing ...`: the routing rules at the command line (as an admin).

``set FILE.json`` replaces the whole list (a JSON list of rules, or ``{"rules": [...]}``
as ``GET /api/v1/routing/rules`` answers); ``add`` inserts one rule; ``test`` says which
rule a study with the given facts would match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit.repository import ActorKind
from worklist.config import ConfigError
from worklist.routing import repository, service
from worklist.routing.matcher import Rule, StudyFacts, route
from worklist.routing.schemas import RoutingRuleIn, RoutingRulesIn
from worklist.sites.service import Actor
from worklist.users.console import PIPED_WIDTH, CliTools

ModalityOption = Annotated[
    str | None, typer.Option("--modality", help="e.g. CT (any of the study's modalities).")
]
BodyPartOption = Annotated[
    str | None, typer.Option("--body-part", help="Body Part Examined, e.g. HEAD.")
]


def print_rules(rules: list[Rule]) -> None:
    """The rule list as a table, in order."""
    if not rules:
        typer.echo("no routing rules (studies get no subspecialty)")
        return
    table = Table("#", "subspecialty", "modality", "body part", "procedure pattern", "age under")
    for rule in rules:
        table.add_row(
            str(rule.position),
            rule.subspecialty,
            rule.modality or "*",
            rule.body_part or "*",
            rule.procedure_pattern or "*",
            str(rule.max_age_years) if rule.max_age_years is not None else "*",
        )
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, PIPED_WIDTH)
    console.print(table)


def rules_from_file(path: Path) -> list[Rule]:
    """The rules a JSON file holds, checked as the API checks a PUT body."""
    try:
        content: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read rules from {path}: {exc}") from None
    if isinstance(content, list):
        content = {"rules": content}
    if isinstance(content, dict):
        content = {"rules": content.get("rules")}
    try:
        body = RoutingRulesIn.model_validate(content)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{path}: {where}: {error['msg']}") from None
    return [rule.as_rule(index) for index, rule in enumerate(body.rules)]


def build_routing_app(tools: CliTools) -> typer.Typer:
    """The `routing` sub-app."""
    routing_app = typer.Typer(
        help="The ordered rules giving studies their subspecialty.", no_args_is_help=True
    )

    def operator() -> Actor:
        return Actor(name=tools.actor_name(), kind=ActorKind.SYSTEM)

    def replace(rules: list[Rule]) -> None:
        stored, rerouted = tools.in_transaction(
            tools.load_settings(),
            lambda session: service.replace_rules(session, actor=operator(), rules=rules),
        )
        print_rules(stored)
        typer.echo(f"{len(stored)} rules set; {rerouted} unreported studies re-routed")

    @routing_app.command("list")
    @tools.reports_errors
    def routing_list() -> None:
        """List the rules in order (first match wins; * matches anything)."""
        rules = tools.in_transaction(
            tools.load_settings(), lambda session: service.get_rules(session, actor=operator())
        )
        print_rules(rules)

    @routing_app.command("set")
    @tools.reports_errors
    def routing_set(
        file: Annotated[Path, typer.Argument(help='JSON: a list of rules, or {"rules": [...]}.')],
    ) -> None:
        """Replace the whole list; unreported studies not routed by hand are routed again."""
        replace(rules_from_file(file))

    @routing_app.command("add")
    @tools.reports_errors
    def routing_add(
        subspecialty: Annotated[
            str, typer.Option("--subspecialty", help="The code a matching study gets.")
        ],
        modality: ModalityOption = None,
        body_part: BodyPartOption = None,
        procedure: Annotated[
            str | None,
            typer.Option(
                "--procedure",
                help="Case-insensitive regular expression on the procedure code/name and "
                "the study description.",
            ),
        ] = None,
        max_age: Annotated[
            int | None, typer.Option("--max-age", help="Matches patients younger than this.")
        ] = None,
        position: Annotated[
            int | None,
            typer.Option("--position", help="Insert before this rule (default: at the end)."),
        ] = None,
    ) -> None:
        """Insert one rule (then re-route, as `set` does)."""
        try:
            new = RoutingRuleIn(
                subspecialty=subspecialty,
                modality=modality,
                body_part=body_part,
                procedure_pattern=procedure,
                max_age_years=max_age,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None

        async def change(session: AsyncSession) -> tuple[list[Rule], int]:
            await repository.lock_rules(session, exclusive=True)
            rules = await service.get_rules(session, actor=operator())
            at = len(rules) if position is None else max(0, min(position, len(rules)))
            rules.insert(at, new.as_rule(at))
            return await service.replace_rules(session, actor=operator(), rules=rules)

        stored, rerouted = tools.in_transaction(tools.load_settings(), change)
        print_rules(stored)
        typer.echo(f"{len(stored)} rules set; {rerouted} unreported studies re-routed")

    @routing_app.command("test")
    @tools.reports_errors
    def routing_test(
        modality: ModalityOption = None,
        body_part: BodyPartOption = None,
        procedure: Annotated[
            list[str] | None,
            typer.Option("--procedure", help="A procedure code, name or description (repeatable)."),
        ] = None,
        age: Annotated[
            int | None, typer.Option("--age", help="The patient's age in years at the study.")
        ] = None,
    ) -> None:
        """Say which rule a study with these facts matches, and the subspecialty it gets."""
        rules = tools.in_transaction(
            tools.load_settings(), lambda session: service.get_rules(session, actor=operator())
        )
        facts = StudyFacts(
            modalities=(modality,) if modality else (),
            body_part=body_part,
            procedure_texts=tuple(procedure or ()),
            age_years=age,
        )
        routed = route(rules, facts)
        if routed.rule is None:
            typer.echo("no rule matches: the study gets no subspecialty")
        else:
            typer.echo(f"rule {routed.rule} matches: subspecialty {routed.subspecialty}")

    return routing_app
