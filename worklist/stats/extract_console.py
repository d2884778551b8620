"""`worklist stats extract`: the monthly per-examination extract at the command line.

The same CSV as ``GET /api/v1/stats/extract.csv`` for every site (the operator acts
network-wide, like an admin), to ``--out FILE`` or stdout. As in the API, the audit row
(``cli:<login>``) commits in a transaction of its own before the first row is read; the
rows then come from a server-side cursor in a second transaction, so memory stays
bounded. A file is written beside its final name and renamed once complete: an extract
that failed half-way never looks like a whole one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit.repository import ActorKind
from worklist.config import ConfigError
from worklist.errors import InvalidInput
from worklist.stats import extract
from worklist.users.console import CliTools

MonthOption = Annotated[
    str, typer.Option("--month", help="YYYY-MM: examinations whose test date falls in it.")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write the CSV here (default: stdout).")
]


def _discard(partial: Path) -> None:
    with contextlib.suppress(OSError):
        partial.unlink()


def build_stats_app(tools: CliTools) -> typer.Typer:
    """The `stats` sub-app."""
    stats_app = typer.Typer(help="Network performance figures.", no_args_is_help=True)

    @stats_app.command("extract")
    @tools.reports_errors
    def extract_command(month: MonthOption, out: OutOption = None) -> None:
        """The month's Diagnostic Imaging Dataset items, one CSV row per examination."""
        try:
            parsed = extract.Month.parse(month)
        except InvalidInput as exc:
            raise ConfigError(exc.detail) from None
        settings = tools.load_settings()

        async def begin(session: AsyncSession) -> extract.ExtractPlan:
            return await extract.begin_extract(
                session,
                actor=tools.actor_name(),
                actor_kind=ActorKind.SYSTEM,
                month=parsed,
                site_ids=None,
            )

        def write(target: TextIO) -> int:
            plan = tools.in_transaction(settings, begin)

            async def rows(session: AsyncSession) -> None:
                async for chunk in extract.csv_chunks(session, plan=plan):
                    target.write(chunk)

            tools.in_transaction(settings, rows)
            return plan.rows

        if out is None:
            write(sys.stdout)
            sys.stdout.flush()
            return
        # Opened before the read is audited: an --out that cannot be written reads nothing.
        partial = out.with_name(f".{out.name}.partial")
        try:
            with partial.open("w", encoding="utf-8", newline="") as target:
                count = write(target)
            os.replace(partial, out)
        except OSError as exc:
            _discard(partial)
            raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
        except BaseException:
            _discard(partial)
            raise
        typer.echo(f"{count} examinations of {parsed} written to {out}", err=True)

    return stats_app
