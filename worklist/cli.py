"""The `worklist` command line (Typer): run the components and administer the network.

Heavy modules (the FastAPI app, the DICOM gateway, uvicorn, the `up` supervisor with
its demo sender) are imported inside the commands that run them, so quick admin
commands start fast and do not load the whole stack.
"""

from __future__ import annotations

import functools
import gc
import getpass
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import FrameType
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.allocation.schemas import AllocationOut, AllocationPatch
from worklist.allocation.service import change_allocation
from worklist.audit.repository import ActorKind, record
from worklist.config import ConfigError, Settings, parse_duration
from worklist.db import migrate as migrate_database
from worklist.db import run_in_transaction
from worklist.enums import AuditAction, GeneralReader
from worklist.errors import DomainError
from worklist.hl7.senders import SenderChange, facilities_by_site, register_senders
from worklist.logs import configure_logging
from worklist.models import Site
from worklist.outbox.targets import TargetPolicy
from worklist.routing.console import build_routing_app
from worklist.sites import repository as site_repository
from worklist.sites.console import print_webhook_status
from worklist.sites.schemas import SecretRotationOut, WebhookStatusOut
from worklist.sites.service import (
    Actor,
    SiteRegistration,
    enable_webhook,
    grant_node,
    register_site_node,
    remove_webhook_url,
    revoke_node,
    rotate_webhook_secret,
    set_webhook_url,
    webhook_status,
)
from worklist.stats.extract_console import build_stats_app
from worklist.subspecialties.console import build_subspecialty_app
from worklist.users.console import CliTools, build_user_app

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one `error: ...` line on stderr and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (DomainError, ConfigError) as exc:
            _fail(str(exc))
        except ValidationError as exc:
            _fail(_describe_invalid_settings(exc))
        except IntegrityError as exc:
            _fail(f"conflicts with existing data: {_first_line(exc.orig)}")
        except OperationalError as exc:
            _fail(f"cannot reach the database: {_first_line(exc.orig)}")

    return run


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else type(value).__name__


