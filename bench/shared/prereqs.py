"""What a benchmark needs from the machine, checked before it starts anything.

Debian packages are installed when the benchmark runs as root (``apt-get update``, then
``apt-get install -y``; ``BENCH_NO_INSTALL=1`` turns that off); otherwise, and for Python
packages (which belong to the project's locked environment and are never installed
behind its back), the benchmark exits with one line naming what is missing and the
command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.shared.procs import DCMTK_STORESCP, DCMTK_STORESCU, ORTHANC, ORTHANC_PLUGINS

NO_INSTALL_ENV = "BENCH_NO_INSTALL"
APT_TIMEOUT = 900.0
# Python packages of the project's dev extra (requirements.lock pins them).
DEV_INSTALL = 'python -m pip install -c requirements.lock -e ".[dev]"'
EXIT_MISSING = 2


@dataclass(frozen=True)
class Need:
    """One thing a benchmark needs: a Debian package, a Python package or a program."""

    name: str
    kind: str  # "debian" | "python" | "program"
    present: Callable[[], bool]
    install: str  # the command that installs it (Python packages and programs)


def debian(package: str, *paths: str | Path) -> Need:
    """A Debian package, present when every one of ``paths`` (files it installs) exists."""
    return Need(
        package,
        "debian",
        lambda: all(Path(p).exists() for p in paths),
        f"apt-get install -y {package}",
    )


def python_package(module: str, install: str = DEV_INSTALL) -> Need:
    """A Python package, present when ``module`` can be imported."""
    return Need(module, "python", lambda: importlib.util.find_spec(module) is not None, install)


def program(name: str, install: str) -> Need:
    """A program on ``PATH``."""
    return Need(name, "program", lambda: shutil.which(name) is not None, install)


DCMTK = debian("dcmtk", DCMTK_STORESCU, DCMTK_STORESCP)
ORTHANC_SERVER = debian("orthanc", ORTHANC)
ORTHANC_POSTGRESQL = debian("orthanc-postgresql", ORTHANC_PLUGINS / "libOrthancPostgreSQLIndex.so")
ORTHANC_DICOMWEB = debian("orthanc-dicomweb", ORTHANC_PLUGINS / "libOrthancDicomWeb.so")
PSUTIL = python_package("psutil")
STANDARDWEBHOOKS = python_package("standardwebhooks")
PY_SPY = program("py-spy", "python -m pip install py-spy")


def _may_install() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("apt-get") is not None
        and os.environ.get(NO_INSTALL_ENV, "") in ("", "0")
    )


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
    )


def install_debian(packages: list[str]) -> str | None:
    """``apt-get update`` then ``apt-get install -y``; None, or the error's last line."""
    print(f"installing Debian packages: {' '.join(packages)} (apt-get) ...", flush=True)
    for args in (("update", "-qq"), ("install", "-y", "-qq", *packages)):
        result = _apt_get(*args)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return lines[-1] if lines else f"apt-get {args[0]} exited {result.returncode}"
    return None


def missing_line(program_name: str, missing: list[Need]) -> str:
    """The one line saying what is missing and how to install it."""
    debs = [n.name for n in missing if n.kind == "debian"]
    others = [n for n in missing if n.kind != "debian"]
    what = [f"{name} (Debian)" for name in debs] + [f"{n.name} ({n.kind})" for n in others]
    commands: list[str] = []
    if debs:
        sudo = "" if os.geteuid() == 0 else "sudo "
        commands.append(f"{sudo}apt-get install -y {' '.join(debs)}")
    commands.extend(dict.fromkeys(n.install for n in others))
    return f"{program_name}: missing {', '.join(what)}; install with: {' && '.join(commands)}"


def require(program_name: str, needs: list[Need]) -> None:
    """Install what may be installed, then exit with one line if anything is still missing."""
    missing = [need for need in dict.fromkeys(needs) if not need.present()]
    debs = [need.name for need in missing if need.kind == "debian"]
    failure: str | None = None
    if debs and _may_install():
        failure = install_debian(debs)
        missing = [need for need in missing if not need.present()]
    if missing:
        line = missing_line(program_name, missing)
        if failure:
            line += f" (apt-get failed: {failure})"
        print(line, file=sys.stderr)
        raise SystemExit(EXIT_MISSING)
