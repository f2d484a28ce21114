"""
What sockserve's documentation adds to Sphinx.

  - The C{sockserve-options} directive: the options of a command, made from
    its C{usage.Options} class (the text C{--help} shows, in its groups),
    so that the reference cannot drift from the program:

        .. sockserve-options:: sockserve.tap.Options
           :program: twistd sockserve

  - The C{sockserve-interface} directive: a zope.interface C{Interface},
    its methods and attributes, from their docstrings.

  - Epytext docstrings (C{C{...}}, C{L{...}}, C{@param}...) read by autodoc
    are turned into reStructuredText first.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docstrings import prepare_docstring
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from twisted.python.reflect import namedAny
from zope.interface.interface import Method

# Every character that reStructuredText may take for markup in running text.
_MARKUP = re.compile(r"([\\`*_|\[\]<>:])")


def escape(text: str) -> str:
    """
    C{text} as reStructuredText that shows it as it is.
    """
    return _MARKUP.sub(r"\\\1", text)


class OptionsDirective(SphinxDirective):
    """
    The options of a command, from its C{usage.Options} class (a
    C{sockserve._usage.CommandOptions}): one C{.. option::} per option (so
    that C{:option:} refers to it), under a rubric per group of C{--help}.
    """

    required_arguments = 1
    option_spec = {"program": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        options = namedAny(self.arguments[0])()
        program = self.options["program"]
        lines = [f".. program:: {program}", ""]
        for title, entries in options.helpTable():
            lines += [f".. rubric:: {title}", ""]
            for entry in entries:
                value = "=<value>" if entry.takesValue else ""
                names = f"--{entry.name}{value}"
                if entry.short:
                    short = " <value>" if entry.takesValue else ""
                    names = f"-{entry.short}{short}, {names}"
                lines += [f".. option:: {names}", "", f"   {escape(entry.text)}", ""]
        container = nodes.container()
        nested_parse_with_titles(
            self.state, StringList(lines, source=self.arguments[0]), container
        )
        return list(container.children)


class InterfaceDirective(SphinxDirective):
    """
    A zope.interface C{Interface} (which autodoc does not take for a
    class): its docstring, and each method and attribute with its own.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        interface = namedAny(name)
        module, _, short = name.rpartition(".")
        lines = [f".. py:class:: {short}", f"   :module: {module}", ""]
        lines += [f"   {line}" for line in _docLines(interface.__doc__)]
        for member in interface.names():
            description = interface[member]
            if isinstance(description, Method):
                signature = description.getSignatureString()
                lines += ["", f"   .. py:method:: {member}{signature}", ""]
            else:
                lines += ["", f"   .. py:attribute:: {member}", ""]
            lines += [f"      {line}" for line in _docLines(description.__doc__)]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=name), container)
        return list(container.children)


def _docLines(doc: str | None) -> list[str]:
    """
    A docstring's lines, dedented as autodoc does, in reStructuredText.
    """
    return epytextToRest(prepare_docstring(doc or ""))


# Epytext's inline markup: C{code}, L{link}, I{italic}, B{bold}, U{url}.
_INLINE = {"C": "``{}``", "L": "``{}``", "I": "*{}*", "B": "**{}**", "U": "{}"}
_FIELD = re.compile(r"^(\s*)@(\w+)(?:\s+([^:]+?))?:\s*(.*)$")
_FIELDS = {"return": "returns", "raise": "raises", "see": "seealso"}


def _inline(text: str) -> str:
    """
    C{text} with epytext's inline markup as reStructuredText's (braces
    nest inside it, as in C{C{{"a": 1}}}).
    """
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in _INLINE and text[index + 1 : index + 2] == "{":
            depth, end = 1, index + 2
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            inner = text[index + 2 : end - 1]
            if char in "CL":
                inner = inner.replace("`", "'")
                out.append(f"``{inner}``" if inner.strip() == inner else inner)
            else:
                out.append(_INLINE[char].format(_inline(inner)))
            index = end
        else:
            out.append(char)
            index += 1
    return "".join(out)


def epytextToRest(lines: list[str]) -> list[str]:
    """
    The lines of an epytext docstring as reStructuredText: inline markup
    and fields (C{@param x: ...} as C{:param x: ...}).
    """
    text = _inline("\n".join(lines))
    converted = []
    for line in text.split("\n"):
        field = _FIELD.match(line)
        if field:
            indent, name, argument, rest = field.groups()
            name = _FIELDS.get(name, name)
            argument = f" {argument}" if argument else ""
            line = f"{indent}:{name}{argument}: {rest}"
        converted.append(line)
    return converted


def _processDocstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    lines[:] = epytextToRest(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    """
    Add the directive and the docstrings' conversion to Sphinx.
    """
    app.add_directive("sockserve-options", OptionsDirective)
    app.add_directive("sockserve-interface", InterfaceDirective)
    app.connect("autodoc-process-docstring", _processDocstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
