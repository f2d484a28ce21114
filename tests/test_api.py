"""
The public API: what C{sockserve} exports is decided, not accidental.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import sockserve
import sockserve.accounts
import sockserve.bus
import sockserve.chat
import sockserve.irc
import sockserve.web

PUBLIC = {
    "Banner",
    "ChatConnection",
    "ChatPolicy",
    "ChatEvent",
    "ChatProtocol",
    "ChatRoom",
    "ChatService",
    "ChatSession",
    "ChatWire",
    "ConnectionRegistry",
    "EchoProtocol",
    "Error",
    "IChatMember",
    "IChatRoom",
    "IPeople",
    "IRoomDirectory",
    "Joined",
    "Left",
    "LineServerFactory",
    "LineServerProtocol",
    "LineServerService",
    "LineWire",
    "Limits",
    "Listener",
    "Message",
    "NameRejected",
    "Notice",
    "OneShotReplyProtocol",
    "OutputPressure",
    "Options",
    "PrivateMessage",
    "Renamed",
    "RoomFull",
    "RoomRejected",
    "RoomRules",
    "ServerContext",
    "__version__",
    "buildFactory",
    "makeService",
}

# The modules a user may import; everything else starts with an underscore.
PUBLIC_MODULES = {
    "sockserve.accounts",
    "sockserve.accounts.cred",
    "sockserve.accounts.limits",
    "sockserve.accounts.logins",
    "sockserve.accounts.passwd",
    "sockserve.accounts.store",
    "sockserve.chat.login",
    "sockserve.bus",
    "sockserve.bus.address",
    "sockserve.bus.codec",
    "sockserve.bus.inbound",
    "sockserve.bus.node",
    "sockserve.bus.outbox",
    "sockserve.bus.people",
    "sockserve.bus.private",
    "sockserve.bus.moderation",
    "sockserve.bus.redis",
    "sockserve.bus.rooms",
    "sockserve.bus.roster",
    "sockserve.bus.scripts",
    "sockserve.chat",
    "sockserve.chat.commands",
    "sockserve.chat.events",
    "sockserve.chat.input",
    "sockserve.chat.linewire",
    "sockserve.chat.moderation",
    "sockserve.chat.names",
    "sockserve.chat.pacing",
    "sockserve.chat.people",
    "sockserve.chat.policy",
    "sockserve.chat.protocol",
    "sockserve.chat.room",
    "sockserve.chat.service",
    "sockserve.chat.session",
    "sockserve.client",
    "sockserve.echo",
    "sockserve.irc",
    "sockserve.irc.commands",
    "sockserve.irc.grammar",
    "sockserve.irc.protocol",
    "sockserve.irc.registration",
    "sockserve.irc.websocket",
    "sockserve.irc.wire",
    "sockserve.factories",
    "sockserve.limits",
    "sockserve.logs",
    "sockserve.metrics",
    "sockserve.oneshot",
    "sockserve.protocol",
    "sockserve.service",
    "sockserve.stats",
    "sockserve.tap",
    "sockserve.web",
    "sockserve.web.frames",
    "sockserve.web.protocol",
    "sockserve.web.sessions",
    "sockserve.web.site",
    "sockserve.web.wires",
}


def test_exports_are_pinned() -> None:
    """sockserve exports exactly the public API, and every name resolves."""
    assert set(sockserve.__all__) == PUBLIC
    for name in sockserve.__all__:
        assert getattr(sockserve, name) is not None


def test_chat_exports_resolve() -> None:
    """sockserve.chat's exports exist and are the same objects as the
    top-level ones."""
    for name in sockserve.chat.__all__:
        exported = getattr(sockserve.chat, name)
        if name in PUBLIC:
            assert getattr(sockserve, name) is exported


def test_internal_modules_are_private() -> None:
    """Every module is either in the public list or named with a leading
    underscore."""
    found = set()
    for package in (
        sockserve,
        sockserve.accounts,
        sockserve.bus,
        sockserve.chat,
        sockserve.irc,
        sockserve.web,
    ):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            found.add(info.name)
    public = {name for name in found if not name.rpartition(".")[2].startswith("_")}
    assert public == PUBLIC_MODULES
    for name in found:
        importlib.import_module(name)


def test_the_client_starts_without_the_servers() -> None:
    """Importing the client (or the package) imports none of the servers'
    modules: the package's names are imported when first asked for, so that
    sockserve-client starts in a fraction of the time."""
    program = (
        "import sys, sockserve, sockserve.client\n"
        "print(sorted(name for name in sys.modules if name.startswith("
        "('sockserve.tap', 'sockserve.chat', 'sockserve.web', 'sockserve.bus'))))\n"
        "print(sockserve.ChatService.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, check=True, timeout=60
    )
    assert result.stdout.decode().splitlines() == ["[]", "sockserve.chat.service"]
    assert "ChatService" in dir(sockserve)
    with pytest.raises(AttributeError, match="NoSuchThing"):
        sockserve.NoSuchThing  # noqa: B018
