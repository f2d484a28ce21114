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
from conformance.report import isCore, markdown, part, shortfalls, verdict

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
    reference = run(join="pass", list="fail", password="pass")
    assert verdict({"ngircd": reference}).startswith("No verdict")
    assert verdict(
        {"ngircd": reference, "sockserve": run(join="pass", password="pass")}
    ) == ("YES: sockserve passes every core test ngircd passes (2 of 2).")
    no = verdict({"ngircd": reference, "sockserve": run(join="pass", list="pass")})
    assert no == (
        f"NO: sockserve does not pass 1 of the 2 core tests ngircd passes:\n\n"
        f"- not run (1): {PASS}"
    )
    no = verdict({"ngircd": reference, "sockserve": run(join="skip", password="fail")})
    assert no.splitlines()[2:] == [
        f"- failed (1): {PASS}",
        f"- skipped: join skip (1): {JOIN}",
    ]


def test_report_has_a_row_per_test_and_the_reasons():
    runs = {
        "ngircd": run(seconds=1.5, join="pass", list="fail", multi="pass"),
        "sockserve": run(seconds=60.0, join="fail", list="pass", monitor="skip"),
    }
    report = markdown(runs, ["## header"], ["ngircd", "sockserve"])
    assert report.startswith("## header\n")
    assert "NO: sockserve does not pass 1 of the 1 core tests" in report
    assert f"| {JOIN} | core: channels | pass | **fail** |" in report
    # ngIRCd's LIST failure has a note: its &SERVER channel.
    assert f"| {LIST} | core: channels | **fail** † | pass |" in report
    assert f"| {MONITOR} | MONITOR | - | skip |" in report
    assert f"| {MULTI} | multi-prefix | pass | - |" in report
    assert "&SERVER" in report
    assert f"- fail: `{JOIN}`: join fail" in report
    assert f"- monitor skip (1): {MONITOR}" in report
    assert "Extension tests ngircd passes and sockserve does not: " in report
    assert "Core tests sockserve passes and ngircd does not: " in report
    assert (
        "| ngircd | ? | 1 / 1 / 0 / 0 | 1 / 0 / 0 / 0 | 2 / 1 / 0 / 0 | 1.5 s" in report
    )


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
