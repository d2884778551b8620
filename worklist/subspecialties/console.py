"""`worklist subspecialty ...`: the network's vocabulary at the command line (as an admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit.repository import ActorKind
from worklist.models import Subspecialty
from worklist.sites.service import Actor
from worklist.subspecialties import repository, service
from worklist.users.console import PIPED_WIDTH, CliTools


def print_subspecialties(rows: list[Subspecialty]) -> None:
    """The vocabulary as a table."""
    table = Table("code", "name", "status")
    for row in rows:
        table.add_row(row.code, row.name, "active" if row.active else "retired")
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, PIPED_WIDTH)
    console.print(table)


def build_subspecialty_app(tools: CliTools) -> typer.Typer:
    """The `subspecialty` sub-app."""
    sub_app = typer.Typer(help="The network's subspecialty vocabulary.", no_args_is_help=True)

    @sub_app.command("list")
    @tools.reports_errors
    def subspecialty_list() -> None:
        """List the codes, retired ones included."""

        async def read(session: AsyncSession) -> list[Subspecialty]:
            return list(await repository.list_subspecialties(session, include_inactive=True))

        print_subspecialties(tools.in_transaction(tools.load_settings(), read))

    @sub_app.command("add")
    @tools.reports_errors
    def subspecialty_add(
        code: Annotated[str, typer.Argument(help="Lowercase letters, digits and _ (max 32).")],
        name: Annotated[str, typer.Option("--name", help='e.g. "Interventional neuro".')],
    ) -> None:
        """Add a code to the vocabulary."""
        checked = service.checked_new(code=code, name=name)
        actor = Actor(name=tools.actor_name(), kind=ActorKind.SYSTEM)

        async def add(session: AsyncSession) -> None:
            await service.add(session, actor=actor, code=checked.code, name=checked.name)

        tools.in_transaction(tools.load_settings(), add)
        typer.echo(f"subspecialty {checked.code} ({checked.name}) added")

    return sub_app
