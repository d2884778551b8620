"""`worklist user ...`: API accounts, from creating one to a trust's leavers and movers.

The commands act as the operator (network-wide, like an admin) and audit every change
as ``cli:<login>``. Users are disabled, never deleted: their reports and audit stay
attributable. The `worklist` CLI builds this sub-app with its own settings, transaction
runner (the async domain under ``asyncio.run``) and error reporting (``CliTools``), so
both share one way of running a command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit.repository import ActorKind, record
from worklist.auth.passwords import PasswordCost
from worklist.config import ConfigError, Settings
from worklist.enums import AuditAction, Role
from worklist.models import User
from worklist.sites.service import Actor
from worklist.users import accounts
from worklist.users.service import create_user

R = TypeVar("R")

# Wide enough that a captured or piped listing keeps one user per line.
PIPED_WIDTH = 200

Username = Annotated[str, typer.Argument(help="Login name.")]
SiteOption = Annotated[str, typer.Option("--site", help="Site code.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin.")
]


class InTransaction(Protocol):
    """Runs one async unit of work on the configured database and returns its result."""

    def __call__(self, settings: Settings, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """Run ``work`` as one transaction."""
        ...


@dataclass(frozen=True)
class CliTools:
    """What the user commands take from the `worklist` CLI."""

    load_settings: Callable[[], Settings]
    in_transaction: InTransaction
    actor_name: Callable[[], str]
    reports_errors: Callable[[Callable[..., None]], Callable[..., None]]


def read_password(from_stdin: bool) -> str:
    """A password from stdin's first line, or prompted twice without echo."""
    if from_stdin:
        password = typer.get_text_stream("stdin").readline().rstrip("\r\n")
        if not password:
            raise ConfigError("--password-stdin given but no password was read from stdin")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


def print_users(users: list[User]) -> None:
    """The accounts as a table (never a password hash)."""
    if not users:
        typer.echo("no users")
        return
    table = Table(
        "username", "role", "status", "sites", "home site", "name", "registration", "subspecialties"
    )
    for user in users:
        table.add_row(
            user.username,
            user.role.value,
            "active" if user.active else "disabled",
            ", ".join(sorted(s.code for s in user.sites)) or "-",
            user.home_site.code if user.home_site is not None else "-",
            user.name or "-",
            user.registration or "-",
            ", ".join(user.subspecialties) or "-",
        )
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, PIPED_WIDTH)
    console.print(table)