def _describe_invalid_settings(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        problems.append(f"WORKLIST_{field.upper()}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


app = typer.Typer(
    help="Imaging network shared reporting worklist.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
site_app = typer.Typer(help="Member trusts and their DICOM nodes.", no_args_is_help=True)
node_app = typer.Typer(
    help="What DICOM nodes may query and retrieve beyond their own site.", no_args_is_help=True
)
app.add_typer(site_app, name="site")
app.add_typer(node_app, name="node")


def load_settings() -> Settings:
    """Settings from the environment, with logging configured for them."""
    settings = Settings()
    configure_logging(settings.log_level)
    return settings


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
    """Run ``work`` (the async domain) as one transaction on the configured database."""
    return run_in_transaction(
        settings.require_database_url(), work, application_name="worklist-cli"
    )


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _install_stop_handlers(
    stop: threading.Event, on_stop: Callable[[], None] | None = None
) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


@app.command()
@reports_errors
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed demo trusts, users and studies.")
    ] = False,
) -> None:
    """Migrate, then run gateway + API + worker + HL7 listener together until Ctrl-C."""
    from worklist.embedded import run_stack

    raise typer.Exit(run_stack(load_settings(), demo=demo))


@app.command()
@reports_errors
def api() -> None:
    """Run the REST API alone."""
    import uvicorn

    from worklist.app import create_app

    settings = load_settings()
    settings.require_database_url()
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; with a handler of ours
    # in place that signal is absorbed, so a requested stop exits 0 rather than -15.
    _install_stop_handlers(threading.Event())
    application = create_app(settings)
    # The ~250,000 objects of the loaded modules and the app never become garbage: out of
    # the collector's sight, a full collection no longer walks them (165 ms each, a few
    # times a minute under load: the slowest requests of bench.stats), docs/stats.md.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        application,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        # Its lines carry the query string (search terms): worklist.access logs requests.
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@app.command()
@reports_errors
def gateway() -> None:
    """Run the DICOM gateway alone."""
    from dicom_gateway.processes import serve

    settings = load_settings()
    settings.require_database_url()
    raise typer.Exit(serve(settings))


@app.command()
@reports_errors
def worker() -> None:
    """Run the background worker alone."""
    from worklist.worker import run_worker

    settings = load_settings()
    stop = threading.Event()
    _install_stop_handlers(stop)
    run_worker(settings, stop)


@app.command()
@reports_errors
def hl7() -> None:
    """Run the MLLP listener for orders from the trusts' RIS alone."""
    from worklist.hl7.server import serve

    settings = load_settings()
    settings.require_database_url()
    raise typer.Exit(serve(settings))


@app.command()
@reports_errors
def migrate() -> None:
    """Upgrade the database schema to the latest revision (alembic upgrade head)."""
    settings = load_settings()
    migrate_database(settings.require_database_url())
    typer.echo("database schema is up to date")


@site_app.command("add")
@reports_errors
def site_add(
    code: Annotated[str, typer.Argument(help="Short code of the trust, e.g. RXA.")],
    name: Annotated[
        str | None, typer.Option("--name", help="The trust's name (needed for a new site).")
    ] = None,
    ae_title: Annotated[
        str | None,
        typer.Option(
            "--ae-title",
            help="AE title of a DICOM node to add (may be left out when only adding HL7).",
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="IP address the node connects from (repeatable)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port where the node accepts C-STORE.")
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="Where alerts and reports are POSTed.")
    ] = None,
    ris_host: Annotated[
        str | None,
        typer.Option("--ris-host", help="Host of the trust's RIS, where results go as ORU^R01."),
    ] = None,
    ris_port: Annotated[
        int | None, typer.Option("--ris-port", help="Port of the RIS's MLLP listener.")
    ] = None,
    hl7_facility: Annotated[
        list[str] | None,
        typer.Option(
            "--hl7-facility", help="Sending Facility (MSH-4) of the trust's RIS (repeatable)."
        ),
    ] = None,
    hl7_host: Annotated[
        list[str] | None,
        typer.Option("--hl7-host", help="IP address the RIS sends HL7 from (repeatable)."),
    ] = None,
) -> None:
    """Register a member trust and a DICOM node of it (repeat for more nodes), and its RIS.

    Run again for a site already registered (with one of its nodes, a new one, or no
    --ae-title) to set its webhook URL or RIS target, or add HL7 facilities and hosts."""
    if ae_title is None and (host or port is not None):
        raise ConfigError("--host and --port describe a DICOM node: give --ae-title too")
    if ae_title is None and not (hl7_facility or hl7_host or ris_host or webhook_url):
        raise ConfigError(
            "give --ae-title (a DICOM node), or --hl7-facility/--hl7-host, --ris-host/--ris-port"
            " or --webhook-url for an existing site"
        )
    settings = load_settings()
    hl7_change: SenderChange | None = None

    async def register(session: AsyncSession) -> SiteRegistration:
        registration = await register_site_node(
            session=session,
            code=code,
            name=name,
            ae_title=ae_title,
            hosts=host or [],
            port=port,
            webhook_url=webhook_url,
            policy=TargetPolicy.from_settings(settings),
            ris_host=ris_host,
            ris_port=ris_port,
        )
        nonlocal hl7_change
        if hl7_facility or hl7_host:
            hl7_change = await register_senders(
                session, site=registration.site, facilities=hl7_facility or [], hosts=hl7_host or []
            )
        record(
            session,
            actor=_cli_actor(),
            actor_kind=ActorKind.SYSTEM,
            action=AuditAction.SITE_ADDED,
            site_id=registration.site.id,
            detail={
                "code": registration.site.code,
                "ae_title": registration.node.ae_title if registration.node else None,
                "created_site": registration.created_site,
                "created_node": registration.created_node,
                "webhook_secret_issued": registration.webhook_secret is not None,
                "ris": _ris_target(registration.site),
                "hl7_facilities": list(hl7_change.facilities) if hl7_change else [],
                "hl7_hosts": list(hl7_change.hosts) if hl7_change else [],
            },
        )
        return registration

    registration = in_transaction(settings, register)
    site = registration.site
    if registration.created_site:
        typer.echo(f"site {site.code} ({site.name}) registered")
    if registration.node is not None:
        if registration.created_node:
            typer.echo(f"node {registration.node.ae_title} added to site {site.code}")
        else:
            typer.echo(f"node {registration.node.ae_title} already registered to site {site.code}")
    if ris_host is not None:
        typer.echo(f"results to RIS: {_ris_target(site)} (ORU^R01 over MLLP)")
    if hl7_change is not None:
        for facility in hl7_change.facilities:
            typer.echo(f"HL7 facility {facility} added to site {site.code}")
        for address in hl7_change.hosts:
            typer.echo(f"HL7 host {address} allowed for site {site.code}")
    if registration.webhook_secret is not None:
        typer.echo(f"webhook URL: {site.webhook_url}")
        typer.echo(f"webhook secret (shown once, store it now): {registration.webhook_secret}")


