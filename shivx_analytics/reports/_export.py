"""A report set (every file `report` and `demo` write into one directory) appears whole or not at all.

write_atomic (reports/base.py) makes each file whole; a set of files needs more: moving the
files in one by one, a failure (or a reader) between two moves saw new files beside old ones.
The set is rendered into a staging directory beside the target, the target's other entries are
carried over (hard links), and the staging directory takes the target's place in one step: Linux
renameat2(RENAME_EXCHANGE) swaps the two directories atomically, elsewhere two renames leave
the old set aside first (the target is missing for an instant, never a mix). Concurrent writers
of one directory each swap in a whole set; the last one wins.

A target that is a mount point cannot be renamed: there the files are moved in one by one, each
atomically (the set as before).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 2  # linux/fs.h


class UnwritableDirectory(OSError):
    """The target directory, or a staging directory for it, cannot be made."""


def write_report_set(directory: Path, render: Callable[[Path], None]) -> list[Path]:
    """``render(staging)`` writes the set into an empty directory; then it replaces the entries of
    the same names in ``directory`` all at once. Returns the set's paths under ``directory``.

    Raises UnwritableDirectory when the directory or its staging cannot be made; on any failure ``directory`` is left as it was and no staging directory remains.
    """
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableDirectory(exc.errno, exc.strerror or str(exc), str(directory)) from None
    try:
        swappable = not os.path.ismount(directory)
        try:
            try:
                staging = Path(tempfile.mkdtemp(prefix=f".{directory.resolve().name}.staging-",
                                                dir=directory.resolve().parent if swappable else directory))
            except PermissionError:  # the parent is not ours to write: stage inside, move file by file
                swappable = False
                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
        except OSError as exc:
            raise UnwritableDirectory(exc.errno, exc.strerror or str(exc), str(directory)) from None
        try:
            render(staging)
            names = sorted(item.name for item in staging.iterdir())
            if swappable:
                _carry_over(directory, staging, skip=set(names))
                _swap_in(staging, directory)
            else:
                _move_each(staging, directory)
            return [directory / name for name in names]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        if created:  # a failed first run leaves no empty folder behind either
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _carry_over(directory: Path, staging: Path, skip: set[str]) -> None:
    """The target's entries that are not part of the new set stay: hard-linked into the staging
    directory (copied where links are refused), so the swap keeps them."""
    for item in directory.iterdir():
        if item.name in skip:
            continue
        destination = staging / item.name
        if item.is_symlink():
            os.symlink(os.readlink(item), destination)
        elif item.is_dir():
            shutil.copytree(item, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, destination)


def _link_or_copy(source, destination) -> None:  # noqa: ANN001
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _swap_in(staging: Path, directory: Path) -> None:
    """``staging`` becomes ``directory``; the old contents end up in ``staging`` (removed by the caller)."""
    if _exchange(staging, directory):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.resolve().parent))
    os.rmdir(aside)
    os.rename(directory, aside)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(aside, directory)
        raise
    os.rename(aside, staging)  # the caller removes it


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if function(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # kernel or file system without it
        return False
    raise OSError(code, os.strerror(code), str(second))


def _move_each(staging: Path, directory: Path) -> None:
    for item in sorted(staging.iterdir()):
        destination = directory / item.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(item, destination)
