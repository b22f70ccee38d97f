"""Output generations: a writing run stages everything, then switches OUT over in one committed step.

OUT holds one *generation* at a time: the manifest and the files it lists. A writing command (`ingest`,
`build`) never writes into the live folders. It stages its new generation under ``OUT/.staging/<id>/`` with
the layout of OUT itself, and when every part is written it commits:

1. it writes the new manifest into the staging folder, then the publish plan ``PUBLISH.json`` (the staged files
   to move in and the live files they replace). Writing the plan, by an atomic rename, is the commit point;
2. it publishes: removes ``OUT/manifest.json``, moves the staged files over, removes the live files of the
   folders the generation replaces that it does not rewrite, and moves the new manifest in last;
3. it removes the staging folder.

So a run that fails or is killed before the commit point leaves the previous generation whole (the next writer
removes its staging folder; a failure also keeps its errors under ``OUT/last-failed-run/``). A run killed
during step 2 is committed: the next command that opens OUT (`load_manifest`, or any writer) carries out the
rest of the plan first. Every step of the plan is idempotent, and while it runs there is no manifest at all, so
a manifest never lists a missing part. One writer per OUT at a time.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field

import fsspec

from rcforge import fsio
from rcforge.errors import InputError

STAGING = ".staging"
PLAN = "PUBLISH.json"
MANIFEST = "manifest.json"
FAILED = "last-failed-run"


def _files_under(fs, root: str) -> list[str]:
    """Every file under ``root``, relative to it ('' when root does not exist)."""
    if not fs.exists(root):
        return []
    return sorted(p[len(root.rstrip("/")) + 1:] for p in fs.find(root, withdirs=False))


@dataclass
class Generation:
    """One writing run's new generation of OUT: write under `root`, then `commit` or `abandon`."""

    out: str
    number: int
    id: str
    fs: object = field(repr=False)
    out_path: str = field(repr=False)

    @property
    def staging_path(self) -> str:
        return fsio.join(self.out_path, STAGING, self.id)

    @property
    def root(self) -> str:
        """Where this run writes: a folder laid out like OUT (a URL when OUT is one)."""
        return self.fs.unstrip_protocol(self.staging_path) if "://" in str(self.out) else self.staging_path

    def commit(self, manifest: dict, replaces: tuple[str, ...]) -> None:
        """Make this generation OUT's: ``replaces`` are the top-level folders (``images``, ``errors/render``,
        ...) whose live files are replaced by this generation's (files of other folders stay)."""
        fs, staged = self.fs, self.staging_path
        manifest = {**manifest, "generation": self.number}
        fsio.write_json(fs, fsio.join(staged, MANIFEST), manifest)
        moves = [p for p in _files_under(fs, staged) if p not in (MANIFEST, PLAN)
                 and not p.rsplit("/", 1)[-1].startswith(".tmp-")]
        keep = set(moves)
        removes = [rel for folder in replaces for rel in
                   (fsio.join(folder, p) for p in _files_under(fs, fsio.join(self.out_path, folder)))
                   if rel not in keep]
        plan = {"generation": self.number, "replaces": list(replaces), "move": moves, "remove": removes}
        fsio.write_json(fs, fsio.join(staged, PLAN), plan)  # the commit point
        _publish(fs, self.out_path, self.id, plan)

    def keep_manifest(self, manifest: dict) -> None:
        """Stage the manifest of a run about to fail, so that `abandon` keeps it for the user to read."""
        fsio.write_json(self.fs, fsio.join(self.staging_path, MANIFEST), manifest)

    def abandon(self, command: str, error: BaseException | None) -> None:
        """Drop this run's staging folder; the previous generation stays as it was. Keep what the user needs to
        see why the run stopped (its errors output, and the manifest it would have written) in
        ``OUT/last-failed-run/``."""
        fs, staged = self.fs, self.staging_path
        if not fs.exists(staged) or fs.exists(fsio.join(staged, PLAN)):
            return  # nothing staged, or committed (publishing is then finished by the next command)
        failed = fsio.join(self.out_path, FAILED)
        if fs.exists(failed):
            fs.rm(failed, recursive=True)
        kept = [p for p in ("errors", MANIFEST) if fs.exists(fsio.join(staged, p))]
        fs.makedirs(failed, exist_ok=True)
        for name in kept:
            fs.mv(fsio.join(staged, name), fsio.join(failed, name), recursive=True)
        fsio.write_json(fs, fsio.join(failed, "failure.json"), {
            "command": command, "generation": self.number,
            "error": f"{type(error).__name__}: {error}" if error is not None else None, "kept": kept})
        fs.rm(staged, recursive=True)

    def errors_hint(self, *parts: str) -> str:
        """Where the errors of this run can be read if it stops now (`abandon` moves them there)."""
        return fsio.join(self.out, FAILED, "errors", *parts)


