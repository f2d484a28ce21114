"""
The IRC conformance suite's own logic (conformance/): which tests are the core,
the verdict of issue 19, the report, and the check of the fetched sdist. The
suite itself runs with ./dev conformance, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.prepare import IRCTEST_SDIST, SetupError, fetchSdist
from conformance.report import (
    accepted,
    isCore,
    markdown,
    note,
    part,
    shortfalls,
    verdict,
)

JOIN = "test_channel_operations.JoinTestCase.testJoinTwice"
LIST = "test_channel_operations.JoinTestCase.testListEmpty"
PASS = (
    "test_connection_registration."
    "PasswordedConnectionRegistrationTestCase.testNoPassword"
)
MONITOR = "test_monitor.EchoMessageTestCase.testUnmonitor"
MULTI = "test_multi_prefix.MultiPrefixTestCase.testMultiPrefix"


def run(seconds: float = 1.0, **outcomes: str) -> dict[str, Any]:
    """
    Results as run_irctest writes them; keyword names stand for test ids.
    """
    ids = {"join": JOIN, "list": LIST, "password": PASS, "monitor": MONITOR}
    ids["multi"] = MULTI
    return {
        "seconds": seconds,
        "tests": {
            ids[name]: {"outcome": result, "reason": f"{name} {result}", "detail": ""}
            for name, result in outcomes.items()
        },
    }


def test_core_is_registration_messages_channels_and_cap():
    assert isCore(JOIN)
    assert isCore(PASS)
    assert isCore("test_cap.CapTestCase.testNoReq")
    assert isCore("test_messages.PrivmsgTestCase.testPrivmsg")
    assert not isCore(MONITOR)
    assert not isCore(MULTI)
    assert part(JOIN) == "core: channels"
    assert part(MONITOR) == "MONITOR"


def test_shortfalls_are_core_tests_the_reference_passes_and_the_other_does_not():
    """
    A skip, a failure, an error or a test left out all fall short of a pass;
    what the reference does not pass itself never counts.
    """
    reference = run(join="pass", list="fail", password="pass", monitor="pass")
    assert shortfalls(reference, run(join="pass", list="fail", password="pass")) == []
    assert shortfalls(reference, run(join="skip", password="pass")) == [JOIN]
    assert shortfalls(reference, run(join="error", password="fail")) == [JOIN, PASS]
    assert shortfalls(reference, run(password="pass")) == [JOIN]
    assert shortfalls(reference, run(), core=False) == [MONITOR]


def test_verdict():
    """
    Issue 19's verdict: YES when sockserve passes at least as many core tests
    as ngIRCd and a note explains each one ngIRCd passes and sockserve does
    not; NO when it passes fewer, or when such a test is not explained.
    """
    reference = run(join="pass", list="fail", password="pass")
    assert verdict({"ngircd": reference}).startswith("No verdict")
    assert accepted({"ngircd": reference}) is None
    every = {"ngircd": reference, "sockserve": run(join="pass", password="pass")}
    assert verdict(every) == (
        "YES: sockserve passes 2 core tests, ngircd 2: at least as many, as issue "
        "19 asks. sockserve passes every core test ngircd passes."
    )
    assert accepted(every) is True
    # As many, but another: the one ngIRCd passes is not explained.
    other = {"ngircd": reference, "sockserve": run(join="pass", list="pass")}
    assert verdict(other, notes={}).splitlines() == [
        "NO: sockserve passes 2 core tests, ngircd 2, but of the core tests ngircd "
        "passes and sockserve does not, 1 not explained.",
        "",
        "Core tests ngircd passes and sockserve does not (1):",
        "",
        f"- `{PASS}` (not run): NOT EXPLAINED",
    ]
    assert accepted(other, notes={}) is False
    # Explained (sockserve's own note, or one for any server): YES.
    for server in ("sockserve", "*"):
        notes = {(server, PASS.split(".", 1)[1]): "by design, see issue 20"}
        assert verdict(other, notes).splitlines()[::2] == [
            "YES: sockserve passes 2 core tests, ngircd 2: at least as many, as "
            "issue 19 asks.",
            "Core tests ngircd passes and sockserve does not (1):",
            f"- `{PASS}` (not run): by design, see issue 20",
        ]
        assert accepted(other, notes) is True
    # Fewer: NO, however well explained.
    fewer = {"ngircd": reference, "sockserve": run(join="skip", password="fail")}
    notes = {("*", JOIN.split(".", 1)[1]): "why", ("*", PASS.split(".", 1)[1]): "why"}
    assert verdict(fewer, notes).splitlines() == [
        "NO: sockserve passes 0 core tests, ngircd 2; issue 19 asks for at least "
        "as many.",
        "",
        "Core tests ngircd passes and sockserve does not (2):",
        "",
        f"- `{JOIN}` (skipped: join skip): why",
        f"- `{PASS}` (failed): why",
    ]
    assert accepted(fewer, notes) is False


def test_report_has_a_row_per_test_and_the_reasons():
    runs = {
        "ngircd": run(seconds=1.5, join="pass", list="fail", multi="pass"),
        "sockserve": run(seconds=60.0, join="fail", list="pass", monitor="skip"),
    }
    notes = {
        ("ngircd", LIST.split(".", 1)[1]): "&SERVER is listed",
        ("sockserve", MONITOR.split(".", 1)[1]): "no MONITOR yet",
    }
    report = markdown(runs, ["## header"], ["ngircd", "sockserve"], notes)
    assert report.startswith("## header\n")
    assert "NO: sockserve passes 1 core test, ngircd 1, but" in report
    assert f"- `{JOIN}` (failed): NOT EXPLAINED" in report
    assert f"| {JOIN} | core: channels | pass | **fail** |" in report
    # ngIRCd's LIST failure has a note.
    assert f"| {LIST} | core: channels | **fail** † | pass |" in report
    assert f"| {MONITOR} | MONITOR | - | skip † |" in report
    assert f"| {MULTI} | multi-prefix | pass | - |" in report
    assert "  - note: &SERVER is listed" in report
    assert f"- fail: `{JOIN}`: join fail" in report
    assert f"- monitor skip (1): {MONITOR}" in report
    assert f"  - note on `{MONITOR}`: no MONITOR yet" in report
    assert "Extension tests ngircd passes and sockserve does not: " in report
    assert "Core tests sockserve passes and ngircd does not: " in report
    assert (
        "| ngircd | ? | 1 / 1 / 0 / 0 | 1 / 0 / 0 / 0 | 2 / 1 / 0 / 0 | 1.5 s" in report
    )


def test_every_shortfall_of_the_last_run_is_explained():
    """
    The notes explain each core test ngIRCd passed and sockserve did not in
    the run the IRC guide quotes: the tests of KICK and of multi-prefix need channel
    operators, which sockserve has not yet (issue 20).
    """
    for testId in (
        "test_channel_operations.JoinTestCase.testKickSendsMessages",
        "test_channel_operations.JoinTestCase.testDoubleKickMessages",
        "test_channel_operations.JoinTestCase.testTopicMode",
        MULTI,
    ):
        explained = note("sockserve", testId)
        assert explained is not None
        assert "issue 20" in explained
    for short in (
        "JoinTestCase.testInviteNonExistingChannelEchoed",
        "JoinTestCase.testInviteNonExistingChannelTransmitted",
        "JoinTestCase.testJoinAllMessages",
    ):
        assert note("sockserve", "test_channel_operations." + short) is not None


def test_an_sdist_with_another_sha256_is_refused(tmp_path: Path):
    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(b"not irctest")
    cache = tmp_path / "cache"
    with pytest.raises(SetupError, match="not the pinned"):
        fetchSdist(cache, forged)
    assert list(cache.iterdir()) == []


def test_a_cached_sdist_with_another_sha256_is_not_used(tmp_path: Path):
    """
    A damaged file in the cache is fetched again (here: copied), and refused
    again if the copy is no better.
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / IRCTEST_SDIST).write_bytes(b"truncated")
    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(b"not irctest either")
    with pytest.raises(SetupError, match="not the pinned"):
        fetchSdist(cache, forged)
