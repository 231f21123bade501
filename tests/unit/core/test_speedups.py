"""`partnerflow.speedups`: the compiled hot path is used only when its build matches the
sources and the interpreter, all of its modules or none, and never breaks an import."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from partnerflow import speedups

GROUP = "abc123__mypyc"


def _build(directory: Path, **changes: object) -> Path:
    """A build directory whose manifest matches the current sources (files are stand-ins)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    modules = {}
    for name in speedups.MODULES:
        file = Path(*name.split(".")).with_suffix("")
        file = file.with_name(file.name + suffix)
        (directory / file).parent.mkdir(parents=True, exist_ok=True)
        (directory / file).write_bytes(b"not an extension module")
        modules[name] = {"file": str(file), "sha256": speedups.source_digest(name)}
    (directory / f"{GROUP}{suffix}").write_bytes(b"not an extension module")
    manifest: dict[str, object] = {
        "interpreter": speedups.interpreter_tag(),
        "group": GROUP,
        "group_file": f"{GROUP}{suffix}",
        "modules": modules,
    }
    manifest.update(changes)
    (directory / speedups.MANIFEST).write_text(json.dumps(manifest))
    return directory


def test_a_build_matching_the_sources_is_used(tmp_path: Path) -> None:
    files, why = speedups.check_build(_build(tmp_path))
    assert why == "compiled (mypyc)"
    assert files is not None
    assert set(files) == {*speedups.MODULES, GROUP}


def test_no_build_or_a_broken_manifest_means_plain_python(tmp_path: Path) -> None:
    assert speedups.check_build(tmp_path) == (None, "not built")
    (tmp_path / speedups.MANIFEST).write_text("{not json")
    files, why = speedups.check_build(tmp_path)
    assert files is None and why.startswith("unreadable build manifest")


@pytest.mark.parametrize(
    "broken",
    [
        {"modules": ["partnerflow.web.http1"]},
        {"modules": None},
        {"group": None, "group_file": None},
        {"interpreter": None, "modules": {}},
    ],
)
def test_a_malformed_manifest_means_plain_python_never_an_error(
    tmp_path: Path, broken: dict[str, object]
) -> None:
    files, _why = speedups.check_build(_build(tmp_path, **broken))
    assert files is None
    build = _build(tmp_path / "entry")
    manifest = json.loads((build / speedups.MANIFEST).read_text())
    del manifest["modules"]["partnerflow.core.ids"]["file"]
    (build / speedups.MANIFEST).write_text(json.dumps(manifest))
    files, why = speedups.check_build(build)
    assert files is None and why.startswith("unreadable build manifest")


def test_a_build_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    files, why = speedups.check_build(_build(tmp_path, interpreter="cpython-399-x.so"))
    assert files is None and "another interpreter" in why


def test_one_edited_source_makes_the_whole_build_stale(tmp_path: Path) -> None:
    build = _build(tmp_path)
    manifest = json.loads((build / speedups.MANIFEST).read_text())
    manifest["modules"]["partnerflow.web.tracker"]["sha256"] = "0" * 64
    (build / speedups.MANIFEST).write_text(json.dumps(manifest))
    files, why = speedups.check_build(build)
    assert files is None
    assert why.startswith("stale (partnerflow.web.tracker changed")


def test_a_build_of_another_module_list_or_missing_files_is_not_used(tmp_path: Path) -> None:
    build = _build(tmp_path / "a")
    manifest = json.loads((build / speedups.MANIFEST).read_text())
    del manifest["modules"]["partnerflow.core.ids"]
    (build / speedups.MANIFEST).write_text(json.dumps(manifest))
    assert speedups.check_build(build)[0] is None

    build = _build(tmp_path / "b")
    next(build.rglob("http1*")).unlink()
    files, why = speedups.check_build(build)
    assert files is None and why.startswith("build incomplete")


def _status_in_child(setting: str) -> str:
    code = (
        "import partnerflow.speedups as s, partnerflow.web.http1 as h, partnerflow.core.ids as i;"
        "print(s.STATUS); print(h.__file__); print(i.new_click_id())"
    )
    env = {**os.environ, speedups.ENV: setting}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_off_runs_plain_python() -> None:
    out = _status_in_child("off")
    assert out.startswith("plain Python (PARTNERFLOW_SPEEDUPS=off)")
    assert out.splitlines()[1].endswith("http1.py")


def test_a_build_that_does_not_load_falls_back_to_plain_python(tmp_path: Path) -> None:
    # Matching manifest, garbage libraries: the import of the shared library fails, so no
    # member is ever loaded from the build; the modules import and work as plain Python.
    out = _status_in_child(str(_build(tmp_path)))
    status, http1_file, click_id = out.splitlines()
    assert status.startswith("plain Python (the build does not load")
    assert http1_file.endswith("http1.py")
    assert len(click_id) > 10


@pytest.mark.skipif(
    not speedups.STATUS.startswith("compiled"),
    reason=f"no current compiled build here: {speedups.STATUS}",
)
def test_the_current_build_is_what_this_process_runs() -> None:
    import partnerflow.web.http1 as http1

    assert speedups.compiled()
    assert not http1.__file__.endswith(".py")
    out = _status_in_child("")
    assert out.startswith("compiled (mypyc)")
