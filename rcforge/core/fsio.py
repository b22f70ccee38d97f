"""Paths and streaming reads through fsspec (local paths, gs://, s3://, memory://, .gz files).

Big annotation files are JSON documents of several GB; nothing here loads one whole. `iter_json` streams the
items under a prefix with ijson (its C backend when installed) and turns a parse failure into an `InputError`
that names the file and the byte offset where the parser was.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import json
import os
import posixpath
import re
import stat
from typing import IO, Any, Iterator

import fsspec
import ijson
import numpy as np

from rcforge.core.errors import InputError

#: ijson reads in chunks of this size; the byte offset in a parse error is accurate to within one chunk.
CHUNK = 1 << 16
#: the deepest JSON nesting accepted. The real files nest 5 levels; a streaming parser keeps the path to the
#: current value, so memory grows with the square of the depth (10^5 levels exhausted 24 GB with ijson).
MAX_JSON_DEPTH = 64


def temp_name(path: str) -> str:
    """Where a file is written before it is renamed to ``path``: ``.tmp-<name>`` beside it (a dot file, which
    readers' ``part-*`` globs and Arrow's dataset discovery skip)."""
    head, _, name = str(path).rpartition("/")
    return f"{head}/.tmp-{name}" if head else f".tmp-{name}"


@contextlib.contextmanager
def atomic_write(fs, path: str, mode: str = "wb"):
    """Open ``path`` for writing through ``fs`` so that it appears whole or not at all: the data goes to
    `temp_name` and is renamed over ``path`` when the block ends; on an error the temporary is removed. The one
    way rcforge writes a finished file (parts, shards, manifests, plans)."""
    if fs.isdir(path):  # a rename onto a folder would move the file into it
        raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
    tmp = temp_name(path)
    try:
        with fs.open(tmp, mode) as f:
            yield f
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise
    fs.mv(tmp, path)


def write_parquet(fs, path: str, table, compression: str = "zstd") -> None:
    """`table` as one Parquet file at ``path``, atomically."""
    import pyarrow.parquet as pq

    with atomic_write(fs, path) as f:
        pq.write_table(table, f, compression=compression)


def write_json(fs, path: str, value) -> None:
    """``value`` as indented JSON at ``path``, atomically."""
    import json

    with atomic_write(fs, path, "w") as f:
        json.dump(value, f, indent=2)


def join(root: str, *parts: str) -> str:
    """Join path parts with '/', for local paths and URLs alike."""
    return posixpath.join(str(root), *[str(p) for p in parts])


def exists(path: str) -> bool:
    fs, p = fsspec.core.url_to_fs(str(path))
    return fs.exists(p)


def size(path: str) -> int:
    fs, p = fsspec.core.url_to_fs(str(path))
    return int(fs.size(p))


def check_regular(path: str, what: str) -> None:
    """An `InputError` when a local ``path`` is there but is not a regular file: opening a FIFO would wait for a
    writer forever, and a device or socket is no input. (Object stores hold only files.)"""
    path = str(path)
    if "://" in path and not path.startswith("file://"):
        return
    try:
        mode = os.stat(path.removeprefix("file://")).st_mode
    except OSError:
        return  # missing: the open that follows says so
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise InputError(f"{what}: {path} is {kind}; rcforge reads only regular files")


def require(path: str, what: str) -> str:
    """`path` if it exists, else an `InputError` naming it and what it was meant to be."""
    if not exists(path):
        raise InputError(f"{what}: {path} does not exist")
    return path


class DepthGuard:
    """Tracks the nesting depth of a JSON byte stream, chunk by chunk, and raises `InputError` past ``limit``.

    Vectorized with NumPy (about 1 GB/s): a quote is a string delimiter unless an odd run of backslashes precedes
    it; brackets outside strings change the depth. State (inside a string, a pending backslash run, the depth)
    carries across chunks, so any chunking gives the same answer.
    """

    def __init__(self, what: str, limit: int = None):
        self.what, self.limit = what, MAX_JSON_DEPTH if limit is None else limit
        self.depth = 0
        self.in_string = False
        self.backslashes = 0  # length of the backslash run that ended the previous chunk
        self.offset = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        b = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(b == 34)
        if len(quotes):
            escaped = np.zeros(len(quotes), dtype=bool)
            if quotes[0] == 0:
                escaped[0] = self.backslashes % 2 == 1
            candidates = np.flatnonzero(b[np.maximum(quotes - 1, 0)] == 92) if b"\\\"" in data else ()
            for k in candidates:  # few: a quote right after a backslash; walk back over the run
                q = int(quotes[k])
                start = q - 1
                while start >= 0 and data[start] == 92:
                    start -= 1
                run = q - 1 - start + (self.backslashes if start < 0 else 0)
                escaped[k] = run % 2 == 1
            delimiters = quotes[~escaped]
        else:
            delimiters = quotes
        tail = len(data) - len(data.rstrip(b"\\"))
        self.backslashes = tail + (self.backslashes if tail == len(data) else 0)
        folded = b | 32  # '[' -> '{' and ']' -> '}'
        brackets = np.flatnonzero((folded == 123) | (folded == 125))
        if len(brackets):
            if len(delimiters) or self.in_string:
                structural = (np.searchsorted(delimiters, brackets) + self.in_string) % 2 == 0
                brackets = brackets[structural]
            steps = (b[brackets] & 2).astype(np.int64) - 1  # '[' and '{' have bit 1 set: +1; ']' and '}': -1
            depth = self.depth + np.cumsum(steps)
            if len(depth):
                if int(depth.max()) > self.limit:
                    at = self.offset + int(brackets[int(np.argmax(depth > self.limit))])
                    raise InputError(f"{self.what}: JSON nested deeper than {self.limit} levels at byte {at}; "
                                     f"no source file nests that deep")
                self.depth = int(depth[-1])
        self.in_string = (len(delimiters) + self.in_string) % 2 == 1
        self.offset += len(b)


def check_depth(data: bytes, what: str, limit: int | None = None) -> None:
    """`DepthGuard` over a whole document held in memory."""
    guard = DepthGuard(what, limit)
    for start in range(0, len(data), 1 << 22):
        guard.feed(data[start:start + (1 << 22)])


class _CountingReader(io.RawIOBase):
    """Wraps a binary file, counts the bytes handed to the parser and guards their nesting depth."""

    def __init__(self, raw: IO[bytes], what: str = "JSON file"):
        self.raw = raw
        self.offset = 0
        self.guard = DepthGuard(what)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.guard.feed(data)
        self.offset += len(data)
        return data

    def readinto(self, buffer) -> int:  # pragma: no cover - ijson calls read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def open_binary(path: str, what: str = "input file") -> Iterator[IO[bytes]]:
    """Open a local or remote file for reading; compression is inferred from the extension. Only a regular file
    is opened (`check_regular`)."""
    check_regular(path, what)
    try:
        opened = fsspec.open(str(path), "rb", compression="infer")
        handle = opened.open()
    except FileNotFoundError:
        raise InputError(f"{what}: {path} does not exist") from None
    except OSError as err:
        raise InputError(f"{what}: cannot open {path}: {err}") from None
    try:
        yield _Guarded(handle, path, what)
    finally:
        handle.close()


class _Guarded(io.RawIOBase):
    """A read-only file whose low-level failures (a truncated .gz, a corrupt .bz2, a disk error) become an
    `InputError` naming the file, instead of an EOFError or zlib.error from deep inside a parser."""

    def __init__(self, raw, path: str, what: str):
        self.raw, self.path, self.what = raw, path, what

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except EOFError:
            raise InputError(f"{self.what} {self.path}: the compressed stream ends early (truncated file)") from None
        except (OSError, ValueError) as err:  # zlib.error, lzma.LZMAError and BadGzipFile derive from these
            raise InputError(f"{self.what} {self.path}: cannot read: {err}") from None
        except Exception as err:  # zlib.error does not derive from OSError
            if type(err).__module__ in ("zlib", "lzma", "bz2", "_lzma", "_bz2", "gzip"):
                raise InputError(f"{self.what} {self.path}: cannot decompress: {err}") from None
            raise

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, *args):
        return self.raw.seek(*args)

    def seekable(self) -> bool:
        return self.raw.seekable()

    def tell(self) -> int:
        return self.raw.tell()


class _EscapeUndecodable(io.RawIOBase):
    """A binary stream in which every byte that is not UTF-8 becomes the JSON escape of the lone surrogate that
    ``surrogateescape`` decodes it to (0xFF -> ``\\udcff``): inside a string the parser then reads it as that
    character, and `rcforge.core.contract.check_chars` rejects the one value holding it ("the byte 0xFF ... is not
    UTF-8 text"). A sequence split between two reads is decoded whole (an incremental decoder)."""

    _SURROGATE = re.compile("[\udc80-\udcff]")

    def __init__(self, raw):
        self.raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self._pending, self._eof = b"", False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all with -1); empty only at the end."""
        while not self._pending and not self._eof or (n < 0 and not self._eof):
            data = self.raw.read(n if n > 0 else -1)
            self._eof = not data
            text = self._decoder.decode(data, final=self._eof)
            self._pending += self._SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text).encode("utf-8")
        if n < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def readinto(self, buffer) -> int:  # pragma: no cover (ijson reads with read())
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def iter_json(path: str, prefix: str, *, what: str = "JSON file", kv: bool = False,
              required: bool = True) -> Iterator[Any]:
    """Stream the values under ``prefix`` ("item" for a top-level array, "annotations.item", ...).

    With ``kv=True`` streams ``(key, value)`` pairs of the object at ``prefix`` ("" for the top level).
    Numbers come back as int or float (never Decimal). Errors name the file and byte offset.

    The shape is part of the contract: when nothing was streamed, the file is scanned once more to tell an empty
    array (fine) from a container of the wrong type or a missing key (``required``), which are `InputError`s
    naming the file and the expected shape. A wrong shape is never read as an empty file.
    """
    yielded = 0
    backend = ijson
    undecodable = False  # the file holds bytes that are not UTF-8: read through `_EscapeUndecodable`
    while True:
        with open_binary(path, what) as handle:
            counter = _CountingReader(_EscapeUndecodable(handle) if undecodable else handle, f"{what} {path}")
            try:
                stream = backend.kvitems(counter, prefix, use_float=True, buf_size=CHUNK) if kv else \
                    backend.items(counter, prefix, use_float=True, buf_size=CHUNK)
                for index, value in enumerate(stream):
                    if index < yielded:
                        continue  # already yielded before the parser was switched
                    yielded += 1
                    yield value
                break
            except (ijson.JSONError, UnicodeDecodeError) as err:
                if not undecodable and (isinstance(err, UnicodeDecodeError) or "invalid bytes in UTF8" in str(err)):
                    # bytes that are not UTF-8 inside strings (yajl's "invalid bytes in UTF8", or the decoder's
                    # error): read the file again with each such byte escaped as a lone surrogate, which the
                    # pure-Python parser keeps and the text contract rejects with its record, instead of failing
                    # the whole file
                    undecodable, backend = True, _python_backend()
                    continue
                if isinstance(err, UnicodeDecodeError):
                    raise InputError(f"{what} {path}: not UTF-8 text near byte {counter.offset}: "
                                     f"{err.reason}") from None
                if ("integer overflow" in str(err) or "surrogate" in str(err)) and backend is ijson:
                    # yajl stops at an integer beyond 64 bits and at some lone surrogate escapes; the pure-Python
                    # parser reads them (slowly, for this file only), and the contract then rejects the record
                    # that holds one
                    backend = _python_backend()
                    continue
                kind = "truncated or malformed" if isinstance(err, ijson.IncompleteJSONError) else "malformed"
                raise InputError(f"{what} {path}: {kind} JSON near byte {counter.offset}: {first_line(err)}") from None
    if not yielded:
        check_shape(path, prefix, what=what, kv=kv, required=required)


def _yajl_stops_at_text(err: Exception) -> bool:
    """Whether yajl's error is one the pure-Python parser reads past: bytes that are not UTF-8, or a lone
    surrogate escape (yajl reports it as an invalid character or a decoding error)."""
    text = str(err)
    return isinstance(err, UnicodeDecodeError) or any(
        m in text for m in ("invalid bytes in UTF8", "invalid char in json text", "surrogate"))


def _python_backend():
    import ijson.backends.python as python_backend

    return python_backend


def check_shape(path: str, prefix: str, *, what: str, kv: bool = False, required: bool = True) -> None:
    """Raise `InputError` unless the container streamed at ``prefix`` exists with the right type.

    ``prefix`` "item" (an array at the top), "images.item" (an array under key images), or with ``kv`` the object
    at ``prefix``. Reads events only up to the container's start.
    """
    container = prefix[: -len("item")].rstrip(".") if (not kv and prefix.endswith("item")) else prefix
    expected = "start_map" if kv else "start_array"
    if not kv and not prefix.endswith("item"):
        return  # a scalar prefix (VQAv2's data_subtype): nothing to check
    shown = "an object" if kv else "an array"
    where = f"at key {container!r}" if container else "at the top level"
    # yajl stops at bytes that are not UTF-8 and at some lone surrogate escapes before the container it looks
    # for (LVIS puts annotations first): the pure-Python parser over the escaped bytes reads past them, as
    # `iter_json` does, and the text contract later rejects the record that holds one
    for careful in (False, True):
        with open_binary(path, what) as handle:
            counter = _CountingReader(_EscapeUndecodable(handle) if careful else handle, f"{what} {path}")
            parse = _python_backend().parse if careful else ijson.parse
            try:
                for event_prefix, event, _ in parse(counter, buf_size=CHUNK):
                    if event_prefix == container and event in ("start_map", "start_array", "string", "number",
                                                               "boolean", "null"):
                        if event == expected:
                            return
                        found = {"start_map": "an object", "start_array": "an array"}.get(event, f"a {event}")
                        raise InputError(f"{what} {path}: expected {shown} {where}, found {found}")
                break
            except (ijson.JSONError, UnicodeDecodeError) as err:
                if careful or not _yajl_stops_at_text(err):
                    raise InputError(f"{what} {path}: malformed JSON near byte {counter.offset}: "
                                     f"{first_line(err)}") from None
    if required:
        raise InputError(f"{what} {path}: expected {shown} {where}, found none")


def load_json(path: str, what: str = "JSON file") -> Any:
    """A small JSON document read whole (keep-lists, id lists), depth-guarded; errors name the file."""
    import orjson

    data = read_bytes(path, what)
    check_depth(data, f"{what} {path}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if "surrogate" in err.msg:
            # a lone surrogate escape: Python's parser keeps it, and the text contract rejects the record holding it
            import json

            try:
                return json.loads(data)
            except ValueError:
                pass
        raise InputError(f"{what} {path}: truncated or malformed JSON near byte {err.pos}: {err.msg}") from None


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


def read_json(fs, path: str) -> Any:
    """The JSON document at ``path`` on ``fs``, or None when it is not there or does not read as JSON: for the
    small state files rcforge keeps beside its output (a manifest being replaced, a plan, a lock's holder, a
    bootstrap state), where a torn or missing file is an answer, not an error."""
    try:
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None


def first_line(err: BaseException, limit: int = 200) -> str:
    """An error's message as one short line for a one-line report (its type's name when it has no message)."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__
