"""
The reactor sockserve runs on by default: Twisted's epoll reactor, less two
costs it pays on every event and every write.

  - B{No log context per event.} Twisted's C{EPollReactor} hands each ready
    descriptor to its handler through C{log.callWithLogger}: it asks the
    descriptor for its C{logPrefix}, copies the current log context into a
    new dictionary, pushes that on a stack for the call and pops it again.
    The context is read by one thing only, the legacy C{twisted.python.log}
    API, for the C{system} of a message; sockserve logs through
    L{twisted.logger}, which never reads it. The lean reactor calls the
    handler directly, and gives the prefix to the one message that needs it:
    an error a handler raises is logged (C{Unhandled Error}) under the
    descriptor's prefix, as before.
  - B{No epoll round trip per write.} Twisted's C{transport.write} appends to
    a buffer and asks the reactor to watch the socket for writability
    (C{epoll_ctl}); the reactor sends when epoll says it may, and stops
    watching (C{epoll_ctl} again). On a socket with room, that is two system
    calls and a pass through the dispatch per write. The lean reactor instead
    lets each descriptor that asked to write do so on the next pass, as if
    epoll had said it could, and that pass does not wait: it handles the
    descriptors ready at that moment first (so that their replies join what
    waits, as they do when Twisted's reactor writes on epoll's word), then
    writes. Only a descriptor whose kernel buffer is full is then watched by
    epoll. A member sent ten lines in those passes gets one C{send}, and
    everything else (order, flow control, closing after the last write,
    errors) is Twisted's own C{doWrite}.

What it gives up: a legacy C{log.msg} that Twisted itself writes while it
handles an event says C{-} as its system instead of the connection's prefix
(none does on sockserve's paths but the error above). And a write made
outside the reactor's own calls, from a signal handler or another thread
(which Twisted never allowed: they must use C{callFromThread}, as sockserve's
signal handlers do), waits for the reactor's next wake-up instead of waking
it through epoll.

C{twistd}'s C{--reactor} still chooses: L{installDefault} installs the lean
reactor only when no reactor is installed yet, on platforms with epoll, and
a Twisted whose epoll reactor has changed (see L{sockserve._twisted}) gets
Twisted's own. The worker processes of C{--workers} run on the reactor the
main process runs on (L{WORKER_REACTOR}, L{installNamed}). The measured
difference: C{python -m bench --servers sockserve,sockserve-stock-reactor}.
"""

from __future__ import annotations

import importlib
import select
import sys
from typing import Any

from sockserve import _twisted

#: The environment variable that tells a worker process the module of the
#: main process's reactor (see L{installNamed}).
WORKER_REACTOR = "SOCKSERVE_WORKER_REACTOR"


def __getattr__(name: str) -> Any:
    """
    Give the lean reactor's class as C{LeanEPollReactor}, the name twistd
    logs it by (made on first use: there is none without epoll).
    """
    if name == "LeanEPollReactor":
        kind = _twisted.leanReactorClass()
        if kind is not None:
            return kind
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def moduleOf(reactor: object) -> str:
    """
    Return the module that installs the reactor C{reactor} is (for
    L{installNamed} in a worker process).
    """
    return type(reactor).__module__


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


def install() -> None:
    """
    Install the lean epoll reactor (as a reactor module's C{install} does),
    or Twisted's default where it cannot run.
    """
    if not installDefault():
        from twisted.internet import default

        default.install()


def installNamed(module: str | None) -> None:
    """
    Install the reactor that C{module} installs (its C{install()}: a Twisted
    reactor module, or this one), as the main process of C{--workers} named
    it; the default (L{installDefault}) when it names none or one without an
    C{install}.
    """
    if module and "twisted.internet.reactor" not in sys.modules:
        installer = getattr(importlib.import_module(module), "install", None)
        if callable(installer):
            installer()
            return
    installDefault()
