"""
Make irctest ready to run: its sdist fetched from PyPI (a pinned release,
checked against its sha256), unpacked, patched, and a virtualenv of its own with
the few packages its server tests import.

Everything lives in C{conformance/cache/} (git-ignored) and is done once: a
second run only checks what is there.

pip cannot install irctest 0.1.2 (its C{setup.py} reads a C{requirements.txt}
the sdist lacks), and C{pip download} stops at the same step after downloading
it. So pip is asked where the file is (its log names the link it found on the
index it is configured with), and the file is fetched from there and checked
against the pinned sha256.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
PATCH = HERE / "irctest-0.1.2.patch"
REQUIREMENTS = HERE / "requirements.txt"

IRCTEST_VERSION = "0.1.2"
IRCTEST_SDIST = f"irctest-{IRCTEST_VERSION}.tar.gz"
IRCTEST_SHA256 = "bc37d4e9e0ad926be039431d029e23b1d93813d75df8ed49be144a639c8dfd37"
"""The sha256 of irctest 0.1.2's sdist, the only release since 2017."""

FETCH_TIMEOUT = 120.0


class SetupError(Exception):
    """
    irctest could not be made ready; the message says why, in one line.
    """


@dataclass(frozen=True)
class Irctest:
    """
    irctest, ready to run.

    @ivar tree: the unpacked, patched sdist (put it on C{PYTHONPATH}).
    @ivar python: the conformance virtualenv's interpreter.
    """

    tree: Path
    python: Path


def say(message: str) -> None:
    """
    Tell the user what is being done.
    """
    sys.stderr.write(f"[conformance] {message}\n")


def sha256(path: Path) -> str:
    """
    Return the sha256 of the file at C{path}, in hex.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def sdistLink(python: str = sys.executable) -> str:
    """
    Ask pip where irctest's sdist is on the index it is configured with.

    @raise SetupError: if pip's log names no link to it.
    """
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "pip.log"
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                # It fails at building irctest's metadata anyway: no need to
                # install setuptools into an isolated build environment first.
                "--no-build-isolation",
                "--no-binary",
                ":all:",
                "--dest",
                scratch,
                "--log",
                str(log),
                f"irctest=={IRCTEST_VERSION}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
        text = log.read_text(errors="replace") if log.exists() else ""
    links = re.findall(rf"\bhttps?://\S+/{re.escape(IRCTEST_SDIST)}\b", text)
    if not links:
        raise SetupError(
            f"pip did not find {IRCTEST_SDIST} on its index "
            f"(pass --sdist PATH to use a copy)"
        )
    return str(links[0])


def fetchSdist(cache: Path, copy: Path | None = None) -> Path:
    """
    Return the path of irctest's sdist in C{cache}, fetching it first unless
    it is there: from C{copy} if given, else from the package index.

    @raise SetupError: if it cannot be had, or its sha256 is not the pinned one.
    """
    target = cache / IRCTEST_SDIST
    if target.exists() and sha256(target) == IRCTEST_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    if copy is not None:
        say(f"copying {copy}")
        shutil.copyfile(copy, partial)
    else:
        link = sdistLink()
        say(f"fetching {IRCTEST_SDIST}")
        try:
            with (
                urllib.request.urlopen(link, timeout=FETCH_TIMEOUT) as response,
                partial.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except OSError as e:
            raise SetupError(f"could not fetch {IRCTEST_SDIST}: {e}") from e
    found = sha256(partial)
    if found != IRCTEST_SHA256:
        partial.unlink()
        raise SetupError(
            f"{IRCTEST_SDIST} has sha256 {found}, not the pinned {IRCTEST_SHA256}"
        )
    partial.replace(target)
    return target


def unpack(sdist: Path, cache: Path, patch: Path = PATCH) -> Path:
    """
    Return the unpacked, patched irctest tree in C{cache}, unpacking and
    patching C{sdist} unless it is there already for the same patch.

    @raise SetupError: if the patch does not apply.
    """
    tree = cache / f"irctest-{IRCTEST_VERSION}"
    stamp = tree / ".patched"
    want = sha256(patch)
    if stamp.exists() and stamp.read_text() == want:
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(cache, filter="data")
    applied = subprocess.run(
        ["patch", "-p1", "--forward", "--batch", "--silent", "-i", str(patch)],
        cwd=tree,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if applied.returncode != 0:
        raise SetupError(
            f"{patch.name} does not apply: "
            f"{(applied.stdout + applied.stderr).strip().splitlines()[-1:]}"
        )
    stamp.write_text(want)
    return tree


def virtualenv(cache: Path, requirements: Path = REQUIREMENTS) -> Path:
    """
    Return the interpreter of the conformance virtualenv in C{cache}, creating
    it or installing C{requirements} into it when they changed.

    @raise SetupError: if pip fails.
    """
    venv = cache / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    want = sha256(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    if not python.exists():
        say(f"creating {venv.relative_to(HERE.parent)}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    say(f"installing {requirements.name} into it")
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        sys.stderr.write(installed.stdout + installed.stderr)
        raise SetupError(f"pip could not install {requirements.name}")
    stamp.write_text(want)
    return python


def prepare(cache: Path = CACHE, copy: Path | None = None) -> Irctest:
    """
    Make irctest ready (see the module's docstring) and return where it is.
    """
    sdist = fetchSdist(cache, copy)
    tree = unpack(sdist, cache)
    python = virtualenv(cache)
    return Irctest(tree=tree, python=python)


def environment(irctest: Irctest) -> dict[str, str]:
    """
    Return the environment to run C{python -m conformance.run_irctest} in: the
    irctest tree and this repository importable, nothing else added.
    """
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["PYTHONPATH"] = os.pathsep.join([str(irctest.tree), str(HERE.parent)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
