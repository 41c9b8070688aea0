"""A generated folder as a cache that never deletes what it did not write.

``synthetic.json`` (the marker, written last: its presence means the folder is complete) is
exactly {"generator": <who wrote it>, "params": <its parameters>, "manifest": _MANIFEST}, and
the manifest lists, one per line, every file the generator wrote. A folder is only ever
replaced when its marker is exactly that shape with our generator's name and every file in it
is listed in its manifest; then only the listed files are deleted (folders only when empty).
Writing goes to a new sibling renamed into place, after the free space is checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

_MARKER = "synthetic.json"
_MANIFEST = "synthetic-files.txt"
_GENERATORS = ("SyntheticDetection", "synthetic_widerface")


def _progress(indices: range, progress: bool) -> Any:
    if progress:
        try:
            from tqdm.auto import tqdm

            return tqdm(indices, desc="writing synthetic dataset", unit="img", leave=False)
        except ImportError:
            pass
    return indices


def _need_pillow(generator: str) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError(
            f"{generator} writes JPEG files with Pillow, which is not installed: "
            "pip install 'fastloader[datasets]'"
        ) from None


class _Marker(NamedTuple):
    generator: str
    params: dict[str, Any]


def _read_marker(folder: Path) -> _Marker | None:
    """The folder's marker when it is exactly one a generator here writes, else None."""
    try:
        content = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(content, dict)
        or set(content) != {"generator", "params", "manifest"}
        or content["generator"] not in _GENERATORS
        or content["manifest"] != _MANIFEST
        or not isinstance(content["params"], dict)
    ):
        return None
    return _Marker(content["generator"], content["params"])


def _listed_files(folder: Path) -> set[str] | None:
    """The manifest's relative paths, or None when it is missing or lists a path that is not a
    plain relative one inside the folder (then it is not trusted with any deletion)."""
    try:
        lines = (folder / _MANIFEST).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    listed = set()
    for line in lines:
        parts = line.split("/")
        if not line or line.startswith("/") or any(p in ("", ".", "..") for p in parts):
            return None
        listed.add(line)
    return listed | {_MARKER, _MANIFEST}


def _entries_under(folder: Path) -> set[str]:
    """Every entry under folder (symlinks not followed), relative and '/'-separated, folders
    with a trailing '/'."""
    found = set()
    for top, dirs, files in os.walk(folder):
        relative = Path(top).relative_to(folder)
        for name in dirs:
            link = os.path.islink(os.path.join(top, name))
            found.add((relative / name).as_posix() + ("" if link else "/"))
        found.update((relative / name).as_posix() for name in files)
    return found


def _with_folders(listed: set[str]) -> set[str]:
    """The listed files and the folders holding them (with a trailing '/')."""
    folders = {
        "/".join(name.split("/")[:k]) + "/"
        for name in listed
        for k in range(1, name.count("/") + 1)
    }
    return listed | folders


def _refuse_unless_replaceable(folder: Path, generator: str) -> None:
    """Raises unless ``folder`` is missing, empty, or holds only what ``generator`` wrote."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"root should be a folder, but {folder} is a file")
    if not any(folder.iterdir()):
        return
    marker = _read_marker(folder)
    if marker is None:
        raise ValueError(
            f"root {folder} is a non-empty folder not written by {generator} (no {_MARKER} of "
            "its own; one written by an older fastloader has an older marker: delete it "
            "yourself); pass a new or empty folder. Nothing was changed"
        )
    if marker.generator != generator:
        raise ValueError(
            f"root {folder} was written by {marker.generator}, not {generator}; pass a new or "
            "empty folder. Nothing was changed"
        )
    listed = _listed_files(folder)
    if listed is None:
        raise ValueError(
            f"root {folder}: its file list {_MANIFEST} is missing or malformed, so what "
            f"{generator} wrote there is unknown; pass a new or empty folder. Nothing was changed"
        )
    foreign = sorted(_entries_under(folder) - _with_folders(listed))
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        shown = ", ".join(foreign[:3]) + more
        raise ValueError(
            f"root {folder} holds files {generator} did not write ({shown}); it replaces a folder "
            "of its own with other parameters only when it holds nothing else. Move them or pass "
            "another folder. Nothing was changed"
        )


def _remove_written(folder: Path) -> None:
    """Deletes the files the manifest of ``folder`` lists, then its folders that are left empty;
    anything else stays (a file added after the check is left, with the folder holding it)."""
    listed = _listed_files(folder) or {_MARKER}
    for name in sorted(listed - {_MARKER, _MANIFEST}) + [_MANIFEST, _MARKER]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)  # unlink never follows a symlink
    for top, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):  # not empty: something we did not write is there
            os.rmdir(top)
    if folder.exists():
        warnings.warn(
            f"{folder} was left in place: it holds files added while it was being replaced",
            stacklevel=3,
        )


def _check_free_space(folder: Path, needed: int) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:  # not measurable here: writing reports a full disk itself
        return
    if needed > free:
        raise ValueError(
            f"writing this dataset to {folder} needs about {needed / 2**30:.1f} GiB but "
            f"{free / 2**30:.1f} GiB are free there; lower num_images or the image size, or "
            "pass another root. Nothing was written"
        )


def _ensure_generated(
    folder: Path,
    generator: str,
    params: dict[str, Any],
    write: Callable[[Path, dict[str, Any], bool], list[str]],
    progress: bool,
    needed_bytes: int = 0,
) -> bool:
    """Makes ``folder`` hold ``write``'s output for ``params``; True when it had to be written.

    A folder already holding exactly this output is reused. Otherwise the output is written to
    a new sibling, which is renamed into place; a previous output of the same generator (and
    nothing else) is renamed aside first and then removed file by file from its manifest.
    """
    if _read_marker(folder) == (generator, params):
        return False
    _refuse_unless_replaceable(folder, generator)
    _need_pillow(generator)
    _check_free_space(folder, needed_bytes)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = folder.parent / f".{folder.name}.tmp-{tag}"
    staging.mkdir()  # new and ours alone: removing it on failure deletes only what we wrote
    try:
        written = write(staging, params, progress)
        (staging / _MANIFEST).write_text("".join(name + "\n" for name in sorted(written)))
        marker = {"generator": generator, "params": params, "manifest": _MANIFEST}
        (staging / _MARKER).write_text(json.dumps(marker, sort_keys=True))  # last: complete
        if _read_marker(folder) == (generator, params):  # another process finished first
            return False
        _refuse_unless_replaceable(folder, generator)  # checked again: it may have changed
        old = None
        if folder.exists():
            if any(folder.iterdir()):
                old = folder.parent / f".{folder.name}.old-{tag}"
                os.rename(folder, old)
            else:
                folder.rmdir()
        try:
            os.rename(staging, folder)
        except OSError:
            if old is not None and not folder.exists():
                os.rename(old, folder)  # put the previous output back
                old = None
            if _read_marker(folder) != (generator, params):  # lost a race to another writer
                raise
            return False
        finally:
            if old is not None:
                _remove_written(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return True


def default_cache_root(params: dict[str, Any]) -> Path:
    """The cache folder for these generator parameters under the system temp directory."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fastloader-synthetic-{key}"