def build_user_app(tools: CliTools) -> typer.Typer:
    """The `user` sub-app, running its commands with the CLI's settings and sessions."""
    user_app = typer.Typer(help="API users and their privileges.", no_args_is_help=True)

    def operator() -> Actor:
        return Actor(name=tools.actor_name(), kind=ActorKind.SYSTEM)

    @user_app.command("add")
    @tools.reports_errors
    def user_add(
        username: Username,
        role: Annotated[
            Role, typer.Option("--role", case_sensitive=False, help="What they may do.")
        ],
        site: Annotated[
            list[str] | None,
            typer.Option("--site", help="Site code (repeatable for a radiologist's privileges)."),
        ] = None,
        password_stdin: PasswordStdin = False,
        name: Annotated[
            str | None, typer.Option("--name", help='Display name, e.g. "Dr Jane Smith".')
        ] = None,
        registration: Annotated[
            str | None,
            typer.Option("--registration", help="GMC number (GMC1234567) or HCPC number."),
        ] = None,
        home_site: Annotated[
            str | None, typer.Option("--home-site", help="Code of the employing trust.")
        ] = None,
        subspecialty: Annotated[
            list[str] | None,
            typer.Option(
                "--subspecialty",
                help="A code of `worklist subspecialty list` (repeatable).",
            ),
        ] = None,
    ) -> None:
        """Create an API user: radiologist, manager, admin or alert_client."""
        settings = tools.load_settings()
        settings.require_database_url()
        password = read_password(password_stdin)

        async def add(session: AsyncSession) -> None:
            user = await create_user(
                session=session,
                username=username,
                password=password,
                password_cost=PasswordCost.from_settings(settings),
                role=role,
                site_codes=site or [],
                name=name,
                registration=registration,
                home_site_code=home_site,
                subspecialties=subspecialty or [],
            )
            record(
                session,
                actor=tools.actor_name(),
                actor_kind=ActorKind.SYSTEM,
                action=AuditAction.USER_ADDED,
                site_id=user.home_site.id if user.home_site is not None else None,
                detail={
                    "username": user.username,
                    "role": role.value,
                    "sites": site or [],
                    "name": user.name,
                    "registration": user.registration,
                    "home_site": home_site,
                    "subspecialties": user.subspecialties,
                },
            )

        tools.in_transaction(settings, add)
        at = f" at {', '.join(dict.fromkeys(site))}" if site else ""
        typer.echo(f"user {username} added ({role.value}{at})")

    @user_app.command("list")
    @tools.reports_errors
    def user_list(
        site: Annotated[
            str | None, typer.Option("--site", help="Only holders of a privilege here.")
        ] = None,
        role: Annotated[
            Role | None, typer.Option("--role", case_sensitive=False, help="Only this role.")
        ] = None,
    ) -> None:
        """List users: role, active or disabled, privileges and profile."""
        users = tools.in_transaction(
            tools.load_settings(),
            lambda session: accounts.list_accounts(
                session=session, actor=operator(), role=role, site_code=site
            ),
        )
        print_users(users)

    @user_app.command("disable")
    @tools.reports_errors
    def user_disable(username: Username) -> None:
        """Disable an account: refused from its next request, whatever token it holds."""
        changed = tools.in_transaction(
            tools.load_settings(),
            lambda session: accounts.set_disabled(
                session=session, actor=operator(), username=username, disabled=True
            ),
        )
        if changed:
            typer.echo(f"user {username} disabled (refused from its next request)")
        else:
            typer.echo(f"user {username} was already disabled")

    @user_app.command("enable")
    @tools.reports_errors
    def user_enable(username: Username) -> None:
        """Re-enable a disabled account (it logs in again for a new token)."""
        changed = tools.in_transaction(
            tools.load_settings(),
            lambda session: accounts.set_disabled(
                session=session, actor=operator(), username=username, disabled=False
            ),
        )
        if changed:
            typer.echo(f"user {username} enabled")
        else:
            typer.echo(f"user {username} was already enabled")

    @user_app.command("password")
    @tools.reports_errors
    def user_password(username: Username, password_stdin: PasswordStdin = False) -> None:
        """Set a new password; the old one and every token issued before stop working."""
        settings = tools.load_settings()
        settings.require_database_url()
        password_hash = accounts.new_password_hash(
            read_password(password_stdin), cost=PasswordCost.from_settings(settings)
        )
        tools.in_transaction(
            settings,
            lambda session: accounts.reset_password(
                session=session, actor=operator(), username=username, password_hash=password_hash
            ),
        )
        typer.echo(f"password of {username} changed; tokens issued before no longer work")

    @user_app.command("grant")
    @tools.reports_errors
    def user_grant(username: Username, site: SiteOption) -> None:
        """Give a user reporting privileges at a site (in effect on their next request)."""
        changed = tools.in_transaction(
            tools.load_settings(),
            lambda session: accounts.change_privilege(
                session=session, actor=operator(), username=username, site_code=site, grant=True
            ),
        )
        if changed:
            typer.echo(f"user {username} now holds privileges at {site}")
        else:
            typer.echo(f"user {username} already held privileges at {site}")

    @user_app.command("revoke")
    @tools.reports_errors
    def user_revoke(username: Username, site: SiteOption) -> None:
        """Withdraw a user's privileges at a site (in effect on their next request)."""
        changed = tools.in_transaction(
            tools.load_settings(),
            lambda session: accounts.change_privilege(
                session=session, actor=operator(), username=username, site_code=site, grant=False
            ),
        )
        if changed:
            typer.echo(f"user {username} no longer holds privileges at {site}")
        else:
            typer.echo(f"user {username} held no privileges at {site}")

    return user_app
