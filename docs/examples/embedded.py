"""
A Twisted program of your own that serves two of sockserve's protocols on
endpoints it chooses: echo and a chat room, with sockserve's limits.

    python embedded.py [ECHO-ENDPOINT] [CHAT-ENDPOINT]

(by default tcp:5000 and tcp:5001, on 127.0.0.1). Stop it with Ctrl-C.
"""

from __future__ import annotations

import sys

from twisted.internet import endpoints, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from sockserve import Limits, buildFactory


async def main(reactor: IReactorTime, echoAt: str, chatAt: str) -> None:
    """
    Listen with sockserve's echo and chat factories, and serve until
    stopped.
    """
    # The limits every connection is held to: here, shorter lines and
    # smaller rooms than twistd sockserve's defaults.
    limits = Limits(maxLine=1024, maxClients=5)
    echo = buildFactory("echo", limits, reactor, "")
    chat = buildFactory("chat", limits, reactor, "Welcome to my own chat.")
    for name, description, factory in (
        ("echo", echoAt, echo),
        ("chat", chatAt, chat),
    ):
        endpoint = endpoints.serverFromString(reactor, description)
        port = await endpoint.listen(factory)
        address = port.getHost()
        print(f"{name} on {address.host}:{address.port}", flush=True)
    await Deferred()  # Serve until the reactor stops (Ctrl-C).


def run(arguments: list[str]) -> None:
    """
    Serve echo and chat at the endpoints C{arguments} name, or the default
    ones.
    """
    echoAt, chatAt = arguments[:2] or (
        "tcp:5000:interface=127.0.0.1",
        "tcp:5001:interface=127.0.0.1",
    )
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, echoAt, chatAt)))


if __name__ == "__main__":
    run(sys.argv[1:])
