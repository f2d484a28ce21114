"""
The page's logins, kept in memory (L{sockserve.web.sessions}), on a Clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from sockserve.web.sessions import MAX_TOKEN, SESSION_LIFETIME, WebSessions


def test_a_session_is_found_by_its_token_until_it_expires() -> None:
    """A token names its account for the session's lifetime, then nothing."""
    clock = Clock()
    sessions = WebSessions(clock, lifetime=100)
    token = sessions.create("alice", "hash")
    assert len(token) >= 43
    found = sessions.find(token)
    assert found is not None
    assert found.account == "alice"
    clock.advance(99.9)
    assert sessions.find(token) is not None
    clock.advance(0.1)
    assert sessions.find(token) is None
    assert len(sessions) == 0


def test_the_default_lifetime_is_half_a_day() -> None:
    """Without a lifetime given, a session lasts 12 hours."""
    clock = Clock()
    sessions = WebSessions(clock)
    token = sessions.create("alice", "hash")
    clock.advance(SESSION_LIFETIME - 1)
    assert sessions.find(token) is not None
    clock.advance(1)
    assert sessions.find(token) is None


def test_tokens_are_random_and_unknown_ones_find_nothing() -> None:
    """Two logins get two tokens; a made-up, empty or huge one is no
    session."""
    sessions = WebSessions(Clock())
    first = sessions.create("alice", "hash")
    second = sessions.create("alice", "hash")
    assert first != second
    for token in (None, "", "x", first + "x", "a" * (MAX_TOKEN + 1)):
        assert sessions.find(token) is None


def test_revoking_ends_a_session_and_logs_its_members_out() -> None:
    """A revoked token finds nothing, and each member still attached to it
    is logged out once; a member that detached is not."""
    sessions = WebSessions(Clock())
    token = sessions.create("alice", "hash")
    other = sessions.create("bob", "hash")
    told: list[str] = []
    sessions.attach(token, "page 1", lambda: told.append("page 1"))
    sessions.attach(token, "page 2", lambda: told.append("page 2"))
    sessions.attach(token, "gone", lambda: told.append("gone"))
    sessions.detach(token, "gone")
    revoked = sessions.revoke(token)
    assert revoked is not None
    assert revoked.account == "alice"
    assert sorted(told) == ["page 1", "page 2"]
    assert sessions.find(token) is None
    assert sessions.revoke(token) is None
    assert sorted(told) == ["page 1", "page 2"]
    assert sessions.find(other) is not None


def test_the_store_is_bounded_and_forgets_the_oldest() -> None:
    """Beyond its maximum, the oldest sessions go first."""
    clock = Clock()
    sessions = WebSessions(clock, maximum=3)
    tokens = []
    for count in range(5):
        tokens.append(sessions.create(f"user{count}", "hash"))
        clock.advance(1)
    assert len(sessions) == 3
    assert [sessions.find(token) is not None for token in tokens] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_expired_sessions_are_forgotten_not_kept() -> None:
    """Expired sessions leave the store's memory (not only its answers)."""
    clock = Clock()
    sessions = WebSessions(clock, lifetime=10)
    for count in range(100):
        sessions.create(f"user{count}", "hash")
    clock.advance(10)
    fresh = sessions.create("alice", "hash")
    assert len(sessions._logins) == 1
    assert sessions.find(fresh) is not None
