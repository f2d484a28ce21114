"""
The conformance report: which of irctest's server tests are the IRC
client-to-server core, what each server did in each test, and the verdict of
issue 19 (sockserve passes at least as many core tests as the reference
server, and each the reference passes and sockserve does not is explained).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

OUTCOMES = ("pass", "fail", "error", "skip")

CORE_MODULES: Mapping[str, str] = {
    "test_connection_registration": "registration",
    "test_messages": "messages",
    "test_channel_operations": "channels",
    "test_cap": "CAP",
}
"""The client-to-server core, by irctest module: connection registration
(C{PASS}, C{NICK}/C{USER}, C{QUIT}, nick collisions, C{CAP LS}/C{LIST}),
C{PRIVMSG} and C{NOTICE}, channel operations (C{JOIN}, C{PART}, C{TOPIC},
C{LIST}, C{KICK}, C{INVITE}, channel name case) and the basics of capability
negotiation. The other modules test optional extensions (multi-prefix,
echo-message, extended-join, account-tag, SASL, METADATA, MONITOR, STARTTLS):
a server that does not offer one skips its tests."""

EXTENSION_MODULES: Mapping[str, str] = {
    "test_multi_prefix": "multi-prefix",
    "test_echo_message": "echo-message",
    "test_extended_join": "extended-join",
    "test_account_tag": "account-tag",
    "test_sasl": "SASL",
    "test_metadata": "METADATA",
    "test_monitor": "MONITOR",
    "test_starttls": "STARTTLS",
}

REFERENCE = "ngircd"
"""The reference server of issue 19."""

CANDIDATE = "sockserve"

NO_OPERATORS = (
    "sockserve's rooms have no channel operators or modes yet, by design: they "
    "come with accounts (issue 20), and until then anyone in a room may set its "
    "topic and nobody may kick; "
)

NOTES: Mapping[tuple[str, str], str] = {
    (
        "*",
        "JoinTestCase.testJoinAllMessages",
    ): "irctest 0.1.2 wants 331 RPL_NOTOPIC on joining a channel without a topic "
    "(its strict reading of RFC 2812); most servers today, ngIRCd and sockserve "
    "among them, send no topic numeric then, as modern.ircdocs.horse describes JOIN",
    (
        "*",
        "JoinTestCase.testTopicMode",
    ): "an irctest 0.1.2 bug: after MODE #chan +t it accepts only silence or a "
    "TOPIC line, but a server echoes the MODE change to the channel, as ngIRCd does",
    (
        "sockserve",
        "JoinTestCase.testTopicMode",
    ): NO_OPERATORS + "MODE #chan +t is refused with 482, so irctest skips the test",
    (
        "*",
        "JoinTestCase.testTopicNonexistentChannel",
    ): "irctest 0.1.2 accepts 403 ERR_NOSUCHCHANNEL or 443, which it takes for "
    "ERR_NOTONCHANNEL; RFC 2812's ERR_NOTONCHANNEL is 442 (443 is "
    "ERR_USERONCHANNEL), so a 442 fails it",
    (
        "ngircd",
        "JoinTestCase.testListEmpty",
    ): "ngIRCd always has its predefined &SERVER channel, which LIST shows",
    (
        "ngircd",
        "JoinTestCase.testListOne",
    ): "ngIRCd lists its predefined &SERVER channel besides #chan",
    (
        "ngircd",
        "JoinTestCase.testKickNonexistentChannel",
    ): "ngIRCd looks the nick up before the channel: 401 ERR_NOSUCHNICK, "
    "not 403 ERR_NOSUCHCHANNEL",
    (
        "sockserve",
        "JoinTestCase.testKickSendsMessages",
    ): NO_OPERATORS + "KICK is refused with 482, so irctest skips the test "
    "(ngIRCd makes a channel's creator its operator)",
    (
        "sockserve",
        "JoinTestCase.testDoubleKickMessages",
    ): NO_OPERATORS + "KICK #chan,#chan bar,baz is refused with 482, so irctest "
    "skips the test (ngIRCd makes a channel's creator its operator)",
    (
        "*",
        "JoinTestCase.testInviteNonExistingChannelTransmitted",
    ): "an irctest 0.1.2 bug: it sends INVITE #chan bar, its parameters reversed "
    "(RFC 1459 and RFC 2812: INVITE <nickname> <channel>), so a server looks for "
    "a person called #chan (ngIRCd: 401 ERR_NOSUCHNICK) or a channel bar "
    "(sockserve: 403 ERR_NOSUCHCHANNEL), and nothing reaches bar; sockserve "
    "would not pass it in the right order either: it relays no invitations yet "
    "(its rooms are open to all; INVITE is 482 in a room, 442 or 403 outside)",
    (
        "*",
        "JoinTestCase.testInviteNonExistingChannelEchoed",
    ): "an irctest 0.1.2 bug: it sends INVITE #chan bar, its parameters reversed "
    "(RFC 1459 and RFC 2812: INVITE <nickname> <channel>), and wants the INVITE "
    "echoed to its sender, where the RFCs answer 341 RPL_INVITING; ngIRCd "
    "answers 401 (no person called #chan), sockserve 403 (no channel bar)",
    (
        "sockserve",
        "MultiPrefixTestCase.testMultiPrefix",
    ): NO_OPERATORS + "the test wants @+foo after MODE #chan +v foo, and "
    "sockserve's NAMES lists plain nicks (multi-prefix is offered: there is no "
    "prefix to list yet)",
}
"""Why a server does not pass a test, where the test's message alone does not
say, by server (C{*}: any server) and test id (without its module); the
server's own note first."""


