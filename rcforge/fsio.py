"""Paths and streaming reads through fsspec (local paths, gs://, s3://, memory://, .gz files).

Big annotation files are JSON documents of several GB; nothing here loads one whole. `iter_json` streams the
items under a prefix with ijson (its C backend when installed) and turns a parse failure into an `InputError`
that names the file and the byte offset where the parser was.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
from typing import IO, Any, Iterator

import fsspec
import ijson

from rcforge.errors import InputError

#: ijson reads in chunks of this size; the byte offset in a parse error is accurate to within one chunk.
CHUNK = 1 << 16


def join(root: str, *parts: str) -> str:
    """Join path parts with '/', for local paths and URLs alike."""
    return posixpath.join(str(root), *[str(p) for p in parts])


def exists(path: str) -> bool:
    fs, p = fsspec.core.url_to_fs(str(path))
    return fs.exists(p)


def isdir(path: str) -> bool:
    fs, p = fsspec.core.url_to_fs(str(path))
    return fs.isdir(p)


def size(path: str) -> int:
    fs, p = fsspec.core.url_to_fs(str(path))
    return int(fs.size(p))


def require(path: str, what: str) -> str:
    """`path` if it exists, else an `InputError` naming it and what it was meant to be."""
    if not exists(path):
        raise InputError(f"{what}: {path} does not exist")
    return path


class _CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes handed to the parser."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.offset = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.offset += len(data)
        return data

    def readinto(self, buffer) -> int:  # pragma: no cover - ijson calls read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def open_binary(path: str, what: str = "input file") -> Iterator[IO[bytes]]:
    """Open a local or remote file for reading; compression is inferred from the extension."""
    try:
        opened = fsspec.open(str(path), "rb", compression="infer")
        handle = opened.open()
    except FileNotFoundError:
        raise InputError(f"{what}: {path} does not exist") from None
    except OSError as err:
        raise InputError(f"{what}: cannot open {path}: {err}") from None
    try:
        yield handle
    finally:
        handle.close()


def iter_json(path: str, prefix: str, *, what: str = "JSON file", kv: bool = False) -> Iterator[Any]:
    """Stream the values under ``prefix`` ("item" for a top-level array, "annotations.item", ...).

    With ``kv=True`` streams ``(key, value)`` pairs of the object at ``prefix`` ("" for the top level).
    Numbers come back as int or float (never Decimal). Errors name the file and byte offset.
    """
    with open_binary(path, what) as handle:
        counter = _CountingReader(handle)
        try:
            if kv:
                yield from ijson.kvitems(counter, prefix, use_float=True, buf_size=CHUNK)
            else:
                yield from ijson.items(counter, prefix, use_float=True, buf_size=CHUNK)
        except ijson.IncompleteJSONError as err:
            raise InputError(f"{what} {path}: truncated or malformed JSON near byte {counter.offset}: "
                             f"{_short(err)}") from None
        except ijson.JSONError as err:
            raise InputError(f"{what} {path}: malformed JSON near byte {counter.offset}: {_short(err)}") from None
        except UnicodeDecodeError as err:
            raise InputError(f"{what} {path}: not UTF-8 text near byte {counter.offset}: {err.reason}") from None


def read_text(path: str, what: str = "text file") -> str:
    with open_binary(path, what) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{what} {path}: not UTF-8 text at byte {err.start}") from None


def read_bytes(path: str, what: str = "file") -> bytes:
    with open_binary(path, what) as handle:
        return handle.read()


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def load_manifest(out: str, command: str, needs: str = "rcforge ingest or rcforge build") -> dict:
    """OUT/manifest.json, or an `InputError` naming the command and what to run first."""
    import json

    fs, path = fsspec.core.url_to_fs(out)
    manifest_path = join(path, "manifest.json")
    if not fs.exists(manifest_path):
        raise InputError(f"{command}: {out} has no manifest.json (run {needs} first)")
    with fs.open(manifest_path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise InputError(f"{command}: {manifest_path} is not valid JSON ({err})") from None
