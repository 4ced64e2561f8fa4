"""The lock on a run's checkpoint folder, and folders that a failed run leaves behind.

Two training runs writing to one `--checkpoint` folder would interleave their
checkpoints and state files. A run therefore holds `fcntl.flock` on
`<folder>/run.lock` while it trains; a second run finds the lock taken and
refuses at once, naming the holder from what the holder wrote into the file
(pid, host, start time). The kernel releases a flock when its process ends,
however it ends, so a run killed with `kill -9` leaves at most a stale file,
which the next run simply takes over. Locks are advisory and per host unless
the file system passes flock on (Linux NFS emulates it with POSIX locks).

A run that fails before it writes anything (missing data, a corrupt image)
removes the folders it created for the lock, and never a folder that existed
before it started.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from typing import Iterator

LOCK_FILE = "run.lock"


class FolderInUse(ValueError):
    """Another live process holds the lock on the folder (exit status 2, like bad flags)."""


@contextlib.contextmanager
def made_folder(directory: str) -> Iterator[None]:
    """Creates `directory` (and missing parents) for the block; afterwards
    removes the ones it created, innermost first, if they are still empty."""
    created = _missing_folders(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        yield
    finally:
        for path in created:
            try:
                os.rmdir(path)
            except OSError:  # something was written there (or it is gone): keep the rest
                break


def _missing_folders(directory: str) -> list[str]:
    """The folders `os.makedirs(directory)` would create, innermost first."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


@contextlib.contextmanager
def hold(directory: str) -> Iterator[None]:
    """Holds the lock on `directory` (created if needed) for the block.

    On a file system that cannot lock (`flock` fails otherwise), a warning
    says so and the block runs unlocked.

    Raises:
      FolderInUse: another process holds it; the message names that process.
      OSError: the folder or the lock file cannot be created.
    """
    with made_folder(directory):
        path = os.path.join(directory, LOCK_FILE)
        fd = _acquire(path, directory)
        try:
            yield
        finally:
            # Unlinked before the flock is released: `_acquire` checks that
            # the file it locked is still the one the path names.
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)


def _acquire(path: str, directory: str) -> int:
    """Locks `path` (creating it) and writes this process's details into it; returns the fd."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                # A file system without locks should not stop every run.
                print(f"warning: cannot lock {path!r} ({err.strerror}); nothing stops another "
                      f"run from writing to {directory!r}", file=sys.stderr, flush=True)
                break
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderInUse(f"`checkpoint` {directory!r} is in use by another run ({holder}); "
                              "wait for it to finish or stop it, or pass another `checkpoint`"
                              ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # a holder that was releasing removed the file we locked: lock the new one
    details = {"pid": os.getpid(), "host": socket.gethostname(),
               "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(details) + "\n").encode())
    return fd


def _read_holder(fd: int) -> str:
    """`pid P on host H, started T` from a held lock file (its holder may not have written yet)."""
    try:
        details = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return (f"pid {details['pid']} on host {details['host']}, "
                f"started {details['started']}")
    except (OSError, ValueError, TypeError, KeyError):
        return "a process that has not written its details yet"