def module(testId: str) -> str:
    """
    Return the irctest module of a test id (C{test_cap.CapTestCase.testNoReq}).
    """
    return testId.split(".", 1)[0]


def isCore(testId: str) -> bool:
    """
    Tell whether a test belongs to the client-to-server core.
    """
    return module(testId) in CORE_MODULES


def part(testId: str) -> str:
    """
    Return what a test is about: a part of the core, or an extension.
    """
    name = module(testId)
    if name in CORE_MODULES:
        return f"core: {CORE_MODULES[name]}"
    return EXTENSION_MODULES.get(name, name)


def note(
    server: str, testId: str, notes: Mapping[tuple[str, str], str] = NOTES
) -> str | None:
    """
    Return what is known of why C{server} does not pass C{testId}, if anything.
    """
    short = testId.split(".", 1)[-1]
    return notes.get((server, short)) or notes.get(("*", short))


def outcome(results: Mapping[str, Any], testId: str) -> str:
    """
    Return a server's outcome for a test: C{pass}, C{fail}, C{error}, C{skip},
    or C{-} if the server's run did not include it.
    """
    test = results["tests"].get(testId)
    return "-" if test is None else str(test["outcome"])


def totals(results: Mapping[str, Any], core: bool | None = None) -> Counter[str]:
    """
    Count a server's outcomes: of every test, or (C{core} true or false) of the
    core or the extension tests only.
    """
    return Counter(
        test["outcome"]
        for testId, test in results["tests"].items()
        if core is None or isCore(testId) == core
    )


def shortfalls(
    reference: Mapping[str, Any], candidate: Mapping[str, Any], core: bool = True
) -> list[str]:
    """
    Return the tests (core ones, or extension ones) that C{reference} passes
    and C{candidate} does not (fails, errs, skips or did not run), in order.
    """
    return sorted(
        testId
        for testId, test in reference["tests"].items()
        if isCore(testId) == core
        and test["outcome"] == "pass"
        and outcome(candidate, testId) != "pass"
    )


def accepted(
    runs: Mapping[str, Mapping[str, Any]],
    notes: Mapping[tuple[str, str], str] = NOTES,
) -> bool | None:
    """
    Tell whether the candidate meets issue 19 (C{None} without both servers):
    it passes at least as many core tests as the reference, and each core
    test the reference passes and it does not has a note saying why.
    """
    if REFERENCE not in runs or CANDIDATE not in runs:
        return None
    reference, candidate = runs[REFERENCE], runs[CANDIDATE]
    if totals(candidate, core=True)["pass"] < totals(reference, core=True)["pass"]:
        return False
    return all(note(CANDIDATE, t, notes) for t in shortfalls(reference, candidate))


def verdict(
    runs: Mapping[str, Mapping[str, Any]],
    notes: Mapping[tuple[str, str], str] = NOTES,
) -> str:
    """
    Return the verdict of issue 19, given each server's results by name: one
    sentence (YES or NO, and each server's core passes), then each core test
    the reference passes and the candidate does not, one Markdown list item
    each: what the candidate did (failed, skipped and why, not run) and the
    note that explains it, or that none does.
    """
    if REFERENCE not in runs or CANDIDATE not in runs:
        return (
            f"No verdict: it needs both {REFERENCE} and {CANDIDATE} in one run "
            f"(this run: {', '.join(runs) or 'none'})."
        )
    reference, candidate = runs[REFERENCE], runs[CANDIDATE]
    missing = shortfalls(reference, candidate)
    ours = totals(candidate, core=True)["pass"]
    theirs = totals(reference, core=True)["pass"]
    counts = (
        f"{CANDIDATE} passes {ours} core test{'' if ours == 1 else 's'}, "
        f"{REFERENCE} {theirs}"
    )
    unexplained = [t for t in missing if not note(CANDIDATE, t, notes)]
    if ours < theirs:
        head = f"NO: {counts}; issue 19 asks for at least as many."
    elif unexplained:
        head = (
            f"NO: {counts}, but of the core tests {REFERENCE} passes and "
            f"{CANDIDATE} does not, {len(unexplained)} not explained."
        )
    else:
        head = f"YES: {counts}: at least as many, as issue 19 asks."
    if not missing:
        return f"{head} {CANDIDATE} passes every core test {REFERENCE} passes."
    lines = [
        head,
        "",
        f"Core tests {REFERENCE} passes and {CANDIDATE} does not ({len(missing)}):",
        "",
    ]
    for testId in missing:
        result = outcome(candidate, testId)
        if result == "skip":
            did = f"skipped: {candidate['tests'][testId]['reason']}"
        else:
            did = {"fail": "failed", "error": "error", "-": "not run"}[result]
        why = note(CANDIDATE, testId, notes) or "NOT EXPLAINED"
        lines.append(f"- `{testId}` ({did}): {why}")
    return "\n".join(lines)


