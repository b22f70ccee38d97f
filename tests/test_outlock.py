"""One writer per OUT: a second writer is refused with who holds OUT and since when; a dead writer's lock is
free again; an OUT that cannot be a folder is one line, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import fsspec
import pytest

from rcforge import cli
from rcforge.core import outlock
from rcforge.core.errors import InputError

from conftest import SAMPLE_RECIPE

HOLDER = textwrap.dedent("""
    import sys, time
    from rcforge.core import outlock
    with outlock.writing(sys.argv[1], "rcforge build"):
        open(sys.argv[2], "w").close()
        time.sleep(120)
""")


def _hold(out, tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), str(ready)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("command", [["build", str(SAMPLE_RECIPE), "--no-progress"],
                                     ["ingest", str(SAMPLE_RECIPE), "--no-progress"],
                                     ["bootstrap", str(SAMPLE_RECIPE), "--no-progress", "--model", "microsoft/x",
                                      "--sources", "visual_genome"]])
def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_free(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the hub id is not checked against a cache here
    out = tmp_path / "out"
    holder = _hold(out, tmp_path)
    try:
        code = cli.main([command[0], command[1], "--out", str(out), *command[2:]])
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"is being written by rcforge build (pid {holder.pid} on " in err and " since 20" in err
        assert sorted(p.name for p in out.iterdir()) == [outlock.LOCK]  # nothing else was touched
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: the OS releases its lock; nothing is stale
        holder.wait()
    if command[0] != "bootstrap":
        assert cli.main([command[0], command[1], "--out", str(out), *command[2:]]) == 0
        assert cli.main(["validate", str(out)]) == 0


def test_the_lock_is_reentrant_and_released(tmp_path):
    out = str(tmp_path / "out")
    with outlock.writing(out, "rcforge bootstrap"):
        with outlock.writing(out, "rcforge ingest"):  # bootstrap runs an ingest into its own OUT
            pass
        holder = json.loads((tmp_path / "out" / outlock.LOCK).read_text())
        assert holder["command"] == "rcforge bootstrap" and holder["pid"] == os.getpid()
    assert (tmp_path / "out" / outlock.LOCK).read_text() == ""  # released: no holder named
    with outlock.writing(out, "rcforge build"):
        pass


def test_an_object_store_lease_refuses_a_live_writer_and_takes_over_a_stale_one(capsys):
    fs = fsspec.filesystem("memory")
    out = "memory://leases/out"
    lease = "/leases/out/" + outlock.LOCK
    live = {"command": "rcforge build", "pid": 1, "host": "other", "user": "u", "since": time.time() - 50,
            "heartbeat": time.time() - 5}
    fs.pipe_file(lease, json.dumps(live).encode())
    with pytest.raises(InputError, match="is being written by rcforge build \\(pid 1 on other"):
        with outlock.writing(out, "rcforge ingest"):
            pass
    fs.pipe_file(lease, json.dumps({**live, "heartbeat": time.time() - 2 * outlock.LEASE_TTL}).encode())
    with outlock.writing(out, "rcforge ingest"):
        mine = json.loads(fs.cat_file(lease))
        assert mine["pid"] == os.getpid() and mine["command"] == "rcforge ingest"
    assert "taking over a stale lease of rcforge build (pid 1 on other)" in capsys.readouterr().err
    assert not fs.exists(lease)  # released


@pytest.mark.parametrize("make, says", [
    (lambda p: p.write_text("not a folder"), "is a file, not a folder"),
    (lambda p: p.symlink_to(p.parent / "nowhere"), "which does not exist"),
])
def test_an_out_that_cannot_be_a_folder_is_one_line(make, says, tmp_path, capsys):
    out = tmp_path / "out"
    make(out)
    code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"])
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and "cannot write in" in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size, read_only)``: a small tmpfs mounted under tmp_path (root on Linux only; skipped elsewhere)."""
    mounted = []

    def mount(size: str, read_only: bool = False):
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if run.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {run.stderr.decode().strip()[:100]}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_a_full_disk_is_one_line_and_the_previous_output_stays_whole(tmpfs, sample_build, tmp_path, capsys):
    import shutil

    disk = tmpfs("600k")
    out = disk / "out"
    shutil.copytree(sample_build, out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    free = shutil.disk_usage(disk).free  # leave the build 20 kB
    (disk / "filler2").write_bytes(b"\0" * max(0, free - 20_000))
    code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--fresh-ingest"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    (disk / "filler2").unlink()
    after = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    live = [p for p in after if not p.startswith((".staging", "last-failed-run", outlock.LOCK))]
    assert live == [p for p in before if not p.startswith(outlock.LOCK)]
    assert cli.main(["validate", str(out)]) == 0


def test_a_read_only_file_system_is_one_line(tmpfs, capsys):
    disk = tmpfs("1m", read_only=True)
    for out in (disk, disk / "out"):
        code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1 and "Read-only file system" in err and len(err.strip().splitlines()) == 1, err


def test_an_export_target_that_is_a_folder_is_one_line(sample_build, tmp_path, capsys):
    target = tmp_path / "llava.json"
    target.mkdir()
    assert cli.main(["export", "llava", str(sample_build), str(target)]) == 1
    err = capsys.readouterr().err
    assert "Is a directory" in err and str(target) in err and len(err.strip().splitlines()) == 1
