"""
The README is the package's long description: it must render cleanly.
"""

from __future__ import annotations

import io
from pathlib import Path

from docutils.core import publish_doctree

README = Path(__file__).parent.parent / "README.rst"


def test_readme_renders_without_warnings() -> None:
    """README.rst has no reStructuredText warning or error."""
    warnings = io.StringIO()
    publish_doctree(
        README.read_text(),
        settings_overrides={"warning_stream": warnings, "report_level": 2},
    )
    assert warnings.getvalue() == ""


def test_readme_documents_every_option() -> None:
    """Every twistd option and every client option appears in the README."""
    from sockserve.client import ClientOptions
    from sockserve.tap import Options

    text = README.read_text()
    for options in (Options, ClientOptions):
        names = [entry[0] for entry in (*options.optParameters, *options.optFlags)]
        if options is Options:
            names += ["port", "version"]
        for name in names:
            assert f"--{name}" in text or f"-{name}" in text, name


def test_foreground_examples_write_no_pidfile() -> None:
    """Every foreground twistd command in the README says --pidfile (none,
    with ''): twistd writes twistd.pid in the current directory even with
    -n, so two examples run from one directory would otherwise collide
    ("Another twistd server is running")."""
    import re

    commands = re.findall(
        r"twistd (?:-n|--nodaemon)\b(.*?)\bsockserve\b", README.read_text()
    )
    assert commands
    missing = [command for command in commands if "--pidfile" not in command]
    assert missing == []
