"""
Raising the open-file limit, so that thousands of clients can connect.
"""

from __future__ import annotations

import resource


def raiseOpenFileLimit() -> int:
    """
    Raise the soft limit on open files to the hard limit.

    @return: the soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1024 * 1024) if soft != resource.RLIM_INFINITY else soft
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard
