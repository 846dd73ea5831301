"""Where shard sets live: a local path (or shared filesystem), or an object store URI.

Every read, write and listing of shards, manifests and plans goes through this module, so
prep's actors on different nodes, the trainer and evaluation all see one place. A location is
a local path (`str` or `Path`, kept as a `Path`) or a URI such as `s3://bucket/prefix` or
`gs://bucket/prefix` (kept as a `str`), opened with PyArrow's filesystems.

Writes are atomic everywhere: the data goes to a temporary name next to the target and is
renamed when complete (on object stores the rename is a server-side copy, and an object is
only visible once whole), so a reader never sees a partial file under its final name.

Object stores take their credentials and endpoint from the standard variables, as the AWS and
Google SDKs read them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL (an S3-compatible server such as MinIO), an instance role, or
GOOGLE_APPLICATION_CREDENTIALS.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

Location = str | Path
REMOTE_SCHEMES = ("s3", "gs", "gcs")
TEMPORARY_PATTERN = ".*.tmp-*"  # what `temporary` names; stale ones are removed on resume
CREDENTIALS_HINT = (
    "object stores read their credentials and endpoint from AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL (S3) or "
    "GOOGLE_APPLICATION_CREDENTIALS (GCS) on every node; see docs/paper.md"
)
# What to do about a failed write, by errno; every tool that writes takes an --out
WRITE_ADVICE = {
    errno.ENOSPC: "free space on that filesystem or choose another --out",
    errno.EDQUOT: "the disk quota is used up: free space or choose another --out",
    errno.EROFS: "the filesystem is read-only: choose another --out",
    errno.EACCES: "this user may not write there: fix the permissions or choose another --out",
}


def scheme(location: Location) -> str:
    text = str(location)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_remote(location: Location) -> bool:
    """True for an object store URI, False for a local (or mounted shared) path."""
    kind = scheme(location)
    if kind in ("", "file"):
        return False
    if kind not in REMOTE_SCHEMES:
        raise ValueError(
            f"{location}: unsupported storage scheme {kind}://; use a local or shared "
            f"filesystem path, or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)}")
    return True


def location(text: Location) -> Location:
    """A local path as a Path (file:// URIs too), an object store URI as a str without a
    trailing slash."""
    if is_remote(text):
        return str(text).rstrip("/")
    text = str(text)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def join(base: Location, *names: str) -> Location:
    base = location(base)
    if isinstance(base, Path):
        return base.joinpath(*names)
    return "/".join([base, *names])


def name(path: Location) -> str:
    """The last component: `train-000000.tar` of any location."""
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def parent(path: Location) -> Location:
    path = location(path)
    if isinstance(path, Path):
        return path.parent
    return path.rsplit("/", 1)[0]


# --- the two kinds of place, behind one interface -------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One name in a folder listing."""

    name: str
    is_dir: bool
    size: int | None  # bytes of a file; None for a folder


class _Local:
    """A local or mounted shared path (a Path)."""

    def explained(self, path: Path):
        return contextlib.nullcontext()  # the OS names the file itself

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def entries(self, directory: Path) -> list[Entry]:
        if not directory.is_dir():
            return []
        return [Entry(p.name, p.is_dir(), p.stat().st_size if p.is_file() else None)
                for p in directory.iterdir()]

    def open_input(self, path: Path) -> BinaryIO:
        return open(path, "rb")

    def open_output(self, path: Path) -> BinaryIO:
        return open(path, "wb")

    def move(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)


class _ObjectStore:
    """An object store URI (a str), through PyArrow's filesystems; errors other than a missing
    object name the location and the settings to check."""

    @contextmanager
    def explained(self, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as err:
            raise OSError(f"{path}: {err} ({CREDENTIALS_HINT})") from err

    def _info(self, path: str):
        filesystem, inner = _remote(path)
        with self.explained(path):
            return filesystem.get_file_info(inner)

    def is_file(self, path: str) -> bool:
        from pyarrow import fs

        return self._info(path).type == fs.FileType.File

    def is_dir(self, path: str) -> bool:
        """Whether any object lies under the prefix (or a bucket exists)."""
        from pyarrow import fs

        return self._info(path).type == fs.FileType.Directory

    def entries(self, directory: str) -> list[Entry]:
        from pyarrow import fs

        filesystem, inner = _remote(directory)
        with self.explained(directory):
            infos = filesystem.get_file_info(fs.FileSelector(inner, allow_not_found=True))
        return [Entry(name(i.path), i.type == fs.FileType.Directory,
                      i.size if i.type == fs.FileType.File else None) for i in infos]

    def open_input(self, path: str) -> BinaryIO:
        filesystem, inner = _remote(path)
        try:
            with self.explained(path):
                return filesystem.open_input_stream(inner)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{path} not found") from err

    def open_output(self, path: str) -> BinaryIO:
        filesystem, inner = _remote(path)
        return filesystem.open_output_stream(inner)

    def move(self, source: str, target: str) -> None:
        filesystem, inner_source = _remote(source)
        filesystem.move(inner_source, _remote(target)[1])  # server-side copy: whole or absent

    def remove(self, path: str) -> None:
        filesystem, inner = _remote(path)
        try:
            filesystem.delete_file(inner)
        except FileNotFoundError:
            pass
        except OSError as err:
            if self.is_file(path):
                raise OSError(f"{path}: cannot delete it: {err} ({CREDENTIALS_HINT})") from err


_LOCAL, _OBJECT_STORE = _Local(), _ObjectStore()


def _place(path: Location) -> tuple[_Local | _ObjectStore, Location]:
    """The one local-or-remote decision: the backend of a location, and the location."""
    path = location(path)
    return (_LOCAL if isinstance(path, Path) else _OBJECT_STORE), path


@functools.lru_cache(maxsize=16)
def _filesystem(root: str, pid: int, endpoint: str | None):
    """One PyArrow filesystem per bucket, process (a forked loader worker makes its own) and
    endpoint."""
    from pyarrow import fs

    try:
        filesystem, _ = fs.FileSystem.from_uri(root)
    except Exception as err:
        raise OSError(f"cannot open {root}: {err} ({CREDENTIALS_HINT})") from err
    return filesystem


def _remote(path: str):
    """(filesystem, path inside it) of an object store URI."""
    kind, rest = path.split("://", 1)
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise ValueError(f"{path}: an object store URI needs a bucket, e.g. {kind}://bucket/shards")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _filesystem(f"{kind}://{bucket}", os.getpid(), endpoint), rest.rstrip("/")


# --- queries ------------------------------------------------------------------------------------


def is_file(path: Location) -> bool:
    backend, path = _place(path)
    return backend.is_file(path)


def is_dir(path: Location) -> bool:
    """On an object store: whether any object lies under the prefix (or a bucket exists)."""
    backend, path = _place(path)
    return backend.is_dir(path)


def listdir(directory: Location) -> dict[str, bool]:
    """The names in a folder, each mapped to whether it is a folder; empty when missing."""
    backend, directory = _place(directory)
    return {e.name: e.is_dir for e in backend.entries(directory)}


def file_sizes(directory: Location) -> dict[str, int]:
    """The files of one folder and their sizes in bytes, from one listing (one request on an
    object store); empty when missing."""
    backend, directory = _place(directory)
    return {e.name: e.size for e in backend.entries(directory) if not e.is_dir}


def glob(directory: Location, pattern: str) -> list[Location]:
    """Files of one folder whose names match a shell pattern, sorted by name."""
    matches = sorted(n for n, folder in listdir(directory).items()
                     if not folder and fnmatch.fnmatchcase(n, pattern))
    return [join(directory, n) for n in matches]


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def open_read(path: Location) -> Iterator[BinaryIO]:
    """A binary stream of the whole file; FileNotFoundError names the location."""
    backend, path = _place(path)
    with backend.open_input(path) as stream:
        yield stream


def read_bytes(path: Location) -> bytes:
    with open_read(path) as file:
        return file.read()


def sha256(path: Location) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open_read(path) as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- writing: every file of the project is written here, atomically ------------------------------


def makedirs(directory: Location) -> None:
    """Create a local folder with its parents; object stores have no folders to create."""
    directory = location(directory)
    if isinstance(directory, Path):
        directory.mkdir(parents=True, exist_ok=True)


def temporary(path: Location) -> Location:
    """A fresh temporary name next to `path` (`.<name>.tmp-<hex>`; stale ones match
    TEMPORARY_PATTERN)."""
    return join(parent(path), f".{name(path)}.tmp-{uuid.uuid4().hex[:8]}")


@contextmanager
def open_write(path: Location) -> Iterator[BinaryIO]:
    """Write a file atomically: a temporary name, renamed to `path` only when the block ends
    without an exception (else removed). An OSError names `path` and what to do."""
    backend, path = _place(path)
    tmp = temporary(path)
    try:
        with backend.explained(path):
            with backend.open_output(tmp) as stream:
                yield stream
            backend.move(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):  # a stale temporary is removed by the next run
            remove(tmp)
        explained = write_error(path, err) if isinstance(err, OSError) else err
        if explained is not err:
            raise explained from err
        raise


def write_error(path: Location, err: OSError) -> OSError:
    """A failed write as one line that names the file and what to do (errno kept)."""
    if str(path) in str(err) or (err.strerror or "").startswith("cannot write "):
        return err  # explained already (object store errors, a nested write)
    advice = WRITE_ADVICE.get(err.errno)
    return OSError(err.errno, f"cannot write {path}: {err.strerror or err}"
                   + (f"; {advice}" if advice else ""))


class Digest:
    """A write-through stream that counts and hashes what passes: a file's fingerprint while
    it is written, without reading it back."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.size, self._sha256 = stream, 0, hashlib.sha256()

    def write(self, data) -> int:
        self._sha256.update(data)
        self.size += len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def write_atomic(path: Location, data: bytes) -> None:
    with open_write(path) as file:
        file.write(data)


def remove(path: Location) -> None:
    """Delete a file; a missing one is fine."""
    backend, path = _place(path)
    backend.remove(path)
