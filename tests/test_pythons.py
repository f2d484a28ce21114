"""
The Pythons sockserve admits: C{python_requires}, the trove classifiers (which
C{./dev test} reads to know what to test on) and the floor that ruff and mypy
check against all say the same.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent


def _metadata() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(SOURCE / "setup.cfg", encoding="utf-8")
    return parser


def _floor() -> tuple[int, int]:
    requires = _metadata()["options"]["python_requires"].strip()
    match = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert match is not None, requires
    return (3, int(match.group(1)))


def _classified() -> list[tuple[int, int]]:
    classifiers = _metadata()["metadata"]["classifiers"].strip().splitlines()
    versions = []
    for classifier in classifiers:
        match = re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", classifier)
        if match is not None:
            versions.append((3, int(match.group(1))))
    return versions


def _pyproject(name: str) -> str:
    # tomllib is 3.11's: read the one line, as on the floor.
    text = (SOURCE / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(rf'^{name} = "([^"]*)"$', text, re.MULTILINE)
    assert match is not None, name
    return match.group(1)


def test_classifiers_name_every_python_from_the_floor() -> None:
    """
    The classifiers name the floor of C{python_requires} and every Python
    after it up to the newest tested, without a gap: C{./dev test} tests
    exactly those.
    """
    versions = _classified()
    floor = _floor()
    assert versions, "no Programming Language :: Python :: 3.N classifier"
    assert versions[0] == floor
    assert versions == [(3, minor) for minor in range(floor[1], versions[-1][1] + 1)]


def test_linters_target_the_floor() -> None:
    """
    ruff and mypy check the code against the oldest Python it runs on, so
    that a newer Python's syntax or library is caught before a user on the
    floor meets it.
    """
    major, minor = _floor()
    assert _pyproject("target-version") == f"py{major}{minor}"
    assert _pyproject("python_version") == f"{major}.{minor}"
