"""
Raising the open-file limit, so that thousands of clients can connect.
"""

from __future__ import annotations

import resource


def raiseOpenFileLimit() -> int:
    """
    Raise the soft limit on open files to the hard limit (left alone when
    the hard limit is infinite, which no kernel grants for open files).

    @return: the soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or hard == resource.RLIM_INFINITY:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard
