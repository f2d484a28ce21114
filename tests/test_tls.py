"""
TLS end to end: a server on an ssl: endpoint with a certificate from a test
CA (trustme), reached by sockserve-client, openssl s_client and ncat --ssl.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trustme

from tests.processes import Processes, installedProgram, systemProgram

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """
    A test CA, and a server certificate from it for localhost and 127.0.0.1:
    the CA's certificate, the server's key and its certificate chain.
    """
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    caFile, keyFile, chainFile = (
        directory / "ca.pem",
        directory / "server.key",
        directory / "server.pem",
    )
    ca.cert_pem.write_to_path(str(caFile))
    certificate.private_key_pem.write_to_path(str(keyFile))
    certificate.cert_chain_pems[0].write_to_path(str(chainFile))
    for pem in certificate.cert_chain_pems[1:]:
        with chainFile.open("ab") as chain:
            chain.write(pem.bytes())
    return caFile, keyFile, chainFile


def tlsServer(processes: Processes, authority, mode: str):
    _, key, chain = authority
    server = processes.server(
        "--port", f"ssl:0:privateKey={key}:certKey={chain}", mode=mode
    )
    port = int(server.addresses[0].rpartition(":")[2])
    assert server.addresses[0].startswith("127.0.0.1:")  # loopback by default
    return server, port


def client(processes: Processes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return processes.run([installedProgram("sockserve-client"), *args])


def test_readme_tls_example(processes: Processes, authority) -> None:
    """The TLS guide's example, as written but for the port: an echo server on
    an ssl: endpoint, and sockserve-client --tls --cafile against it."""
    caFile, _, _ = authority
    _, port = tlsServer(processes, authority, "echo")
    result = client(
        processes, "--tls", "--cafile", str(caFile), "localhost", str(port), "hello"
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"OK .. hello\n",
        b"",
    )
    result = client(
        processes, "--tls", "--cafile", str(caFile), "127.0.0.1", str(port), "hi"
    )
    assert (result.returncode, result.stdout) == (0, b"OK .. hi\n"), result


def test_tls_failures_are_one_line(
    processes: Processes, authority, tmp_path: Path
) -> None:
    """An untrusted certificate, or one that does not name the host, is a
    one-line error and exit status 1, never a silent exit 0 or a traceback;
    --insecure skips the checks."""
    _, port = tlsServer(processes, authority, "oneshot")
    untrusted = client(processes, "--tls", "127.0.0.1", str(port), "hi")
    assert (untrusted.returncode, untrusted.stdout) == (1, b""), untrusted
    [line] = untrusted.stderr.decode().splitlines()
    assert line.startswith(f"TLS failure with 127.0.0.1:{port}: "), line
    assert "certificate verify failed" in line
    insecure = client(processes, "--tls", "--insecure", "127.0.0.1", str(port), "hi")
    assert (insecure.returncode, insecure.stdout) == (0, b"OK .. hi\n"), insecure
    # A certificate from the trusted CA, for another name.
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    other = ca.issue_cert("example.org")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.pem"))
    _, otherPort = tlsServer(
        processes, (None, tmp_path / "other.key", tmp_path / "other.pem"), "oneshot"
    )
    wrongName = client(
        processes,
        "--tls",
        "--cafile",
        str(tmp_path / "ca.pem"),
        "127.0.0.1",
        str(otherPort),
        "hi",
    )
    assert (wrongName.returncode, wrongName.stdout) == (1, b""), wrongName
    [line] = wrongName.stderr.decode().splitlines()
    assert line.startswith(f"TLS failure with 127.0.0.1:{otherPort}: "), line
    for result in (untrusted, wrongName):
        assert b"Traceback" not in result.stderr


def test_openssl_and_ncat_speak_to_it(processes: Processes, authority) -> None:
    """openssl s_client (checking the certificate) and ncat --ssl reach the
    same server."""
    caFile, _, _ = authority
    _, port = tlsServer(processes, authority, "oneshot")
    result = processes.run(
        [
            systemProgram("openssl"),
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-CAfile",
            str(caFile),
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
        ],
        input=b"hello\n",
    )
    assert b"OK .. hello\n" in result.stdout, result
    result = processes.run(
        # Without a half-close in TLS, ncat keeps its side open (and ends
        # after a second without traffic): a close alert from it while the
        # reply is on its way loses the reply on ncat's side.
        [
            systemProgram("ncat"),
            "--ssl",
            "--no-shutdown",
            "--idle-timeout",
            "1",
            "127.0.0.1",
            str(port),
        ],
        input=b"hi\n",
    )
    assert result.stdout == b"OK .. hi\n", result


def test_timeout_ends_a_tls_client_that_gets_no_answer(processes: Processes) -> None:
    """--tls against a server that does not speak TLS: --timeout still ends
    the client, with status 124, not a hang."""
    server = processes.server(mode="chat")
    result = client(
        processes, "--tls", "--insecure", "-t", "1", "127.0.0.1", str(server.port), "hi"
    )
    assert result.returncode in (1, 124), result
    assert b"Traceback" not in result.stderr


def certificateWithoutNames(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate from it with no subjectAltName (only a
    common name), as old tools make them."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(caName)
        .issuer_name(caName)
        .public_key(caKey.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(caKey, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(caName)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(caKey, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "leaf.key", directory / "leaf.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return paths


def test_a_certificate_without_names_is_refused(
    processes: Processes, tmp_path: Path
) -> None:
    """A trusted certificate with no subjectAltName does not name the host:
    one line, exit 1, nothing printed of what the server sent, no traceback
    (Twisted itself lets such a certificate by, and logs a traceback)."""
    authority = certificateWithoutNames(tmp_path)
    _, port = tlsServer(processes, authority, "oneshot")
    result = client(
        processes, "--tls", "--cafile", str(authority[0]), "localhost", str(port), "hi"
    )
    assert (result.returncode, result.stdout) == (1, b""), result
    assert result.stderr.decode() == (
        f"TLS failure with localhost:{port}: "
        "Certificate does not contain any `subjectAltName`s.\n"
    )


@pytest.mark.parametrize("mode", ["oneshot", "chat"])
def test_a_plain_client_on_a_tls_port(processes: Processes, authority, mode) -> None:
    """sockserve-client without --tls against a TLS port: the server closes
    without a byte of reply; the client says so and asks whether it is
    TLS, with exit status 1 (not an empty exit 0), and the server logs the
    failed handshake with the client's address."""
    server, port = tlsServer(processes, authority, mode)
    server.output.follow()
    result = client(processes, "127.0.0.1", str(port), "hello")
    assert (result.returncode, result.stdout) == (1, b""), result
    assert result.stderr.decode() == (
        "sockserve-client: the server did not answer: is it TLS? "
        f"(127.0.0.1:{port} closed the connection without a byte of reply; "
        "try --tls)\n"
    )
    log = server.output.waitForText(b"TLS handshake").decode()
    [line] = [line for line in log.splitlines() if "TLS handshake" in line]
    assert "failed the TLS handshake" in line, line
    assert "is it speaking TLS?" in line, line