def _ris_target(site: Site) -> str | None:
    """``host:port`` of the site's RIS (where results go), or None."""
    if site.ris_host is None or site.ris_port is None:
        return None
    host = f"[{site.ris_host}]" if ":" in site.ris_host else site.ris_host
    return f"{host}:{site.ris_port}"


@site_app.command("list")
@reports_errors
def site_list() -> None:
    """List member trusts and their DICOM nodes."""

    async def read(
        session: AsyncSession,
    ) -> tuple[list[Site], dict[str, list[str]], dict[int, list[str]]]:
        return (
            await site_repository.list_sites(session),
            await site_repository.granted_site_codes(session),
            await facilities_by_site(session),
        )

    sites, grants, facilities = in_transaction(load_settings(), read)
    if not sites:
        typer.echo("no sites registered")
        return
    table = Table("code", "name", "AE title", "hosts", "port", "also sees", "webhook", "HL7", "RIS")
    for site in sites:
        site_cells = [site.code, site.name]
        hl7 = ", ".join(facilities.get(site.id, [])) or "-"
        if site.hl7_hosts:
            hl7 += f" (from {', '.join(site.hl7_hosts)})"
        targets = [site.webhook_url or "-", hl7, _ris_target(site) or "-"]
        if not site.nodes:
            table.add_row(*site_cells, "-", "-", "-", "-", *targets)
        for node in sorted(site.nodes, key=lambda n: n.ae_title):
            hosts = ", ".join(node.hosts) if node.hosts else "any"
            port = str(node.port) if node.port else "-"
            granted = ", ".join(grants.get(node.ae_title, [])) or "-"
            table.add_row(*site_cells, node.ae_title, hosts, port, granted, *targets)
            site_cells, targets = ["", ""], ["", "", ""]
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped or captured: keep one node per line
    console.print(table)


@node_app.command("grant")
@reports_errors
def node_grant(
    ae_title: Annotated[str, typer.Argument(help="AE title of a registered DICOM node.")],
    site: Annotated[str, typer.Option("--site", help="Code of the trust it may now see.")],
) -> None:
    """Let a registered DICOM node (e.g. a reporting workstation) query and retrieve
    another site's studies."""
    change = in_transaction(
        load_settings(),
        lambda session: grant_node(
            session=session, ae_title=ae_title, site_code=site, actor=_cli_actor()
        ),
    )
    if change.own_site:
        typer.echo(f"{change.ae_title} belongs to {change.site_code}: it already sees its studies")
    elif change.changed:
        typer.echo(f"{change.ae_title} may now query and retrieve {change.site_code}'s studies")
    else:
        typer.echo(f"{change.ae_title} already had access to {change.site_code}'s studies")


@node_app.command("revoke")
@reports_errors
def node_revoke(
    ae_title: Annotated[str, typer.Argument(help="AE title of a registered DICOM node.")],
    site: Annotated[str, typer.Option("--site", help="Code of the trust to withdraw.")],
) -> None:
    """Withdraw a grant made with ``node grant``."""
    change = in_transaction(
        load_settings(),
        lambda session: revoke_node(
            session=session, ae_title=ae_title, site_code=site, actor=_cli_actor()
        ),
    )
    if change.changed:
        typer.echo(f"{change.ae_title} may no longer see {change.site_code}'s studies")
    else:
        typer.echo(f"{change.ae_title} had no grant for {change.site_code}")