def _count(counts: Counter[str]) -> str:
    return " / ".join(str(counts[o]) for o in OUTCOMES)


def markdown(
    runs: Mapping[str, Mapping[str, Any]],
    header: Sequence[str],
    servers: Sequence[str],
    notes: Mapping[tuple[str, str], str] = NOTES,
) -> str:
    """
    Return the report: the verdict, each server's totals and time, one row per
    test, and why each test a server did not pass failed or was skipped (with
    the notes that say more).
    """
    lines = [*header, "", "### Verdict", "", verdict(runs, notes), ""]
    if REFERENCE in runs and CANDIDATE in runs:
        extra = shortfalls(runs[REFERENCE], runs[CANDIDATE], core=False)
        if extra:
            lines += [
                f"Extension tests {REFERENCE} passes and {CANDIDATE} does not: "
                f"{', '.join(extra)}.",
                "",
            ]
        better = shortfalls(runs[CANDIDATE], runs[REFERENCE], core=True)
        if better:
            lines += [
                f"Core tests {CANDIDATE} passes and {REFERENCE} does not: "
                f"{', '.join(better)}.",
                "",
            ]
    lines += [
        "### Totals (pass / fail / error / skip)",
        "",
        "| server | version | core | extensions | all | tests' time | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in servers:
        results = runs[name]
        lines.append(
            f"| {name} | {results.get('version', '?')} "
            f"| {_count(totals(results, core=True))} "
            f"| {_count(totals(results, core=False))} "
            f"| {_count(totals(results))} | {results['seconds']:.1f} s "
            f"| {results.get('wall_seconds', 0.0):.1f} s |"
        )
    testIds = sorted(
        {t for name in servers for t in runs[name]["tests"]},
        key=lambda t: (not isCore(t), t),
    )
    lines += [
        "",
        "### Tests",
        "",
        "| test | part | " + " | ".join(servers) + " |",
        "| --- | --- |" + " --- |" * len(servers),
    ]
    for testId in testIds:
        cells = " | ".join(
            _cell(outcome(runs[name], testId), note(name, testId, notes) is not None)
            for name in servers
        )
        lines.append(f"| {testId} | {part(testId)} | {cells} |")
    lines += [
        "",
        "†: a note below says why. `error`: the test raised something other "
        "than an assertion (the server closed the connection, or did not "
        "answer in time); `-`: not in that server's run.",
    ]
    for name in servers:
        lines += _reasons(name, runs[name], notes)
    return "\n".join(lines) + "\n"


def _cell(result: str, noted: bool) -> str:
    shown = f"**{result}**" if result in ("fail", "error") else result
    return f"{shown} †" if noted and result != "pass" else shown


def _reasons(
    name: str, results: Mapping[str, Any], notes: Mapping[tuple[str, str], str]
) -> list[str]:
    lines = ["", f"### {name}: tests not passed, and why", ""]
    skipped: dict[str, list[str]] = {}
    for testId, test in sorted(results["tests"].items()):
        if test["outcome"] == "skip":
            skipped.setdefault(test["reason"], []).append(testId)
        elif test["outcome"] != "pass":
            lines.append(f"- {test['outcome']}: `{testId}`: {test['reason']}")
            known = note(name, testId, notes)
            if known:
                lines.append(f"  - note: {known}")
    if skipped:
        lines += ["", "Skipped:", ""]
        for reason, tests in sorted(skipped.items()):
            lines.append(f"- {reason} ({len(tests)}): {', '.join(tests)}")
            for testId in tests:
                known = note(name, testId, notes)
                if known:
                    lines.append(f"  - note on `{testId}`: {known}")
    return lines
