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
during step 2 is committed: the next writer into OUT carries out the rest of the plan first. Every step of the
plan is idempotent, and while it runs there is no manifest at all, so a manifest never lists a missing part.
One writer per OUT at a time.

An OUT folder is data, not instructions (people download and share built corpora):

- only a writer (`begin`) carries out a plan; commands that read OUT (`load_manifest`) never move or remove a
  file, and say so when a publish is pending;
- a plan is checked before any step runs: every path in it is a plain relative path inside one of the folders
  rcforge writes (`OWNED`), so a planted ``PUBLISH.json`` can neither reach outside OUT nor touch other files;
- rcforge removes only files a manifest of its own lists (each manifest records the files of its generation in
  ``files``): the user's own files in OUT, in any folder, survive every command. An OUT that is not empty and
  holds no manifest is refused, unless the writer is forced, and even then nothing of it is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Iterator

import fsspec

from rcforge.core import fsio, outlock
from rcforge.core.errors import InputError
from rcforge.core.outlock import LOCK

STAGING = ".staging"
PLAN = "PUBLISH.json"
MANIFEST = "manifest.json"
FAILED = "last-failed-run"
#: the folders of OUT whose files a generation writes and replaces
OWNED = ("images", "errors", "dialogues", "images_vp")
#: what rcforge itself keeps at OUT's top level besides a generation's files
OWN_ENTRIES = (STAGING, FAILED, MANIFEST, "bootstrap", LOCK)


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
        moves = [p for p in _files_under(fs, staged) if p not in (MANIFEST, PLAN)
                 and not p.rsplit("/", 1)[-1].startswith(".tmp-")]
        keep = set(moves)
        # what the live generation wrote (its manifest's list) in the replaced folders, and nothing else
        owned = _owned_files(fsio.read_json(fs, fsio.join(self.out_path, MANIFEST)))
        removes = sorted(rel for rel in owned if rel not in keep and _inside(rel, replaces))
        # the files of this generation: those moved in, and those of the live one it keeps
        files = sorted(keep | {rel for rel in owned if not _inside(rel, replaces)})
        manifest = {**manifest, "generation": self.number, "files": files}
        fsio.write_json(fs, fsio.join(staged, MANIFEST), manifest)
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
        _remove_staging_if_empty(fs, self.out_path)

    def errors_hint(self, *parts: str) -> str:
        """Where the errors of this run can be read if it stops now (`abandon` moves them there)."""
        return fsio.join(self.out, FAILED, "errors", *parts)


def _inside(rel: str, folders) -> bool:
    return any(rel.startswith(folder.rstrip("/") + "/") for folder in folders)


def _owned_files(manifest) -> set[str]:
    """The files (relative to OUT) that a manifest says its generation wrote: its ``files`` list, or for a
    manifest written before that list existed, its parts and shards. Anything else in OUT is not rcforge's."""
    if not isinstance(manifest, dict):
        return set()
    files = manifest.get("files")
    if not isinstance(files, list):
        files = []
        for entry in (manifest.get("sources") or {}).values():
            if isinstance(entry, dict):
                files += list(entry.get("parts") or []) + list(entry.get("error_parts") or [])
        build = manifest.get("build") or {}
        if isinstance(build, dict):
            files += [f"dialogues/{s}" for s in build.get("shards") or []]
    return {f for f in files if isinstance(f, str) and _plain_path(f) and _inside(f, OWNED)}


def _plain_path(rel) -> bool:
    """A relative path with no way out of its folder: no absolute path, URL, drive, backslash, ``..`` or ``.``
    step, or empty step."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or ":" in rel or "\0" in rel:
        return False
    return all(step not in ("", ".", "..") for step in rel.split("/"))


def check_plan(plan, where: str) -> dict:
    """A publish plan read from OUT, checked before any of its steps runs: every path is a plain relative path
    inside one of rcforge's own folders. A `InputError` naming the plan and the first bad entry otherwise."""
    if not isinstance(plan, dict):
        raise InputError(f"{where}: a publish plan must be a JSON object; refusing to carry it out")
    for key in ("move", "remove", "replaces"):
        value = plan.get(key, [])
        if not isinstance(value, list):
            raise InputError(f"{where}: '{key}' must be a list of paths; refusing to carry out the plan")
        for rel in value:
            # "replaces" lists folders (images, errors/render); "move" and "remove" list files inside them
            if not _plain_path(rel) or not (rel.split("/")[0] in OWNED if key == "replaces" else _inside(rel, OWNED)):
                raise InputError(f"{where}: {key} entry {str(rel)[:80]!r} is not a file of rcforge's own folders "
                                 f"({', '.join(OWNED)}) inside OUT; refusing to carry out the plan")
    if not isinstance(plan.get("generation", 0), int):
        raise InputError(f"{where}: 'generation' must be an integer; refusing to carry out the plan")
    return plan


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
    _remove_empty_dirs(fs, out_path, plan["remove"])
    if fs.exists(fsio.join(staged, MANIFEST)):
        fs.mv(fsio.join(staged, MANIFEST), live_manifest)
    fs.rm(staged, recursive=True)
    _remove_staging_if_empty(fs, out_path)


