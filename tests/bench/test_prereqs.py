"""A benchmark says in one line what is missing and how to install it."""

from __future__ import annotations

import pytest

from bench.shared import prereqs


def test_a_missing_python_package_stops_the_benchmark_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    absent = prereqs.python_package("bench_no_such_module", "python -m pip install nothing")

    with pytest.raises(SystemExit) as stopped:
        prereqs.require("bench.example", [prereqs.python_package("json"), absent])

    assert stopped.value.code == prereqs.EXIT_MISSING
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "bench.example: missing bench_no_such_module (python); "
        "install with: python -m pip install nothing"
    ]


def test_a_missing_debian_package_is_named_with_its_apt_command_when_install_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(prereqs.NO_INSTALL_ENV, "1")
    absent = prereqs.debian("bench-no-such-package", "/nonexistent/bench/file")

    with pytest.raises(SystemExit):
        prereqs.require("bench.example", [absent])

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("bench.example: missing bench-no-such-package (Debian); install with: ")
    assert line.endswith("apt-get install -y bench-no-such-package")


def test_nothing_missing_lets_the_benchmark_start(capsys: pytest.CaptureFixture[str]) -> None:
    prereqs.require("bench.example", [prereqs.python_package("json"), prereqs.DCMTK])

    assert capsys.readouterr().err == ""
