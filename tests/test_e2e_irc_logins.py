"""
Real IRC clients log in to a real twistd with --accounts, configured as
their users configure them: WeeChat and irssi with SASL PLAIN, irssi with a
server password (PASS account:password); a telnet user in the same room
sees them under their account's names, which nobody else can take.
"""

from __future__ import annotations

import pytest

from tests.ircclients import STATUS, IrcClient, IrssiClient, WeechatClient
from tests.processes import Processes, Server, TcpMember, installedProgram

pytestmark = pytest.mark.e2e

CHANNEL = "#lab"


class SaslWeechat(WeechatClient):
    """WeeChat with SASL, set as its users set it."""

    account = ("", "")

    def commands(self) -> list[str]:
        server = f"irc.server.{self.SERVER}"
        name, password = self.account
        commands = super().commands()
        return [
            *commands[:-1],
            f"/set {server}.sasl_mechanism plain",
            f"/set {server}.sasl_username {name}",
            f"/set {server}.sasl_password {password}",
            commands[-1],
        ]


class SaslIrssi(IrssiClient):
    """irssi with SASL, as /network add -sasl_mechanism PLAIN
    -sasl_username NAME -sasl_password PASSWORD writes it."""

    account = ("", "")

    def configuration(self) -> str:
        name, password = self.account
        return (
            super()
            .configuration()
            .replace(
                '    type = "IRC";\n',
                '    type = "IRC";\n'
                '    sasl_mechanism = "PLAIN";\n'
                f'    sasl_username = "{name}";\n'
                f'    sasl_password = "{password}";\n',
            )
        )


class PasswordIrssi(IrssiClient):
    """irssi with a server password (PASS), as /server add -password
    writes it."""

    password = ""

    def configuration(self) -> str:
        return (
            super()
            .configuration()
            .replace(
                '    use_tls = "no";\n',
                f'    use_tls = "no";\n    password = "{self.password}";\n',
            )
        )


def serverWithAccounts(processes: Processes) -> Server:
    path = processes.directory / "accounts"
    for name, password in (("alice", "wonderland"), ("bob", "builder1")):
        done = processes.run(
            [installedProgram("sockserve-passwd"), str(path), name],
            input=password.encode() + b"\n",
        )
        assert done.returncode == 0, done.stderr
    return processes.server(
        "--accounts", str(path), "--irc", "tcp:0:interface=127.0.0.1", listeners=2
    )


def meetOnTelnet(
    processes: Processes, server: Server, client: IrcClient, name: str
) -> None:
    """The client, logged in as C{name}, meets a telnet user in #lab, who
    cannot take its name."""
    assert client.nickname == name
    client.waitFor(STATUS, f"You are now logged in as {name}")
    server.output.waitForText(f"logged in as {name}".encode())
    person = TcpMember(processes, server)
    assert person.ask(f"/nick {name.upper()}", lambda line: True) == (
        f"ERROR the name {name.upper()} belongs to an account; /login {name} PASSWORD"
    )
    person.join(CHANNEL)
    client.join(CHANNEL)
    person.lineUntil(lambda line: line == f"* {name} joined")
    client.say(CHANNEL, "hello from a logged-in client")
    assert person.lineUntil(lambda line: line.startswith(f"<{name}>")) == (
        f"<{name}> hello from a logged-in client"
    )


def test_weechat_logs_in_with_sasl(processes: Processes) -> None:
    """WeeChat's sasl_username and sasl_password log it in before 001."""
    server = serverWithAccounts(processes)
    client = SaslWeechat(processes, "127.0.0.1", server.portOf("irc"), "alice")
    client.account = ("alice", "wonderland")
    with client:
        client.start()
        meetOnTelnet(processes, server, client, "alice")
    server.stop()
    assert "wonderland" not in server.output.text()


def test_irssi_logs_in_with_sasl_and_with_pass(processes: Processes) -> None:
    """irssi logs in with SASL PLAIN, and another with PASS
    account:password."""
    server = serverWithAccounts(processes)
    port = server.portOf("irc")
    sasl = SaslIrssi(processes, "127.0.0.1", port, "alice")
    sasl.account = ("alice", "wonderland")
    password = PasswordIrssi(processes, "127.0.0.1", port, "bob")
    password.password = "bob:builder1"
    with sasl, password:
        sasl.start()
        meetOnTelnet(processes, server, sasl, "alice")
        password.start()
        meetOnTelnet(processes, server, password, "bob")
    server.stop()
    log = server.output.text()
    assert "wonderland" not in log
    assert "builder1" not in log
