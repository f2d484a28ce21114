"""
The name rules: which names of people and rooms are valid, and when two
names count as the same.

People are called by a name of their choosing (L{checkName}), or until they
choose one by a default, C{guest} and a number (L{guestName}); their
address is not their name, since it cannot be shown on every front end and
tells everyone where they are.

Two names are the same name when they have the same L{nameKey}: case does not
matter, and neither do the differences between characters that look alike in
most fonts (C{I}, C{l}, C{1} and C{|}; C{O} and C{0}; C{rn} and C{m}; C{vv}
and C{w}) or the punctuation C{- _}. So with C{alice} present, C{Alice},
C{aIice}, C{a|ice}, C{a1ice}, C{al1ce} and C{alice_} are all refused as
taken: nobody can pass for somebody else.

The key is computed here, once, and everything that compares names uses it:
a room in this process, and the scripts of the bus, which are handed the key
rather than fold names themselves (Lua's C{string.lower} and Python's
C{str.lower} disagree beyond ASCII).
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 32
# The characters of IRC nicknames, less two (backslash and backquote) that
# terminals and shells make awkward: every front end can show every name.
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-\[\]{}^|]*\Z")

# Characters that look alike, each mapped to one of its kind (after lower
# case): 1, i, l and | all look like l; 0 like o.
_LOOK_ALIKE = str.maketrans("1i|0", "lllo", "._-")
# Pairs of letters that look like one.
_LOOK_ALIKE_PAIRS = (("rn", "m"), ("vv", "w"))


class NameRejected(ValueError):
    """
    A name is invalid or already taken; the message says which.

    @ivar taken: whether it is taken (rather than invalid).
    """

    def __init__(self, message: str, taken: bool = False) -> None:
        super().__init__(message)
        self.taken = taken


class NameReserved(NameRejected):
    """
    A name belongs to an account, and the person asking for it is not
    logged in to it.

    @ivar account: the account's name.
    """

    def __init__(self, wanted: str, account: str) -> None:
        super().__init__(
            f"the name {wanted} belongs to an account; /login {account} PASSWORD",
            taken=True,
        )
        self.account = account


def checkName(name: str) -> None:
    """
    Raise L{NameRejected} unless C{name} is a valid nickname: 1 to 32
    characters from letters, digits and C{_ - [ ] { } ^ |}, not starting
    with punctuation (an IRC nickname, which cannot hold C{.}).
    """
    if not name:
        raise NameRejected("a name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise NameRejected(f"a name is at most {MAX_NAME_LENGTH} characters")
    if not _VALID_NAME.match(name):
        raise NameRejected(
            "a name uses letters, digits and _ - [ ] { } ^ | "
            "and starts with a letter, digit or _"
        )


def nameKey(name: str) -> str:
    """
    Return what identifies C{name}: names with the same key are the same
    name (see the module's docstring).
    """
    key = name.casefold().translate(_LOOK_ALIKE)
    for pair, single in _LOOK_ALIKE_PAIRS:
        if pair in key:
            key = key.replace(pair, single)
    return key


def takenMessage(wanted: str, holder: str | None) -> str:
    """
    Return what someone asking for C{wanted} is told when C{holder} (if
    known) has a name with the same key.
    """
    if holder is None or holder.casefold() == wanted.casefold():
        return f"the name {wanted} is taken"
    return f"the name {wanted} is taken: it looks too much like {holder}"


# Rooms

MAX_ROOM_LENGTH = 32
_VALID_ROOM = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
# Default names: this, and a number.
GUEST = "guest"


class RoomRejected(ValueError):
    """
    A room name is invalid, or the room may not be joined or created; the
    message says why.

    @ivar tooMany: whether it is refused because there are too many rooms
        (or the member made too many), rather than for its name.
    """

    def __init__(self, message: str, tooMany: bool = False) -> None:
        super().__init__(message)
        self.tooMany = tooMany


def roomName(text: str) -> str:
    """
    Return the room that C{text} names: C{text} without a leading C{#}.

    @raise RoomRejected: unless that is 1 to 32 letters, digits and
        C{- _ .}.
    """
    name = text.removeprefix("#")
    if not _VALID_ROOM.match(name):
        raise RoomRejected(
            f"a room name is 1 to {MAX_ROOM_LENGTH} letters, digits and - _ . "
            f"(a leading # is ignored), not {text[:40]!r}"
        )
    return name


def roomKey(name: str) -> str:
    """
    Return what identifies the room C{name}: rooms are compared without
    case.
    """
    return name.lower()


def guestName(number: int) -> str:
    """
    The default name of the C{number}th person: C{guest} and the number, a
    name every front end can show (an IRC nick cannot hold C{:} or C{.}).
    """
    return f"{GUEST}{number}"