@pytest.mark.parametrize("mode", ["oneshot", "chat", "echo"])
def test_tls_against_a_plain_port(processes: Processes, mode: str) -> None:
    """--tls against a server that does not speak TLS says so, in those
    words, not OpenSSL's "wrong version number"."""
    server = processes.server(mode=mode)
    result = client(
        processes, "--tls", "--insecure", "-t", "5", "127.0.0.1", str(server.port), "hi"
    )
    assert (result.returncode, result.stdout) == (1, b""), result
    assert result.stderr.decode() == (
        f"TLS failure with 127.0.0.1:{server.port}: the server does not speak TLS\n"
    )


def test_a_tls_record_is_not_printed() -> None:
    """A TLS alert coming back to a client not speaking TLS is not written
    to the terminal: the client notes it and closes."""
    import io

    from twisted.internet.testing import StringTransport

    from sockserve.client import PrintingClient

    output = io.BytesIO()
    printing = PrintingClient(output)
    transport = StringTransport()
    printing.makeConnection(transport)
    printing.dataReceived(b"\x15\x03\x03\x00\x02\x02\x46")
    assert output.getvalue() == b""
    assert printing.tlsRecord
    assert transport.disconnecting
    plain = PrintingClient(output)
    plain.makeConnection(StringTransport())
    plain.dataReceived(b"\x15 not TLS\n")
    assert output.getvalue() == b"\x15 not TLS\n"
    assert not plain.tlsRecord
