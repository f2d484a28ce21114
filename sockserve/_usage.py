"""
What sockserve's two commands, C{twistd sockserve} and C{sockserve-client},
want of C{twisted.python.usage} beyond what it does.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from twisted.python import reflect, usage
from twisted.python.util import padTo

TYPE_ENFORCEMENT = "Parameter type enforcement failed: "
# The exit status of a usage error (as sockserve-client's).
EXIT_USAGE = 2


class HelpEntry(NamedTuple):
    """
    One option as C{--help} shows it.

    @ivar name: its long name, without C{--}.
    @ivar short: its one-letter name, or L{None}.
    @ivar takesValue: whether it takes a value (C{--name=VALUE}).
    @ivar text: its help: what it does, what its values may be, its default.
    """

    name: str
    short: str | None
    takesValue: bool
    text: str


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

    With L{helpGroups}, C{--help} lists the options in groups, in the
    order the groups give (an option in no group is listed last, under
    C{Other}), and says every default one way: C{[default: X]} at the end
    of the option's text.

    @cvar command: the subcommand's name, as the user types it.
    @cvar helpGroups: the groups of C{--help}: each a title, the names of
        its options in the order shown, and a prefix that claims the options
        named so (an empty one claims none).
    @cvar shownDefaults: what C{--help} says of the default of an option
        whose default is not a plain value (or is an C{opt_} method's).
    """

    command = "sockserve"
    helpGroups: Sequence[tuple[str, Sequence[str], str]] = ()
    shownDefaults: Mapping[str, str] = {}

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

    def helpSections(self) -> list[tuple[str, list[str]]]:
        """
        Return the groups of C{--help}, each a title and the long names of
        its options (none empty): those of L{helpGroups}, then C{Other} for
        the options in none.
        """
        names = [option.rstrip("=") for option in self.longOpt]
        placed: set[str] = set()
        sections: list[tuple[str, list[str]]] = []
        for title, members, prefix in self.helpGroups:
            chosen = [name for name in members if name in names]
            if prefix:
                chosen += sorted(
                    name
                    for name in names
                    if name.startswith(prefix) and name not in members
                )
            chosen = [name for name in chosen if name not in placed]
            placed.update(chosen)
            if chosen:
                sections.append((title, chosen))
        other = sorted(name for name in names if name not in placed)
        if other:
            sections.append(("Other", other))
        return sections

    def helpTable(self) -> list[tuple[str, list[HelpEntry]]]:
        """
        Return what C{--help} says, as data: the groups of L{helpSections},
        each with its options' L{HelpEntry}s (the reference documentation
        is made from it, so that it says what C{--help} says).
        """
        shorts = {
            long: short
            for short, long in self.synonyms.items()
            if len(short) == 1 and short != long
        }
        parameters = {option[:-1] for option in self.longOpt if option.endswith("=")}
        return [
            (
                title,
                [
                    HelpEntry(
                        name,
                        shorts.get(name),
                        name in parameters,
                        self._helpText(name, name in parameters),
                    )
                    for name in names
                ],
            )
            for title, names in self.helpSections()
        ]

    def getUsage(self, width: int | None = None) -> str:
        """
        Return the options' help: in groups, with L{helpGroups}.
        """
        if not self.helpGroups:
            return super().getUsage(width)
        width = width or int(os.environ.get("COLUMNS", "80"))
        parameters = {option[:-1] for option in self.longOpt if option.endswith("=")}
        firstColumn = max(
            len(name) + (name in parameters)
            for name in parameters | {option.rstrip("=") for option in self.longOpt}
        )
        firstColumn += len("  -s, --  ")
        blocks = []
        for title, entries in self.helpTable():
            lines = [f"{title}:"]
            for entry in entries:
                option = f"--{entry.name}=" if entry.takesValue else f"--{entry.name}"
                head = (
                    f"  -{entry.short}, {option}" if entry.short else f"      {option}"
                )
                text = textwrap.wrap(entry.text, max(width - firstColumn, 20)) or [""]
                lines.append(head.ljust(firstColumn) + text[0])
                lines.extend(" " * firstColumn + more for more in text[1:])
            blocks.append("\n".join(lines) + "\n")
        longdesc = getattr(self, "longdesc", "")
        if longdesc:
            longdesc = "\n" + "\n".join(textwrap.wrap(longdesc, width)) + "\n"
        return "\n" + "\n".join(blocks) + longdesc

    def _coerceDoc(self, name: str) -> str:
        """
        What the parameter C{name} accepts, as its coerce function says it
        (its C{coerceDoc}, as Twisted's own help shows it), or C{""}.
        """
        parameters: list[Sequence[Any]] = []
        reflect.accumulateClassList(type(self), "optParameters", parameters)
        accepted = ""
        for parameter in parameters:
            long, _short, _default, _doc, coerce = padTo(5, parameter)
            if long == name:
                accepted = getattr(coerce, "coerceDoc", "") if coerce else ""
        return accepted

    def _helpText(self, name: str, parameter: bool) -> str:
        """
        The help text of the option C{name}: its own, what its values may
        be, and its default, as C{[default: X]}.
        """
        text = (self.docs.get(name) or "").strip()
        accepted = self._coerceDoc(name) if parameter else None
        if accepted:
            text = f"{text} {accepted}"
        shown = self.shownDefaults.get(name)
        if shown is None and parameter:
            default = self.defaults.get(name)
            if isinstance(default, float):
                shown = f"{default:g}"
            elif default is not None:
                shown = str(default)
        if shown is not None:
            text = f"{text} [default: {shown}]"
        return text
