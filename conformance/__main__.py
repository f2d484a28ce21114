"""
C{python -m conformance} (C{./dev conformance}): run irctest's server tests
against ngIRCd and sockserve's IRC front end, and write a report comparing them.

irctest is fetched, patched and given a virtualenv of its own by
L{conformance.prepare}; each server is tested by
C{python -m conformance.run_irctest} in that virtualenv, through the
controllers of L{conformance.controllers}; L{conformance.report} writes the
report, in C{conformance/results/} (git-ignored) as
C{conformance-DATE.md} and C{.json}, and C{latest.md} and C{.json}.

Exit status: 0, or 1 if sockserve does not pass a core test ngIRCd passes, or
2 if the suite could not run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from conformance.prepare import (
    CACHE,
    HERE,
    IRCTEST_SHA256,
    IRCTEST_VERSION,
    PATCH,
    SetupError,
    environment,
    prepare,
)
from conformance.report import CANDIDATE, REFERENCE, accepted, markdown

RESULTS = HERE / "results"
SERVERS = (REFERENCE, CANDIDATE)
RUN_TIMEOUT = 900.0
"""Seconds one server's run may take (each test is bounded to 30 s too)."""


def parseArguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    parser = argparse.ArgumentParser(
        prog="./dev conformance",
        description=f"Run irctest {IRCTEST_VERSION}'s server tests against "
        "ngIRCd and sockserve's IRC front end on 127.0.0.1, and write a report "
        "to conformance/results/.",
    )
    parser.add_argument(
        "--servers",
        default="",
        help=f"comma-separated: {', '.join(SERVERS)} (default: both; sockserve "
        "is left out, with a message, while its twistd has no --irc)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the tests whose id contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--sdist",
        type=Path,
        help=f"use this copy of irctest-{IRCTEST_VERSION}.tar.gz instead of "
        "fetching it (its sha256 is checked all the same)",
    )
    parser.add_argument("--ngircd", default=None, help="ngIRCd's executable")
    parser.add_argument(
        "--twistd",
        default=str(Path(sys.executable).parent / "twistd"),
        help="the twistd that has sockserve (default: this virtualenv's)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--show-io", action="store_true", help="print every line sent and received"
    )
    return parser.parse_args(argv)


def ngircdProgram(given: str | None) -> str | None:
    """
    Return ngIRCd's executable, or L{None} if it is not installed.
    """
    if given:
        return given
    found = shutil.which("ngircd")
    if found:
        return found
    return "/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None


def ngircdVersion(program: str) -> str:
    """
    Return ngIRCd's version (C{ngIRCd 26.1}).
    """
    out = subprocess.run(
        [program, "--version"], capture_output=True, text=True, check=False
    ).stdout
    first = out.splitlines()[0] if out else "?"
    return first.split("-", 1)[0]


def sockserveHasIrc(twistd: str) -> str | None:
    """
    Return why C{twistd sockserve} cannot be tested (no such program, or no
    C{--irc} option yet), or L{None} if it can.
    """
    if not Path(twistd).exists():
        return f"{twistd} does not exist"
    helped = subprocess.run(
        [twistd, "sockserve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if "--irc" not in helped.stdout:
        return "its twistd sockserve has no --irc option yet"
    return None


def sockserveVersion() -> str:
    """
    Return sockserve's version and the commit of this checkout.
    """
    try:
        release = version("sockserve")
    except PackageNotFoundError:
        release = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{release} ({commit})" if commit else release


def chooseServers(args: argparse.Namespace) -> dict[str, str]:
    """
    Return the servers to test, each with its executable.

    @raise SetupError: if a server named with C{--servers} cannot be tested.
    """
    named = [s.strip() for s in args.servers.split(",") if s.strip()]
    for name in named:
        if name not in SERVERS:
            raise SetupError(f"unknown server {name!r} (known: {', '.join(SERVERS)})")
    chosen: dict[str, str] = {}
    for name in named or SERVERS:
        if name == REFERENCE:
            program = ngircdProgram(args.ngircd)
            why = None if program else "ngircd is not installed"
        else:
            program = args.twistd
            why = sockserveHasIrc(program)
        if why is None and program is not None:
            chosen[name] = program
        elif named:
            raise SetupError(f"cannot test {name}: {why}")
        else:
            sys.stderr.write(f"[conformance] leaving {name} out: {why}\n")
    if not chosen:
        raise SetupError("no server to test")
    return chosen


def runServer(
    name: str, program: str, args: argparse.Namespace, env: dict[str, str], out: Path
) -> dict[str, Any]:
    """
    Run irctest's server tests against one server; return its results.
    """
    command = [
        env["CONFORMANCE_PYTHON"],
        "-m",
        "conformance.run_irctest",
        name,
        "--program",
        program,
        "--output",
        str(out),
    ]
    for only in args.only:
        command += ["--only", only]
    if args.show_io:
        command.append("--show-io")
    sys.stderr.write(f"[conformance] {name}: irctest {IRCTEST_VERSION} server tests\n")
    started = time.monotonic()
    subprocess.run(
        command,
        env=env,
        cwd=HERE.parent,
        stdin=subprocess.DEVNULL,
        check=True,
        timeout=RUN_TIMEOUT,
    )
    results: dict[str, Any] = json.loads(out.read_text())
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["version"] = (
        ngircdVersion(program) if name == REFERENCE else sockserveVersion()
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the suite; write the report; return the exit status.
    """
    args = parseArguments(argv)
    try:
        servers = chooseServers(args)
        irctest = prepare(CACHE, args.sdist)
    except SetupError as e:
        sys.stderr.write(f"conformance: {e}\n")
        return 2
    env = environment(irctest)
    env["CONFORMANCE_PYTHON"] = str(irctest.python)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    for name, program in servers.items():
        out = args.results / f"conformance-{stamp}-{name}.json"
        try:
            runs[name] = runServer(name, program, args, env, out)
        except (subprocess.SubprocessError, OSError, ValueError) as e:
            sys.stderr.write(f"conformance: the run against {name} failed: {e}\n")
            return 2
        finally:
            out.unlink(missing_ok=True)
    command = "./dev conformance " + " ".join(sys.argv[1:] if argv is None else argv)
    header = [
        f"## IRC conformance: irctest {IRCTEST_VERSION} server tests ({stamp})",
        "",
        f"Command: `{command.strip()}`. irctest {IRCTEST_VERSION} (PyPI sdist, "
        f"sha256 {IRCTEST_SHA256[:16]}…, patched with `conformance/{PATCH.name}`), "
        "every specification (RFC1459, RFC2812, IRCv3.1, IRCv3.2), strict tests; "
        "each server on 127.0.0.1, started afresh for every test. "
        "Core: connection registration, messages, channel operations, CAP.",
    ]
    order = [s for s in SERVERS if s in runs]
    report = markdown(runs, header, order)
    data = {"command": command.strip(), "stamp": stamp, "servers": runs}
    for name in (f"conformance-{stamp}", "latest"):
        (args.results / f"{name}.md").write_text(report)
        (args.results / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    sys.stderr.write(
        f"[conformance] wrote {args.results / f'conformance-{stamp}.md'} and .json\n"
    )
    return 1 if accepted(runs) is False else 0


if __name__ == "__main__":
    sys.exit(main())