@site_app.command("webhook")
@reports_errors
def site_webhook(
    code: Annotated[str, typer.Argument(help="Code of the trust.")],
    url: Annotated[
        str | None, typer.Option("--url", help="Set the URL alerts and reports are POSTed to.")
    ] = None,
    remove: Annotated[
        bool,
        typer.Option("--remove", help="Remove the URL; deliveries are held until one is set."),
    ] = False,
    enable: Annotated[
        bool, typer.Option("--enable", help="Re-enable an endpoint disabled by a 410 Gone.")
    ] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Issue a new signing secret (shown once).")
    ] = False,
    overlap: Annotated[
        str | None,
        typer.Option(
            "--overlap",
            help="With --rotate-secret: how long the old secret stays valid (e.g. 24h; "
            "default WORKLIST_WEBHOOK_SECRET_OVERLAP_SECONDS).",
        ),
    ] = None,
) -> None:
    """Show a trust's webhook endpoint; set or remove its URL, re-enable it, rotate its secret."""
    if overlap is not None and not rotate_secret:
        raise ConfigError("--overlap only applies with --rotate-secret")
    if remove and (url is not None or enable):
        raise ConfigError("--remove cannot be combined with --url or --enable")
    settings = load_settings()
    overlap_delta = (
        parse_duration(overlap)
        if overlap is not None
        else timedelta(seconds=settings.webhook_secret_overlap_seconds)
    )
    actor = Actor(name=_cli_actor(), kind=ActorKind.SYSTEM)
    new_secret: str | None = None
    rotation: SecretRotationOut | None = None

    async def change(session: AsyncSession) -> WebhookStatusOut:
        nonlocal new_secret, rotation
        if url is not None:
            policy = TargetPolicy.from_settings(settings)
            changed = await set_webhook_url(
                session=session, code=code, url=url, actor=actor, policy=policy
            )
            new_secret = changed.secret
        if remove:
            await remove_webhook_url(session=session, code=code, actor=actor)
        if enable:
            await enable_webhook(session=session, code=code, actor=actor)
        if rotate_secret:
            rotation = await rotate_webhook_secret(
                session=session, code=code, overlap=overlap_delta, actor=actor
            )
            new_secret = rotation.secret
        return await webhook_status(session=session, code=code, actor=actor)

    print_webhook_status(in_transaction(settings, change))
    if rotation is not None and rotation.previous_valid_until is None:
        typer.echo("previous secret retired now (no overlap)")
    if new_secret is not None:
        typer.echo(f"webhook secret (shown once, store it now): {new_secret}")


@site_app.command("allocation")
@reports_errors
def site_allocation(
    code: Annotated[str, typer.Argument(help="Code of the trust.")],
    cap: Annotated[
        int | None,
        typer.Option(
            "--cap", min=0, help="Studies a radiologist may hold at once (stat, urgent exempt)."
        ),
    ] = None,
    next_only_routine: Annotated[
        bool | None,
        typer.Option(
            "--next-only-routine/--claim-routine",
            help="Routine studies only through worklist/next (no direct claims), or not.",
        ),
    ] = None,
    general_reader: Annotated[
        GeneralReader | None,
        typer.Option(
            "--general-reader",
            help="When next may hand a study to a reader without its subspecialty.",
        ),
    ] = None,
    general_after_share: Annotated[
        float | None,
        typer.Option(
            "--general-after-share",
            min=0.0,
            max=1.0,
            help="With after_share: the share of the time to target that must elapse first.",
        ),
    ] = None,
) -> None:
    """Show a trust's allocation settings (cap, next-only, general reader); change them."""
    settings = load_settings()
    actor = Actor(name=_cli_actor(), kind=ActorKind.SYSTEM)
    change = AllocationPatch(
        cap=cap,
        next_only_routine=next_only_routine,
        general_reader=general_reader,
        general_after_share=general_after_share,
    )

    async def work(session: AsyncSession) -> AllocationOut:
        return await change_allocation(session=session, code=code, change=change, actor=actor)

    shown = in_transaction(settings, work)
    typer.echo(f"site {shown.site}")
    typer.echo(f"cap: {shown.cap} studies held at once (stat and urgent exempt)")
    typer.echo(f"next only for routine work: {'yes' if shown.next_only_routine else 'no'}")
    rule = shown.general_reader.value
    if shown.general_reader is GeneralReader.AFTER_SHARE:
        rule += f" ({shown.general_after_share:g} of the time to target)"
    typer.echo(f"general reader: {rule}")


@app.command()
@reports_errors
def reindex() -> None:
    """Rebuild or repair the index from the stored DICOM files."""
    from dicom_gateway.reindex import reindex as run_reindex

    settings = load_settings()
    settings.require_database_url()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("reindexing", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = run_reindex(settings, progress=on_progress)
    typer.echo(
        f"{result.files} files: {result.indexed} indexed, {result.repaired} repaired, "
        f"{result.removed} removed, {result.errors} errors"
    )
    if result.errors:
        _fail(f"{result.errors} files could not be indexed (see the log above)")


# Late-bound (lambdas), so the sub-apps' commands always use this module's current helpers.
_TOOLS = CliTools(
    load_settings=lambda: load_settings(),
    in_transaction=lambda settings, work: in_transaction(settings, work),
    actor_name=lambda: _cli_actor(),
    reports_errors=reports_errors,
)
app.add_typer(build_user_app(_TOOLS), name="user")
app.add_typer(build_subspecialty_app(_TOOLS), name="subspecialty")
app.add_typer(build_routing_app(_TOOLS), name="routing")
app.add_typer(build_stats_app(_TOOLS), name="stats")


def main() -> None:
    """Entry point for ``python -m worklist``."""
    app(prog_name="worklist")
