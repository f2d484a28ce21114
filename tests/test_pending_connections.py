"""
The web site's pending connections, counted by address: shares, the full
pool, and refusals, as a plain object.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockserve.web._pending import PendingConnections


def test_an_address_beyond_its_share_loses_its_oldest() -> None:
    """A newcomer from an address that holds its share takes the place of
    that address's oldest connection; other addresses keep theirs."""
    pending: PendingConnections[str] = PendingConnections(total=100, share=3)
    assert [pending.add(f"a{index}", "A") for index in range(3)] == [[], [], []]
    assert pending.add("b0", "B") == []
    assert pending.add("a3", "A") == ["a0"]
    assert pending.add("a4", "A") == ["a1"]
    assert pending.count("A") == 3
    assert "a0" not in pending
    assert "b0" in pending
    assert len(pending) == 4


def test_a_full_pool_drops_the_oldest_of_the_address_holding_most() -> None:
    """When the pool is full, a newcomer (from anywhere, its own address
    included) takes the place of the oldest connection of the address
    holding the most."""
    pending: PendingConnections[str] = PendingConnections(total=6, share=5)
    for name, address in [
        ("b0", "B"),
        ("a0", "A"),
        ("a1", "A"),
        ("a2", "A"),
        ("b1", "B"),
        ("c0", "C"),
    ]:
        assert pending.add(name, address) == []
    assert pending.add("d0", "D") == ["a0"]
    # A and B now hold two each: B came to hold two first.
    assert pending.add("d1", "D") == ["b0"]
    assert pending.add("d2", "D") == ["a1"]
    # D holds the most now: its own oldest makes room.
    assert pending.add("d3", "D") == ["d0"]
    assert len(pending) == 6


def test_many_addresses_of_one_connection_cannot_starve_a_newcomer() -> None:
    """With the pool full of addresses holding one each and reconnecting as
    they are dropped, a newcomer is dropped only after every one that was
    there before it: a real handshake, pending for a round trip, gets in."""
    pending: PendingConnections[str] = PendingConnections(total=50, share=10)
    addressOf = {f"x{index}": f"10.0.0.{index}" for index in range(50)}
    for item, address in addressOf.items():
        pending.add(item, address)
    [dropped] = pending.add("browser", "192.0.2.1") or []
    for round in range(49):
        # The dropped address comes back at once.
        comeback = f"{dropped}+"
        addressOf[comeback] = addressOf[dropped]
        [dropped] = pending.add(comeback, addressOf[comeback]) or []
        assert dropped != "browser", round
    assert "browser" in pending
    [dropped] = pending.add("late", "10.9.9.9") or []
    assert dropped == "browser"


def test_max_per_ip_refuses_the_newcomer() -> None:
    """With --max-per-ip, a newcomer from an address holding that many is
    refused (and not counted); below it, shares and the pool apply."""
    pending: PendingConnections[str] = PendingConnections(
        total=100, share=10, perAddress=2
    )
    assert pending.add("a0", "A") == []
    assert pending.add("a1", "A") == []
    assert pending.add("a2", "A") is None
    assert "a2" not in pending
    pending.remove("a0")
    pending.remove("a0")  # twice is harmless
    assert pending.add("a2", "A") == []


def test_share_and_total_must_be_positive() -> None:
    """A pool of nothing is a mistake."""
    with pytest.raises(ValueError, match="at least 1"):
        PendingConnections(total=0, share=1)


@given(
    total=st.integers(1, 8),
    share=st.integers(1, 5),
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 40)),
        max_size=60,
    ),
)
def test_bounds_hold_and_the_most_holding_pays(
    total: int, share: int, steps: list[tuple[bool, int, int]]
) -> None:
    """Whatever comes and goes: the pool and each address stay within
    bounds, a newcomer is always taken, and what is dropped for it is the
    oldest connection of its own address (at its share) or of an address
    holding the most."""
    pending: PendingConnections[int] = PendingConnections(total, share)
    model: dict[str, list[int]] = {}
    for serial, (adding, address, pick) in enumerate(steps):
        name = str(address)
        if not adding:
            everyone = [item for items in model.values() for item in items]
            if everyone:
                item = everyone[pick % len(everyone)]
                pending.remove(item)
                for items in model.values():
                    if item in items:
                        items.remove(item)
            continue
        dropped = pending.add(serial, name)
        assert dropped is not None
        assert len(dropped) <= 1
        held = len(model.get(name, []))
        if held >= share:
            assert dropped == [model[name][0]]
        elif sum(map(len, model.values())) >= total:
            most = max(map(len, model.values()))
            [item] = dropped
            assert any(
                len(items) == most and items[0] == item for items in model.values()
            )
        else:
            assert dropped == []
        for item in dropped:
            for items in model.values():
                if item in items:
                    items.remove(item)
        model.setdefault(name, []).append(serial)
        assert len(pending) == sum(map(len, model.values())) <= total
        for key, items in model.items():
            assert pending.count(key) == len(items) <= share
            assert all(item in pending for item in items)
