"""The tracker's hot path compiled to C with mypyc, when a build of it matches the sources.

Why: a click's own Python (the server's framing, the handler, the counters, the ids) is
most of its CPU; compiled by mypyc from these same type-checked modules it costs 20-30% less
per click (docs/performance.md). The build is optional — a fresh machine with only Python
and git runs the very same modules as plain Python — and is made by `./scripts/setup`
(`scripts/build_speedups.py`) when a C compiler and the Python headers are there.

A build lives outside the source tree, in `<venv>/partnerflow-speedups/` (or the directory
named by `PARTNERFLOW_SPEEDUPS`; `PARTNERFLOW_SPEEDUPS=off` never loads one), with a
manifest of the SHA-256 of each module's source and the interpreter it was built for. It is
used only when every module matches: mypyc compiles the modules as one group whose native
calls into each other assume all of them are compiled, so a process never mixes compiled
and interpreted members of the group. An edited source (a stale build) or another
interpreter falls back to plain Python for all of them; `STATUS` says which and why (the
tracker prints it at start and in /healthz).

Installed from `partnerflow/__init__.py`, before any of the modules can be imported.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# The compiled group: the click's path through the built-in server (docs/tracking.md).
MODULES: tuple[str, ...] = (
    "partnerflow.core.ids",
    "partnerflow.storage.counters",
    "partnerflow.storage.event_writer",
    "partnerflow.tracking.clicks",
    "partnerflow.tracking.devices",
    "partnerflow.tracking.geo",
    "partnerflow.tracking.identifiers",
    "partnerflow.web.http1",
    "partnerflow.web.tracker",
)
MANIFEST = "manifest.json"
ENV = "PARTNERFLOW_SPEEDUPS"
PACKAGE_DIR = Path(__file__).resolve().parent

STATUS = "not built"


def build_dir() -> Path | None:
    """Where a build is looked for (None: turned off)."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    return Path(setting) if setting else Path(sys.prefix) / "partnerflow-speedups"


def interpreter_tag() -> str:
    """What the build must have been made by: this exact interpreter version and ABI (mypyc's
    runtime uses CPython internals, so not just any 3.11)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return f"{sys.implementation.cache_tag}-{sys.hexversion:08x}{suffix}"


def source_path(module: str) -> Path:
    return PACKAGE_DIR.joinpath(*module.split(".")[1:]).with_suffix(".py")


def source_digest(module: str) -> str:
    return hashlib.sha256(source_path(module).read_bytes()).hexdigest()


class _CompiledFinder(importlib.abc.MetaPathFinder):
    """Serves the group's modules (and its shared library) from the build directory."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def check_build(directory: Path) -> tuple[dict[str, Path] | None, str]:
    """The files to load, or None and why not. Never raises: whatever is wrong with a build
    means plain Python."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "not built"
    except (OSError, ValueError) as exc:
        return None, f"unreadable build manifest ({exc})"
    try:
        return _files(directory, manifest)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return None, f"unreadable build manifest ({type(exc).__name__}: {exc})"


def _files(directory: Path, manifest: Any) -> tuple[dict[str, Path] | None, str]:
    if manifest.get("interpreter") != interpreter_tag():
        return None, "built for another interpreter: rebuild with ./scripts/setup"
    modules = manifest["modules"]
    if set(modules) != set(MODULES):
        return None, "built for another module list: rebuild with ./scripts/setup"
    files: dict[str, Path] = {}
    for name in MODULES:
        try:
            current = source_digest(name)
        except OSError:
            return None, f"source of {name} missing"
        if modules[name]["sha256"] != current:
            return None, f"stale ({name} changed since the build): rebuild with ./scripts/setup"
        files[name] = directory / str(modules[name]["file"])
    files[str(manifest["group"])] = directory / str(manifest["group_file"])
    if not all(f.is_file() for f in files.values()):
        return None, "build incomplete: rebuild with ./scripts/setup"
    return files, "compiled (mypyc)"


def install() -> str:
    """Load the compiled group when a matching build exists; returns (and keeps in
    `STATUS`) what the hot path runs as."""
    global STATUS
    if any(name in sys.modules for name in MODULES):
        return STATUS  # too late to switch (or done already): keep what is loaded
    directory = build_dir()
    if directory is None:
        STATUS = f"plain Python ({ENV}=off)"
        return STATUS
    files, why = check_build(directory)
    if files is None:
        STATUS = f"plain Python ({why})"
        return STATUS
    group = next(name for name in files if name not in MODULES)
    finder = _CompiledFinder(files)
    sys.meta_path.insert(0, finder)
    try:  # the shared library: a wrong or broken build fails here, before any member loads
        importlib.import_module(group)
    except Exception as exc:  # any failure means: run as plain Python
        sys.meta_path.remove(finder)
        STATUS = f"plain Python (the build does not load: {exc})"
        return STATUS
    STATUS = why
    return STATUS


def compiled() -> bool:
    """Whether this process runs the compiled group."""
    module = sys.modules.get("partnerflow.web.http1")
    return module is not None and not str(getattr(module, "__file__", "")).endswith(".py")