def _publish(fs, out_path: str, gen_id: str, plan: dict) -> None:
    """Carry out a committed plan. Idempotent: a run killed half-way is finished by calling this again."""
    staged = fsio.join(out_path, STAGING, gen_id)
    live_manifest = fsio.join(out_path, MANIFEST)
    if fs.exists(fsio.join(staged, MANIFEST)) and fs.exists(live_manifest):
        fs.rm(live_manifest)
    for rel in plan["move"]:
        source = fsio.join(staged, rel)
        if fs.exists(source):
            target = fsio.join(out_path, rel)
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(source, target)
    for rel in plan["remove"]:
        target = fsio.join(out_path, rel)
        if fs.exists(target):
            fs.rm(target)
    _remove_empty_dirs(fs, out_path, plan.get("replaces", ()))
    if fs.exists(fsio.join(staged, MANIFEST)):
        fs.mv(fsio.join(staged, MANIFEST), live_manifest)
    fs.rm(staged, recursive=True)
    staging = fsio.join(out_path, STAGING)
    if fs.exists(staging) and not fs.ls(staging):
        fs.rmdir(staging)


def _remove_empty_dirs(fs, out_path: str, folders) -> None:
    """Local folders emptied by a publish (a source dropped from the recipe) go too; object stores have none."""
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return
    for folder in folders:
        root = fsio.join(out_path, folder)
        for dirpath, _, _ in os.walk(root, topdown=False):  # children before their parents
            if dirpath != root and not os.listdir(dirpath):
                os.rmdir(dirpath)


def settle(out: str, *, discard_uncommitted: bool = False) -> None:
    """Finish a committed publish that a killed run left half-done; with ``discard_uncommitted`` (writers only:
    a reader must not remove a running writer's staging folder) also remove the staging folders of runs that
    never committed."""
    fs, out_path = fsspec.core.url_to_fs(out)
    staging = fsio.join(out_path, STAGING)
    if not fs.exists(staging):
        return
    for entry in sorted(fs.ls(staging, detail=False)):
        gen_id = entry.rstrip("/").rsplit("/", 1)[-1]
        plan_path = fsio.join(staging, gen_id, PLAN)
        if fs.exists(plan_path):
            with fs.open(plan_path) as f:
                plan = json.load(f)
            _publish(fs, out_path, gen_id, plan)
        elif discard_uncommitted:
            fs.rm(fsio.join(staging, gen_id), recursive=True)
    if fs.exists(staging) and not fs.ls(staging):
        fs.rmdir(staging)


def leftovers(out: str) -> list[str]:
    """What runs that did not finish left beside the live output (for `rcforge validate` to mention)."""
    fs, out_path = fsspec.core.url_to_fs(out)
    notes = []
    staging = fsio.join(out_path, STAGING)
    if fs.exists(staging) and fs.ls(staging):
        notes.append(f"{fsio.join(out, STAGING)} holds the staging folder of a run that is running or was killed; "
                     "the next ingest or build removes it")
    failed = fsio.join(out_path, FAILED, "failure.json")
    if fs.exists(failed):
        with fs.open(failed) as f:
            failure = json.load(f)
        notes.append(f"the last run that failed ({failure.get('command')}: {str(failure.get('error'))[:120]}) "
                     f"left its errors in {fsio.join(out, FAILED)}/")
    return notes


def begin(out: str) -> Generation:
    """Start a new generation of OUT (after settling what an earlier run left): numbered one past the live one."""
    settle(out, discard_uncommitted=True)
    fs, out_path = fsspec.core.url_to_fs(out)
    fs.makedirs(out_path, exist_ok=True)
    number = 1
    live = fsio.join(out_path, MANIFEST)
    if fs.exists(live):
        try:
            with fs.open(live) as f:
                number = int(json.load(f).get("generation", 0)) + 1
        except (ValueError, TypeError, AttributeError):
            number = 1
    gen_id = f"g{number:06d}-{secrets.token_hex(4)}"
    fs.makedirs(fsio.join(out_path, STAGING, gen_id), exist_ok=True)
    return Generation(out=out, number=number, id=gen_id, fs=fs, out_path=out_path)


def load_manifest(out: str, command: str, needs: str = "rcforge ingest or rcforge build") -> dict:
    """OUT/manifest.json (after finishing a publish a killed run left half-done), or an `InputError` naming the
    command and what to run first."""
    settle(out)
    fs, path = fsspec.core.url_to_fs(out)
    manifest_path = fsio.join(path, MANIFEST)
    if not fs.exists(manifest_path):
        raise InputError(f"{command}: {out} has no manifest.json (run {needs} first)")
    with fs.open(manifest_path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise InputError(f"{command}: {manifest_path} is not valid JSON ({err})") from None
