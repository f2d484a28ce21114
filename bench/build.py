"""
Building the C load generator with the machine's C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "loadgen.c"
BUILD_DIR = HERE / "build"
BINARY = BUILD_DIR / "loadgen"
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror")


class BuildError(RuntimeError):
    """
    The load generator could not be built.
    """


def compiler() -> str:
    """
    Return the C compiler to use: C{$CC}, else C{cc}, else C{gcc}.
    """
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise BuildError("no C compiler found (install gcc, or set CC)")


def compilerVersion() -> str:
    """
    Return the first line of the compiler's C{--version}.
    """
    try:
        output = subprocess.run(
            [compiler(), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (BuildError, OSError, subprocess.TimeoutExpired):
        return "unknown"
    return output.splitlines()[0] if output else "unknown"


def buildLoadGenerator(force: bool = False) -> Path:
    """
    Compile C{loadgen.c} into C{bench/build/loadgen} unless it is up to date,
    and return the binary's path.
    """
    if (
        not force
        and BINARY.exists()
        and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime
    ):
        return BINARY
    BUILD_DIR.mkdir(exist_ok=True)
    command = [compiler(), *CFLAGS, "-o", str(BINARY), str(SOURCE)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return BINARY
