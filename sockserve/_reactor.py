"""
The reactor sockserve runs on by default: Twisted's epoll reactor, less the
log context it sets up around every event.

Twisted's L{EPollReactor <twisted.internet.epollreactor.EPollReactor>}
hands each ready descriptor to its handler through C{log.callWithLogger}:
it asks the descriptor for its C{logPrefix}, copies the current log context
into a new dictionary, pushes that on a stack for the duration of the call
and pops it again. The context is read by one thing only, the legacy
C{twisted.python.log} API, which takes the C{system} of a message from it;
sockserve logs through L{twisted.logger}, which never reads it. For a
server that answers a short line with another, that bookkeeping is about a
third of the reactor's time per request: the lean reactor answers echo
requests about 1.4 times as fast (C{python -m bench --only echo
--servers sockserve,sockserve-stock-reactor}).

What it keeps: an exception that escapes a handler is logged with the
descriptor's C{logPrefix} as its C{system}, as before, and the next ready
descriptor is handled. What it gives up: a legacy C{log.msg} written by
Twisted while it handles an event says C{-} as its system instead of the
connection's prefix.

C{twistd}'s C{--reactor} still chooses: L{installDefault} installs the lean
reactor only when no reactor is installed yet, on platforms with epoll, and
a Twisted whose epoll reactor has changed (see L{sockserve._twisted}) gets
Twisted's own.
"""

from __future__ import annotations

import select
import sys

from sockserve import _twisted


def installDefault() -> bool:
    """
    Install the lean epoll reactor as the global reactor if no reactor is
    installed yet and the platform has epoll; return whether it was.
    """
    if "twisted.internet.reactor" in sys.modules or not hasattr(select, "epoll"):
        return False
    kind = _twisted.leanReactorClass()
    if kind is None:
        return False
    reactor = kind()
    if not _twisted.leanReactorWorks(reactor):
        return False
    from twisted.internet.main import installReactor

    installReactor(reactor)
    return True
