"""One writer per OUT: a lock that every writing command holds while it writes.

Two builds into one OUT would delete each other's staging and lose work, so a writer (ingest, build, bootstrap,
refilter) takes OUT's lock first, and a second writer is refused at once with who holds it and since when::

    rcforge build: error: out/ is being written by rcforge build (pid 4242 on host-a, user ana) since
    2026-12-03 22:31:07 UTC; wait for it to finish, or write to another OUT

- **Local disks**: an advisory ``fcntl.flock`` on ``OUT/.rcforge-lock``. The operating system releases it when its
  process ends, however it ends, so a lock is never stale; the file's text only names the holder.
- **Object stores** (``s3://``, ``gs://``, ... and where ``fcntl`` is missing): a *lease* object, the same file
  holding the owner, the start and a heartbeat that a thread renews every `HEARTBEAT` seconds. A lease whose
  heartbeat is older than `LEASE_TTL` is stale (its writer was killed) and is taken over, with a note. Object
  stores have no atomic create-if-absent through fsspec, so two writers starting within the same second could
  both win: the lease guards against the common mistake, not a deliberate race.

The lock is reentrant within a process (bootstrap takes it, then runs an ingest, which takes it again).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import threading
import time
from typing import Iterator

import fsspec

from rcforge.core import fsio
from rcforge.core.errors import InputError

LOCK = ".rcforge-lock"
#: seconds between a lease's heartbeats, and the age past which a lease counts as stale
HEARTBEAT = 30.0
LEASE_TTL = 300.0

_HELD: dict[str, int] = {}  # OUT path -> how many times this process holds it
_HELD_LOCK = threading.Lock()


def _owner(command: str) -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    now = time.time()
    return {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "user": user, "since": now,
            "heartbeat": now}


def _describe(out: str, holder: dict) -> str:
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if isinstance(since, (int, float)) else "?"
    command = holder.get("command", "another rcforge command")
    return (f"{out} is being written by {command} (pid {holder.get('pid', '?')} "
            f"on {holder.get('host', '?')}, user {holder.get('user', '?')}) since {when}; wait for it to finish, or "
            f"write to another OUT")


def _is_local(out: str) -> bool:
    return ("://" not in out or out.startswith("file://")) and sys.platform != "win32"


@contextlib.contextmanager
def writing(out: str, command: str) -> Iterator[None]:
    """Hold OUT's writer lock for the block; an `InputError` naming the holder when another writer has it."""
    key = fsspec.core.url_to_fs(out)[1].rstrip("/")
    with _HELD_LOCK:
        if _HELD.get(key):
            _HELD[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD[key] -= 1
        return
    release = _lock_local(out, command) if _is_local(out) else _lease(out, command)
    with _HELD_LOCK:
        _HELD[key] = 1
    try:
        yield
    finally:
        with _HELD_LOCK:
            _HELD.pop(key, None)
        release()


def _lock_local(out: str, command: str):
    import fcntl

    path = out.removeprefix("file://")
    if os.path.lexists(path) and not os.path.exists(path):
        raise InputError(f"{out} is a symbolic link to {os.readlink(path)!r}, which does not exist; point OUT at a "
                         f"folder")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{out} is a file, not a folder; choose a folder for OUT")
    try:
        os.makedirs(path, exist_ok=True)
        fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise InputError(f"cannot write in {out}: {err.strerror or err}; choose a folder you can write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_holder_fd(fd)
        os.close(fd)
        raise InputError(_describe(out, holder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_owner(command)).encode(), 0)

    def release():
        try:
            os.ftruncate(fd, 0)  # the text names a holder only while one holds it
        finally:
            os.close(fd)  # closing releases the flock

    return release


def _read_holder_fd(fd: int) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        holder = json.loads(data) if data else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_lease(fs, path: str) -> dict:
    """The lease's holder ({} when there is no lease, or one that does not read)."""
    holder = fsio.read_json(fs, path)
    return holder if isinstance(holder, dict) else {}


def _lease(out: str, command: str):
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    path = fsio.join(root, LOCK)
    holder = _read_lease(fs, path)
    if holder:
        age = time.time() - float(holder.get("heartbeat") or 0) if isinstance(holder.get("heartbeat"), (int, float)) \
            else float("inf")
        if age < LEASE_TTL:
            raise InputError(_describe(out, holder))
        print(f"note: {out}: taking over a stale lease of {holder.get('command', '?')} (pid {holder.get('pid', '?')} "
              f"on {holder.get('host', '?')}): no heartbeat for {age:.0f} s", file=sys.stderr)
    mine = _owner(command)
    fs.pipe_file(path, json.dumps(mine).encode())
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT):
            try:
                fs.pipe_file(path, json.dumps({**mine, "heartbeat": time.time()}).encode())
            except OSError:
                pass

    thread = threading.Thread(target=beat, name="rcforge-lease", daemon=True)
    thread.start()

    def release():
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            if _read_lease(fs, path).get("pid") == mine["pid"]:
                fs.rm(path)

    return release
