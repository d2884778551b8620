"""Registering a site's RIS as an HL7 sender: its Sending Facilities (MSH-4.1) and the
addresses its messages may come from (``worklist site add ... --hl7-facility CODE
--hl7-host ADDR``, both repeatable, also for a site that exists already)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.errors import Conflict, InvalidInput
from worklist.models import Hl7Sender, Site

# MSH-4.1 (HD namespace id) as a RIS sends it: printable, without the HL7 delimiters.
_FACILITY = re.compile(r"^[\x21-\x7e]{1,180}$")
_DELIMITERS = set("|^~\\&")


@dataclass(frozen=True)
class SenderChange:
    """What registering did: facilities and addresses newly added to the site."""

    facilities: tuple[str, ...]
    hosts: tuple[str, ...]


def validate_facility(value: str) -> str:
    """A Sending Facility code as it is matched against MSH-4.1 (exact, case-sensitive)."""
    facility = value.strip()
    if not _FACILITY.match(facility) or _DELIMITERS & set(facility):
        raise InvalidInput(
            f"invalid HL7 facility {value!r}: 1-180 printable characters, none of | ^ ~ \\ &"
        )
    return facility


async def register_senders(
    session: AsyncSession, *, site: Site, facilities: list[str], hosts: list[str]
) -> SenderChange:
    """Add ``facilities`` and ``hosts`` to ``site``; flushes, the caller commits.

    A facility already registered to the site is left as it is; one of another site is
    a conflict. Hosts are IP addresses, kept in ``sites.hl7_hosts`` (empty: any address).
    """
    wanted = list(dict.fromkeys(validate_facility(f) for f in facilities))
    addresses: list[str] = []
    for host in hosts:
        try:
            addresses.append(str(ipaddress.ip_address(host.strip())))
        except ValueError as exc:
            raise InvalidInput(f"--hl7-host must be an IP address, got {host!r}") from exc
    existing = {
        sender.facility: sender
        for sender in await session.scalars(select(Hl7Sender).where(Hl7Sender.facility.in_(wanted)))
    }
    added: list[str] = []
    for facility in wanted:
        sender = existing.get(facility)
        if sender is not None and sender.site_id != site.id:
            raise Conflict(f"HL7 facility {facility!r} is already registered to another site")
        if sender is None:
            session.add(Hl7Sender(facility=facility, site_id=site.id))
            added.append(facility)
    # A site just created has its server default unloaded; async sessions never lazy-load.
    await session.refresh(site, ["hl7_hosts"])
    new_hosts = [a for a in dict.fromkeys(addresses) if a not in site.hl7_hosts]
    if new_hosts:
        site.hl7_hosts = [*site.hl7_hosts, *new_hosts]
    await session.flush()
    return SenderChange(facilities=tuple(added), hosts=tuple(new_hosts))


async def facilities_by_site(session: AsyncSession) -> dict[int, list[str]]:
    """Every registered facility, by site id (for ``site list``)."""
    result: dict[int, list[str]] = {}
    rows = await session.execute(
        select(Hl7Sender.site_id, Hl7Sender.facility).order_by(Hl7Sender.facility)
    )
    for site_id, facility in rows:
        result.setdefault(site_id, []).append(facility)
    return result
