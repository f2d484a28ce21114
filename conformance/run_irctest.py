"""
C{python -m conformance.run_irctest}: run irctest's server tests against one
server and write each test's outcome as JSON.

It runs in the conformance virtualenv with the patched irctest tree on
C{PYTHONPATH}; C{python -m conformance} (L{conformance.__main__}) prepares both
and runs it once per server. It does what irctest's own C{__main__} does (every
specification, strict tests), with three changes made here rather than in
irctest's files:

  - servers listen on 127.0.0.1 only (irctest binds its probe on every
    interface), and a test talks to the port its controller reports (sockserve
    listens on a port the OS chooses and logs it);
  - each test is bounded in time (irctest's client waits for a C{PONG} without
    limit);
  - outcomes are recorded per test, with the reason of each failure, error and
    skip, instead of printed.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
import traceback
import unittest
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from irctest import cases, server_tests
from irctest.specifications import Specifications

from conformance.controllers import CONTROLLERS

TEST_TIMEOUT = 30.0
"""Seconds one test may take, server start and stop included."""

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


class TestTimedOut(Exception):
    """
    A test ran longer than L{TEST_TIMEOUT}.
    """


def _timedOut(signum: int, frame: FrameType | None) -> None:
    raise TestTimedOut(f"the test took more than {TEST_TIMEOUT:.0f} s")


def loopbackHostAndPort(case: Any) -> None:
    """
    Replace irctest's C{find_hostname_and_port}: a port the OS chooses on
    127.0.0.1 (irctest binds on every interface).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        case.hostname, case.port = probe.getsockname()


_IRCTEST_SET_UP = cases.BaseServerTestCase.setUp


def setUpOnControllerPort(case: Any) -> None:
    """
    Run irctest's C{setUp}, then talk to the port the controller reports.

    unittest runs no C{tearDown} after a C{setUp} that raised: a server
    started before it raised (a test timed out, say) is stopped here.
    """
    try:
        _IRCTEST_SET_UP(case)
    except BaseException:
        controller = getattr(case, "controller", None)
        if controller is not None and controller.proc is not None:
            controller.kill()
        raise
    case.port = case.controller.port


def firstLine(text: str) -> str:
    """
    Return the first non-empty line of C{text}, or C{text} itself.
    """
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text


class Recorder(unittest.TestResult):
    """
    Record each test's outcome, reason and duration.

    @ivar outcomes: by test id (C{test_cap.CapTestCase.testNoReq}): a dict with
        C{outcome} (C{pass}, C{fail}, C{error} or C{skip}), C{reason} (one
        line), C{detail} (a traceback, or empty) and C{seconds}.
    """

    def __init__(self, progress: bool) -> None:
        super().__init__()
        self.outcomes: dict[str, dict[str, Any]] = {}
        self._progress = progress
        self._started = 0.0

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)

    def stopTest(self, test: unittest.TestCase) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def _record(
        self, test: unittest.TestCase, outcome: str, reason: str, detail: str = ""
    ) -> None:
        testId = test.id()
        if testId in self.outcomes and self.outcomes[testId]["outcome"] != "pass":
            # An error in tearDown after a failure: keep the first reason.
            return
        self.outcomes[testId] = {
            "outcome": outcome,
            "reason": reason,
            "detail": detail,
            "seconds": round(time.monotonic() - self._started, 3),
        }
        if self._progress:
            sys.stderr.write(f"  {outcome:5} {testId}  {reason}\n")

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "pass", "")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._describe(test, "fail", err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._describe(test, "error", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skip", firstLine(reason))

    def _describe(self, test: unittest.TestCase, outcome: str, err: ExcInfo) -> None:
        kind, value, _ = err
        message = firstLine(str(value)) or "(no message)"
        if kind is not AssertionError:
            message = f"{kind.__name__}: {message}"
        detail = "".join(traceback.format_exception(*err))
        self._record(test, outcome, message, detail)


def parseArguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    parser = argparse.ArgumentParser(prog="python -m conformance.run_irctest")
    parser.add_argument("server", choices=sorted(CONTROLLERS))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--program", help="the server's executable")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only the tests whose id contains this (repeatable)",
    )
    parser.add_argument("--show-io", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def selected(suite: unittest.TestSuite, patterns: Sequence[str]) -> list[Any]:
    """
    Return the tests of C{suite}, flattened, whose ids contain one of
    C{patterns} (all of them without patterns).
    """
    found: list[Any] = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            found.extend(selected(test, patterns))
        elif not patterns or any(p in test.id() for p in patterns):
            found.append(test)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the tests; write the outcomes; return 0 (outcomes are not an error).
    """
    args = parseArguments(argv)
    controller = CONTROLLERS[args.server]
    if args.program:
        controller.program = args.program
    base = cases._IrcTestCase
    base.controllerClass = controller
    base.controllerClass.openssl_bin = "openssl"
    base.show_io = args.show_io
    base.strictTests = True
    base.testedSpecifications = frozenset(Specifications)
    cases.BaseServerTestCase.find_hostname_and_port = loopbackHostAndPort
    cases.BaseServerTestCase.setUp = setUpOnControllerPort
    signal.signal(signal.SIGALRM, _timedOut)

    tests = sorted(selected(server_tests.discover(), args.only), key=lambda t: t.id())
    recorder = Recorder(progress=not args.quiet)
    started = time.monotonic()
    for test in tests:
        test.run(recorder)
    elapsed = time.monotonic() - started
    args.output.write_text(
        json.dumps(
            {
                "server": args.server,
                "software": controller.software_name,
                "program": controller.program,
                "seconds": round(elapsed, 1),
                "tests": recorder.outcomes,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
