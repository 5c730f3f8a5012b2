"""Crash-safe file primitives: every durable change is write tmp → fsync →
``os.replace`` → fsync(dir), so a crash leaves the old or the new file, never a
torn one.

``FaultHook`` is called with a point name between the steps; production passes a
no-op, the crash tests raise there to simulate a power cut at that point.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "TMP_SUFFIX",
    "FaultHook",
    "atomic_write",
    "fsync_dir",
    "no_fault",
    "remove_durably",
    "replace_durably",
]

FaultHook = Callable[[str], None]
TMP_SUFFIX = ".tmp"


def no_fault(point: str) -> None:
    """The production fault hook: does nothing."""


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o644, fault: FaultHook = no_fault
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    The temporary file is created with ``mode`` from the start, so a secret is
    never readable by others, not even for an instant.
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT honours the umask; the mode must not
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fault(f"{path.name}:written")
        os.fsync(fd)
    except Exception:
        # A real I/O error: tidy up. A simulated crash (a BaseException from the
        # fault hook) leaves the tmp file behind, as a power cut would.
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    fault(f"{path.name}:fsynced")
    os.replace(tmp, path)
    fault(f"{path.name}:replaced")
    fsync_dir(path.parent)


def replace_durably(src: Path, dst: Path, *, fault: FaultHook = no_fault) -> None:
    """Rename an already fsynced ``src`` over ``dst`` and sync both directories."""
    os.replace(src, dst)
    fault(f"{dst.name}:replaced")
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def remove_durably(path: Path) -> None:
    """Unlink ``path`` if present; the directory entry removal is synced."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
