"""
Sphinx's configuration for sockserve's documentation (C{./dev docs} builds it).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

from sockserve import __version__  # noqa: E402

project = "sockserve"
author = "the sockserve developers"
copyright = "2026, the sockserve developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sockserve_docs",
]

exclude_patterns = ["_build"]
nitpicky = True
# Signatures name Twisted's, zope's and the standard library's types, which
# have no pages here (no intersphinx: the build reads nothing from the
# network).
nitpick_ignore_regex = [
    (r"py:.*", r"(?!sockserve\b).*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = f"sockserve {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# Options and commands are shown as typed: -- stays two hyphens.
smartquotes = False
# Literal blocks are shell sessions, configuration files and transcripts:
# shown as they are, not coloured as Python.
highlight_language = "none"
