"""
What sockserve's two commands, C{twistd sockserve} and C{sockserve-client},
want of C{twisted.python.usage} beyond what it does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from twisted.python import usage

TYPE_ENFORCEMENT = "Parameter type enforcement failed: "
# The exit status of a usage error (as sockserve-client's).
EXIT_USAGE = 2


class CommandOptions(usage.Options):
    """
    Options with C{-h} for C{--help}, help texts folded onto one line, and
    bad values said in sockserve's own words (without Twisted's
    C{Parameter type enforcement failed:} in front).

    As the subcommand of C{twistd} or C{twist} (a plugin's options, with a
    C{parent}), a usage error is said here, in three lines on stderr, and
    ends the process with status L{EXIT_USAGE}: left to them, C{twistd}
    prints the whole help on stdout before the error, and C{twist} on
    stderr.

    @cvar command: the subcommand's name, as the user types it.
    """

    command = "sockserve"

    opt_h = usage.Options.opt_help

    def __init__(self) -> None:
        super().__init__()
        # Docstrings are wrapped as they are: fold their line breaks.
        self.docs = {
            name: " ".join(doc.split()) if doc else doc
            for name, doc in self.docs.items()
        }

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options}, raising L{usage.UsageError} in sockserve's words.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            message = str(error)
            if message.startswith(TYPE_ENFORCEMENT):
                message = message[len(TYPE_ENFORCEMENT) :]
            if getattr(self, "parent", None) is not None:
                self.exitWithUsageError(message)
            raise usage.UsageError(message) from None

    def exitWithUsageError(self, message: str) -> NoReturn:
        """
        Say C{message}, after the usage and where to read more, on stderr,
        and exit with status L{EXIT_USAGE}.
        """
        program = os.path.basename(sys.argv[0]) if sys.argv else ""
        if not program or program.endswith(".py"):
            program = "twistd"
        sys.stderr.write(
            f"Usage: {program} [{program} options] {self.command} [options]\n"
            f"Try '{program} {self.command} --help' for more.\n"
            f"{program} {self.command}: {message}\n"
        )
        sys.stderr.flush()
        sys.exit(EXIT_USAGE)
