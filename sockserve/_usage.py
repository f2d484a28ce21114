"""
What sockserve's two commands, C{twistd sockserve} and C{sockserve-client},
want of C{twisted.python.usage} beyond what it does.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.python import usage

TYPE_ENFORCEMENT = "Parameter type enforcement failed: "


class CommandOptions(usage.Options):
    """
    Options with C{-h} for C{--help}, help texts folded onto one line, and
    bad values said in sockserve's own words (without Twisted's
    C{Parameter type enforcement failed:} in front).
    """

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
                raise usage.UsageError(message[len(TYPE_ENFORCEMENT) :]) from None
            raise