def _remove_staging_if_empty(fs, out_path: str) -> None:
    staging = fsio.join(out_path, STAGING)
    if fs.exists(staging) and not fs.ls(staging):
        fs.rmdir(staging)


def _remove_empty_dirs(fs, out_path: str, removed) -> None:
    """Local folders that a publish emptied (a source dropped from the recipe) go too: the folders of removed
    files, up to their top folder, when nothing is left in them. Object stores have no folders."""
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return
    folders = {rel.rsplit("/", 1)[0] for rel in removed if "/" in rel}
    for folder in sorted(folders, key=lambda f: -f.count("/")):  # children before their parents
        while "/" in folder:
            path = os.path.join(out_path, folder)
            if not os.path.isdir(path) or os.listdir(path):
                break
            os.rmdir(path)
            folder = folder.rsplit("/", 1)[0]


def _pending(fs, out_path: str) -> list[str]:
    """The staging folders of OUT that hold a committed plan (a publish that a killed writer left half-done)."""
    staging = fsio.join(out_path, STAGING)
    if not fs.exists(staging):
        return []
    ids = [e.rstrip("/").rsplit("/", 1)[-1] for e in sorted(fs.ls(staging, detail=False))]
    return [i for i in ids if fs.exists(fsio.join(staging, i, PLAN))]


def settle(out: str) -> None:
    """For a writer, before it stages anything: finish a committed publish that a killed run left half-done (its
    plan checked first), and remove the staging folders of runs that never committed."""
    fs, out_path = fsspec.core.url_to_fs(out)
    staging = fsio.join(out_path, STAGING)
    if not fs.exists(staging):
        return
    for entry in sorted(fs.ls(staging, detail=False)):
        gen_id = entry.rstrip("/").rsplit("/", 1)[-1]
        plan_path = fsio.join(staging, gen_id, PLAN)
        if fs.exists(plan_path):
            plan = fsio.read_json(fs, plan_path)
            if plan is None:
                raise InputError(f"{fsio.join(out, STAGING, gen_id, PLAN)}: not valid JSON; refusing to carry it out")
            _publish(fs, out_path, gen_id, check_plan(plan, fsio.join(out, STAGING, gen_id, PLAN)))
        elif fs.isdir(fsio.join(staging, gen_id)):
            fs.rm(fsio.join(staging, gen_id), recursive=True)
    _remove_staging_if_empty(fs, out_path)


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
        failure = fsio.read_json(fs, failed)
        if not isinstance(failure, dict):
            notes.append(f"{fsio.join(out, FAILED)}/failure.json does not read; the last failed run left it")
            return notes
        notes.append(f"the last run that failed ({failure.get('command')}: {str(failure.get('error'))[:120]}) "
                     f"left its errors in {fsio.join(out, FAILED)}/")
    return notes


def check_foreign(out: str, *, force: bool = False) -> None:
    """Refuse an OUT that is not empty and holds no rcforge output (it may be a dataset's own folder), unless
    ``force``. Writers check this before they take OUT's lock, so a refused folder is left untouched."""
    fs, out_path = fsspec.core.url_to_fs(out)
    if not force and fs.isdir(out_path) and not fs.exists(fsio.join(out_path, MANIFEST)) and not _pending(fs, out_path):
        foreign = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(out_path, detail=False))
        foreign = [name for name in foreign if name not in OWN_ENTRIES]
        if foreign:
            raise InputError(f"{out} is not empty and holds no rcforge output (it has {foreign[0]!r}"
                             f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); choose a new or "
                             "empty folder, or pass --force to write beside those files (rcforge never removes "
                             "files it did not write)")


@contextlib.contextmanager
def writing(out: str, command: str, *, force: bool = False) -> Iterator[None]:
    """A writer's hold on OUT for the block: a foreign OUT refused first (`check_foreign`, so that a refused folder
    stays untouched), then OUT's writer lock (`rcforge.core.outlock`)."""
    check_foreign(out, force=force)
    with outlock.writing(out, command):
        yield


def begin(out: str, *, force: bool = False) -> Generation:
    """Start a new generation of OUT (after settling what an earlier run left): numbered one past the live one.
    An OUT that is not empty and holds no rcforge manifest is refused (it may be a dataset's own folder), unless
    ``force``; even then only files a manifest of rcforge's lists are ever removed."""
    fs, out_path = fsspec.core.url_to_fs(out)
    check_foreign(out, force=force)
    settle(out)
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
    """OUT/manifest.json, or an `InputError` naming the command and what to run first. Reading never changes OUT:
    a publish that a killed writer left half-done is finished by the next writer, not here."""
    fs, path = fsspec.core.url_to_fs(out)
    manifest_path = fsio.join(path, MANIFEST)
    if not fs.exists(manifest_path):
        if _pending(fs, path):
            raise InputError(f"{command}: {out} holds a publish that a killed run left half-done; run the "
                             f"ingest or build into {out} again to finish it")
        raise InputError(f"{command}: {out} has no manifest.json (run {needs} first)")
    with fs.open(manifest_path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise InputError(f"{command}: {manifest_path} is not valid JSON ({err})") from None
