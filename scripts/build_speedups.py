"""Compile the tracker's hot path with mypyc (`partnerflow.speedups`); run by ./scripts/setup.

    .venv/bin/python scripts/build_speedups.py [--force]

Optional by design: without a C compiler or the Python headers, or with
PARTNERFLOW_SPEEDUPS=off, it says so and exits 0 (the tracker then runs the same modules as
plain Python). Skipped while the build's manifest matches the sources. The build goes to a
new directory that replaces the old one only once complete, manifest last, so a failed or
interrupted build never leaves a half-written one in use.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _say(message: str) -> None:
    print(f"setup: {message}", flush=True)


def _compiler() -> str | None:
    """Why a build cannot be made here, or None."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("cc") is None:
        return "no C compiler"
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").is_file():
        return "no Python headers (Python.h)"
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed (the dev extras)"
    return None


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Everything written to stdout and stderr, the compiler's too, goes to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def build(target: Path, work: Path) -> None:
    """mypyc + setuptools' build_ext, from `src` (so module names follow the paths)."""
    from mypyc.build import mypycify
    from setuptools import setup

    from partnerflow import speedups

    digests = {name: speedups.source_digest(name) for name in speedups.MODULES}
    paths = [str(speedups.source_path(name).relative_to(SRC)) for name in speedups.MODULES]
    staging = Path(tempfile.mkdtemp(prefix=".partnerflow-speedups-", dir=target.parent))
    try:
        previous = Path.cwd()
        os.chdir(SRC)
        try:
            extensions = mypycify(
                [
                    "--config-file", str(ROOT / "pyproject.toml"),
                    "--cache-dir", str(work / "mypy-cache"),
                    *paths,
                ],
                opt_level="3",
                target_dir=str(work / "c"),
            )  # fmt: skip
            setup(
                name="partnerflow-speedups",
                ext_modules=extensions,
                script_args=[
                    "--quiet", "build_ext", "--build-lib", str(staging),
                    "--build-temp", str(work / "temp"),
                ],
            )  # fmt: skip
        finally:
            os.chdir(previous)
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        modules = {}
        for name in speedups.MODULES:
            file = Path(*name.split(".")).with_suffix("")
            file = file.with_name(file.name + suffix)
            if not (staging / file).is_file():
                raise RuntimeError(f"mypyc produced no {file}")
            modules[name] = {"file": str(file), "sha256": digests[name]}
        groups = [p for p in staging.iterdir() if p.name.split(".")[0].endswith("__mypyc")]
        if len(groups) != 1:
            raise RuntimeError(f"expected one shared library, found {groups}")
        manifest = {
            "interpreter": speedups.interpreter_tag(),
            "group": groups[0].name.split(".")[0],
            "group_file": groups[0].name,
            "modules": modules,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    from partnerflow import speedups

    target = speedups.build_dir()
    if target is None:
        _say(f"{speedups.ENV}=off: the tracker's hot path runs as plain Python")
        return 0
    if not args.force and speedups.check_build(target)[0] is not None:
        _say(f"compiled hot path up to date ({target})")
        return 0
    why_not = _compiler()
    if why_not is not None:
        _say(f"{why_not}: the tracker's hot path runs as plain Python (slower, same results)")
        return 0
    _say("compiling the tracker's hot path with mypyc (about a minute, once)")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(target.name + "-build")
    try:
        with _output_to(work.with_suffix(".log")):
            build(target, work)
    except (Exception, SystemExit) as exc:  # a failed build is not fatal
        _say(f"compiling failed ({exc}; see {work.with_suffix('.log')}): plain Python it is")
        return 0
    _say(f"compiled hot path built ({target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
