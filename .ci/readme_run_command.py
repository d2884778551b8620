"""Prove the README's run command on a fresh environment, exactly as written.

Reads the first command of the README's "Two commands" section, runs it with bash in a
new virtualenv (so only the extras it names are installed) from a clean data dir on
free ports, logs in as the demo radiologist the banner names, lists a populated
worklist, then presses Ctrl-C (SIGINT to the foreground process group, as a terminal
does) and checks that everything stopped cleanly.

Standard library only: it runs before (and outside) the project's own environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTALL_AND_START_SECONDS = 900.0
WORKLIST_SECONDS = 60.0
STOP_SECONDS = 60.0
BANNER = "press Ctrl-C to stop"


def readme_run_command() -> str:
    """The first line of the first bash block after the README's "Two commands" heading."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    if block is None:
        sys.exit("README: no bash block under '## Two commands'")
    command = block.group(1).strip().splitlines()[0]
    if "worklist up" not in command:
        sys.exit(f"README's first command does not run `worklist up`: {command!r}")
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http(url: str, data: dict[str, str] | None = None, token: str | None = None) -> object:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_banner(process: subprocess.Popen[bytes], out: Path) -> str:
    deadline = time.monotonic() + INSTALL_AND_START_SECONDS
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        if BANNER in text:
            return text
        if process.poll() is not None:
            sys.exit(f"the run command exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(0.5)
    sys.exit(f"no banner after {INSTALL_AND_START_SECONDS:.0f}s:\n{out.read_text()[-4000:]}")


def demo_radiologist(banner: str) -> tuple[str, str]:
    password = re.search(r"Demo users \(password '([^']+)'\)", banner)
    user = re.search(r"^\s+(\S+)\s+radiologist\b", banner, re.MULTILINE)
    if password is None or user is None:
        sys.exit(f"the banner names no demo radiologist and password:\n{banner[-3000:]}")
    return user.group(1), password.group(1)


def populated_worklist(api: str, token: str) -> int:
    url = f"{api}/api/v1/worklist?status=receiving&status=ready"
    deadline = time.monotonic() + WORKLIST_SECONDS
    while time.monotonic() < deadline:
        page = http(url, token=token)
        assert isinstance(page, dict)
        if page["items"]:
            return len(page["items"])
        time.sleep(0.5)
    sys.exit("the demo radiologist's worklist stayed empty")


def main() -> None:
    command = readme_run_command()
    print(f"README run command: {command}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="worklist-readme-"))
    # Embedded PostgreSQL runs as another user when we are root: it must reach the data dir.
    scratch.chmod(0o755)
    subprocess.run([sys.executable, "-m", "venv", str(scratch / "venv")], check=True)
    api_port, gateway_port, hl7_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLIST_", "PYTHON"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        VIRTUAL_ENV=str(scratch / "venv"),
        PATH=f"{scratch / 'venv' / 'bin'}:{env['PATH']}",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        WORKLIST_DATA_DIR=str(scratch / "var"),
        WORKLIST_API_PORT=str(api_port),
        WORKLIST_GATEWAY_PORT=str(gateway_port),
        WORKLIST_HL7_PORT=str(hl7_port),
    )
    out = scratch / "run.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        banner = wait_for_banner(process, out)
        api = f"http://127.0.0.1:{api_port}"
        username, password = demo_radiologist(banner)
        token = http(f"{api}/api/v1/auth/token", {"username": username, "password": password})
        assert isinstance(token, dict)
        count = populated_worklist(api, str(token["access_token"]))
        print(f"logged in as {username}; worklist shows {count} studies", flush=True)
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(STOP_SECONDS)
        if code != 0:
            sys.exit(f"Ctrl-C: exit code {code}:\n{out.read_text()[-4000:]}")
        if (scratch / "var" / "pg" / "postmaster.pid").exists():
            sys.exit("embedded PostgreSQL still running after Ctrl-C")
        print("stopped cleanly", flush=True)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        postmaster = scratch / "var" / "pg" / "postmaster.pid"
        if postmaster.exists():
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGQUIT)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
