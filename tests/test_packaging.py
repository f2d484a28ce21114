"""
Packaging: the wheel built from a clean copy of the source tree, installed in a
fresh virtualenv, gives a working C{twistd sockserve} and C{sockserve-client}.

This is the check that the C{twisted/plugins} file really ships (daphne lost its
plugin from published wheels twice). One virtualenv is built per session;
installing into it downloads Twisted from the package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sockserve import __version__
from tests.processes import Processes, cleanEnvironment, installedProgram

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SOURCE = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600.0

NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".venvs",
    ".venv-twisted-*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".pytest_cache",
    "dropin.cache",
    ".coverage*",
    "htmlcov",
)


def check(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """
    Run a packaging step; fail with its output if it fails.
    """
    result = subprocess.run(
        args,
        cwd=cwd,
        env=cleanEnvironment(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    Build the wheel from a copy of the source tree (so no stale build
    directory of the checkout leaks into it).
    """
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(SOURCE, source, ignore=NOT_SOURCE)
    dist = work / "dist"
    check(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        cwd=work,
    )
    [built] = dist.glob("sockserve-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    Create a fresh virtualenv, install the wheel into it, and return its bin
    directory.
    """
    venv = tmp_path_factory.mktemp("venv")
    check([sys.executable, "-m", "venv", str(venv)], cwd=venv)
    check(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        cwd=venv,
    )
    return venv / "bin"


def test_wheel_contents(wheel: Path) -> None:
    """
    The wheel holds the package, its C{py.typed}, and the plugin module under
    C{twisted/plugins} with no C{__init__.py} in C{twisted/} or
    C{twisted/plugins/} (which would shadow Twisted itself).
    """
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "twisted/plugins/sockserve_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert "sockserve/__init__.py" in names
    assert "sockserve/tap.py" in names
    assert "sockserve/py.typed" in names
    assert not [name for name in names if name.startswith("tests/")]


def test_twistd_lists_the_plugin(installed: Path, processes: Processes) -> None:
    """
    In a fresh virtualenv with only the wheel installed, C{twistd --help} lists
    C{sockserve}.
    """
    result = processes.run([installedProgram("twistd", installed), "--help"])
    assert result.returncode == 0, result
    commands = result.stdout.decode().partition("Commands:")[2]
    assert any(line.split()[:1] == ["sockserve"] for line in commands.splitlines())


def test_installed_server_serves(installed: Path, processes: Processes) -> None:
    """
    The installed C{twistd -n sockserve --port 0 --mode oneshot} starts and
    answers a request from the installed client.
    """
    server = processes.server(
        mode="oneshot", command=[installedProgram("twistd", installed), "-n"]
    )
    result = processes.run(
        [
            installedProgram("sockserve-client", installed),
            "127.0.0.1",
            str(server.port),
            "hello",
        ]
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"OK .. hello\n",
        b"",
    )
    # The server is the installed copy, not the checkout.
    assert str(installed.parent) in server.output.text()


def test_installed_client_version(installed: Path, processes: Processes) -> None:
    """
    The installed C{sockserve-client --version} runs and prints the version.
    """
    result = processes.run(
        [installedProgram("sockserve-client", installed), "--version"]
    )
    assert (result.returncode, result.stdout) == (
        0,
        f"sockserve-client {__version__}\n".encode(),
    )


def test_installed_passwd_writes_an_accounts_file(
    installed: Path, processes: Processes
) -> None:
    """
    The wheel ships C{sockserve-passwd} (and argon2-cffi with it): it writes
    an account, its password hashed with argon2id.
    """
    path = processes.directory / "accounts"
    result = processes.run(
        [installedProgram("sockserve-passwd", installed), str(path), "alice"],
        input=b"wonderland\n",
    )
    assert result.returncode == 0, result.stderr
    assert path.read_text().count("alice:$argon2id$") == 1


def test_dev_serve_sets_up_sockserve_alone_quietly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """
    On a fresh checkout, C{./dev serve} installs sockserve alone (none of
    the test tools), says two lines of what it does, and runs the server;
    C{./dev} alone prints its usage (nothing else) and exits 2.
    """
    checkout = tmp_path_factory.mktemp("checkout") / "sockserve"
    shutil.copytree(SOURCE, checkout, ignore=NOT_SOURCE)
    usage = subprocess.run(
        ["./dev"], cwd=checkout, capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2
    assert usage.stdout.startswith("sockserve's one entry point")
    assert "set -euo" not in usage.stdout
    result = check(["./dev", "serve", "--version"], cwd=checkout)
    assert result.stdout == f"sockserve {__version__}\n"
    assert result.stderr.splitlines() == [
        "[dev] creating .venv",
        "[dev] installing sockserve into .venv",
    ]
    venv = checkout / ".venv" / "bin"
    assert (venv / "twistd").exists()
    assert not (venv / "pytest").exists()
    assert not (venv / "mypy").exists()
    # Started again with nothing changed, it runs no pip at all (pip is
    # taken away to prove it); with a module added, it links it.
    [pip] = (checkout / ".venv" / "lib").glob("python3*/site-packages/pip")
    pip.rename(pip.with_name("pip-away"))
    try:
        again = check(["./dev", "serve", "--version"], cwd=checkout)
    finally:
        pip.with_name("pip-away").rename(pip)
    assert (again.stdout, again.stderr) == (f"sockserve {__version__}\n", "")
    (checkout / "sockserve" / "_added.py").write_text('"""Added."""\n')
    check(["./dev", "serve", "--version"], cwd=checkout)
    check([str(venv / "python"), "-c", "import sockserve._added"], cwd=checkout.parent)


@pytest.mark.parametrize(
    ("arguments", "part"),
    [
        ([], False),
        (["-x"], False),
        (["-x", "-n", "2"], False),
        (["-k", "chat", "-x"], True),
        (["-kchat"], True),
        (["tests/test_tap.py"], True),
        (["tests/test_tap.py::test_every_option"], True),
        (["-m", "not e2e"], True),
        (["--lf"], True),
    ],
)
def test_coverage_minimum_applies_to_full_runs_only(
    arguments: list[str], part: bool
) -> None:
    """
    C{./dev test} holds a run to coverage's minimum only when it runs the
    whole suite: C{./dev test -k chat -x} (README's own example) selects
    part of it, which always falls short.
    """
    script = (SOURCE / "dev").read_text()
    assert 'if selects_part "$@"; then' in script
    start = script.index("selects_part() {")
    function = script[start : script.index("\n}\n", start) + 3]
    result = subprocess.run(
        ["bash", "-c", function + 'selects_part "$@"', "bash", *arguments],
        capture_output=True,
        check=False,
    )
    assert (result.returncode == 0) == part, result
