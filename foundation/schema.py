"""The shard-set contract (docs/shards.md): paths, member names, encodings, a writer and a safe
reader.

This module is the single source of truth: no other module spells a member name or a dtype.
Readers decode only npy (allow_pickle=False), images, json and cls; anything else is skipped,
so a shard can never run code while it is read.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import io
import json
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import zstandard
from PIL import Image

from foundation import storage
from foundation.images import to_rgb
from foundation.sets import CLASSICAL, SetId
from foundation.storage import Location

SCHEMA_VERSION = 1

SPLITS = ("train", "validate", "test")
MANIFEST = "manifest.parquet"
FAILURES = "failures.parquet"
DATASET_JSON = "dataset.json"
PARTS = ".parts"  # per-shard manifest rows, merged into MANIFEST when a job ends
FINGERPRINTS = "shards"  # dataset.json's record of each shard's bytes and sha256

# Members of a sample (WebDataset: the text after the key's first dot).
LABEL = "cls"
META = "json"
LATENT = "latent.npy.zst"  # y_hat, smallest integer dtype that holds it, lossless
SCALES = "scales.npy.zst"  # sigma_hat as the entropy model's uint8 scale index, lossless
Y_STRING = "y.bin"
Z_STRING = "z.bin"
DECODED = "decoded.png"
ORIGINAL_FORMATS = ("jpg", "png")
CODED_MEMBERS = (LATENT, SCALES, Y_STRING, Z_STRING, DECODED)

ZSTD_LEVEL = 10  # measured: level 19 saves ~3% on these arrays at ~8x the time


def set_dir(out: Location, dataset: str, set_id: SetId) -> Location:
    """<out>/<dataset>/<set>: a Path for a local `out`, a URI for an object store."""
    return storage.join(out, dataset, set_id.name)


def bitstream_member(codec: str) -> str:
    """The member holding a classical codec's file bytes, e.g. `jpeg.bin`."""
    if codec not in CLASSICAL:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(CLASSICAL)}")
    return f"{codec}.bin"


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


SHARD_PATTERN = "{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"


def shard_paths(directory: Location, split: str = "*") -> list[Location]:
    """The complete shards of one split (default: of every split), in order; temporary files
    are not matched."""
    return storage.glob(directory, SHARD_PATTERN.format(split=split))


def shard_sizes(directory: Location) -> dict[str, int]:
    """Shard name -> bytes of every complete shard, from one listing (cheap on object stores)."""
    pattern = SHARD_PATTERN.format(split="*")
    return {n: size for n, size in sorted(storage.file_sizes(directory).items())
            if fnmatch.fnmatchcase(n, pattern)}


def shard_split(name: str) -> str:
    return name.split("-", 1)[0]


def sanitize_key(text: str) -> str:
    """A WebDataset key: no dots (they separate the extension), no path separators."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


# --- encoding -------------------------------------------------------------------------------


def smallest_int_dtype(values: np.ndarray) -> np.dtype:
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"latent values {low}..{high} do not fit int32")


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(buffer.getvalue())


def encode_latent(y_hat: np.ndarray) -> bytes:
    """y_hat (integer-valued floats) in the smallest integer dtype, zstd-compressed."""
    rounded = np.rint(y_hat)
    if not np.array_equal(rounded, y_hat):
        raise ValueError("y_hat must hold integers (it is round(y))")
    return encode_npy(rounded.astype(smallest_int_dtype(rounded)))


def encode_scale_index(indexes: np.ndarray) -> bytes:
    if indexes.min() < 0 or indexes.max() > 255:
        raise ValueError("scale indexes must lie in 0..255 to be stored as uint8")
    return encode_npy(indexes.astype(np.uint8))


def encode_png(image: Image.Image) -> bytes:
    """Lossless PNG at zlib level 4: the bytes of level 6 (within 1%) in 2.2-2.8x less time,
    where level 1 is faster still but 14-16% larger (docs/shards.md): prep writes one per
    coded image."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def encode_json(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, allow_nan=True).encode()


def original_member(file_format: str) -> str | None:
    """The member name that keeps an original file's bytes unchanged, or None (re-encode)."""
    return {"JPEG": "jpg", "PNG": "png"}.get(file_format)


# --- writing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """A committed shard's size and sha256: a resume compares the size (a listing), --verify
    the sha256, the trainer and evaluation the sizes of the shards they read."""

    bytes: int
    sha256: str


class ShardWriter:
    """Write one shard to a temporary name; it appears under its final name only when complete.

    Tars are reproducible (fixed mtime, owner and order), so the same plan gives the same bytes.
    `before_commit(fingerprint)` runs once the tar is whole and before it is renamed (its
    records are written there): an error in it, or in writing, leaves no shard behind.
    """

    def __init__(self, path: Location, before_commit: Callable[[Fingerprint], None] | None = None):
        import webdataset as wds

        self.path = storage.location(path)
        self.before_commit = before_commit
        self.fingerprint: Fingerprint | None = None
        self._commit = storage.open_write(self.path)
        self._digest = storage.Digest(self._commit.__enter__())
        self._tar = wds.TarWriter(self._digest, encoder=False, mtime=0.0)

    def write(self, key: str, members: dict[str, bytes]) -> int:
        """Write one sample; returns the bytes of its members."""
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
        self._tar.write({"__key__": key, **members})
        return sum(len(v) for v in members.values())

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            with contextlib.suppress(Exception):  # closed, so that nothing writes to it later
                self._tar.close()
            self._commit.__exit__(exc_type, exc, tb)  # removes the temporary
            return
        try:
            self._tar.close()  # the end-of-archive blocks
            self.fingerprint = Fingerprint(self._digest.size, self._digest.hexdigest())
            if self.before_commit is not None:
                self.before_commit(self.fingerprint)
        except BaseException as err:
            self._commit.__exit__(type(err), err, err.__traceback__)  # removes the temporary
            raise
        self._commit.__exit__(None, None, None)  # renamed to its final name


def fingerprint_path(set_dir: Location, shard: str) -> Location:
    """A shard's fingerprint while its set is being written (merged into dataset.json)."""
    return storage.join(set_dir, PARTS, f"{shard}.json")


def write_fingerprint(set_dir: Location, shard: str, fingerprint: Fingerprint) -> None:
    storage.write_atomic(fingerprint_path(set_dir, shard),
                         json.dumps(asdict(fingerprint)).encode())


def read_fingerprint(set_dir: Location, shard: str) -> Fingerprint:
    return Fingerprint(**json.loads(storage.read_bytes(fingerprint_path(set_dir, shard))))


def remove_stale_temporaries(directory: Location) -> int:
    """Delete what interrupted writers left behind; returns how many."""
    stale = storage.glob(directory, storage.TEMPORARY_PATTERN)
    for path in stale:
        storage.remove(path)
    return len(stale)



# --- reading --------------------------------------------------------------------------------


def _decompress(data: bytes, suffix: str) -> bytes:
    if suffix == "zst":
        return zstandard.ZstdDecompressor().decompress(data)
    if suffix == "gz":
        return gzip.decompress(data)
    raise ValueError(f"unknown compression suffix .{suffix}")


def decode_member(name: str, data: bytes):
    """Decode one member by its name, or return None for a member this reader does not know."""
    parts = name.split(".")
    if parts[-1] in ("zst", "gz") and len(parts) >= 2 and parts[-2] == "npy":
        data, parts = _decompress(data, parts[-1]), parts[:-1]
    kind = parts[-1]
    if kind == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == LABEL:
        return int(data)
    if kind == META:
        return json.loads(data)
    if kind in ("png", "jpg", "jpeg"):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)[0]
    if kind == "bin":
        return bytes(data)
    return None


def decode_sample(raw: dict, only: Iterable[str] | None = None) -> dict:
    """Decode a raw WebDataset sample (member name -> bytes); `only` limits the members."""
    wanted = set(only) if only is not None else None
    sample = {"__key__": raw["__key__"], "__url__": raw.get("__url__")}
    for name, data in raw.items():
        if name.startswith("__") or (wanted is not None and name not in wanted):
            continue
        value = decode_member(name, data)
        if value is not None:
            sample[name] = value
    return sample


def iter_raw_shard(path: Location) -> Iterator[dict]:
    """Raw samples (member name -> bytes) of one shard, in order. Errors name the shard."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    try:
        with storage.open_read(path) as stream:
            yield from group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}]))
    except Exception as err:
        raise ValueError(f"corrupt shard {path}: {err}") from err


def iter_shard(path: Location, only: Iterable[str] | None = None) -> Iterator[dict]:
    """Decoded samples of one shard, in order."""
    for raw in iter_raw_shard(path):
        yield decode_sample(raw, only)


def sigma_from_index(index: np.ndarray, scale_table: list[float]) -> np.ndarray:
    """sigma_hat as the coder used it: the scale table's value at each stored index."""
    return np.asarray(scale_table, dtype=np.float32)[index]


def read_dataset_json(directory: Location) -> dict:
    path = storage.join(directory, DATASET_JSON)
    if not storage.is_file(path):
        raise FileNotFoundError(f"{path} not found: is {directory} a prepared shard set?")
    info = json.loads(storage.read_bytes(path))
    if info.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema version {info.get('schema_version')}; this code reads "
            f"version {SCHEMA_VERSION}. Prepare the shards again with this version."
        )
    return info


def check_shards(directory: Location, info: dict, splits: Iterable[str] = SPLITS) -> None:
    """The shards of `splits` are all there with the sizes prep recorded (one listing); else a
    ValueError in one line naming the first bad shard and the command that redoes it."""
    recorded = info.get(FINGERPRINTS)
    if recorded is None:
        raise ValueError(f"{storage.join(directory, DATASET_JSON)} records no shard sizes (the set "
                         f"was prepared before they were): run `{redo_command(directory, info)}`, "
                         f"which checks the shards and records them without coding again")
    found = shard_sizes(directory)
    for name, fingerprint in sorted(recorded.items()):
        size = found.get(name)
        if shard_split(name) in splits and size != fingerprint["bytes"]:
            state = "is missing" if size is None else (
                f"is {size} bytes, prep wrote {fingerprint['bytes']} (damaged or truncated)")
            raise ValueError(f"shard {storage.join(directory, name)} {state}: redo it with "
                             f"`{redo_command(directory, info)}`")


PREP_COMMAND = "prep_argv"  # dataset.json: the `python -m prep` arguments that wrote the set
REDO_DROPS = ("--force", "--verify")  # a redo does only the missing or damaged shards


def redo_command(directory: Location, info: dict) -> str:
    """`python -m prep ...` that prepares this set again as it was (it redoes only the shards
    that are missing or damaged): the command that wrote it (PREP_COMMAND) with --out where
    the set is now; for a set written before it was recorded, one rebuilt from dataset.json."""
    out = str(storage.parent(storage.parent(storage.location(directory))))
    recorded = info.get(PREP_COMMAND)
    args = _replayed(recorded, out) if recorded else _rebuilt(info, out)
    return "python -m prep " + shlex.join(args)


def _replayed(argv: list[str], out: str) -> list[str]:
    """The recorded arguments (they hold no --out) writing to `out`, without REDO_DROPS."""
    return ["--out", out, *(arg for arg in argv if arg not in REDO_DROPS)]


def _rebuilt(info: dict, out: str) -> list[str]:
    args = ["--data", info["dataset"]["root"], "--out", out]
    split = info.get("split") or {}
    if "number" in split:
        args += ["--split", str(split["number"])]
    if "seed" in split:
        args += ["--seed", str(split["seed"])]
    codec = info.get("codec")
    if not codec:
        args += ["--original-only"]
    elif codec.get("name") in CLASSICAL:  # jpeg30, webp50: that set alone
        args += [f"--{codec['name']}", str(codec["quality"]), "--no-original"]
    else:
        args += ["--quality", str(codec["quality"])]
        if "://" not in codec["weights_source"]:  # a file, not CompressAI's download
            args += ["--codec-weights", codec["weights_source"]]
    args += ["--shard-size", str(info["shard_size"])]
    return args


# --- manifests ------------------------------------------------------------------------------


def _columns(*fields: tuple[str, str]):
    import pyarrow as pa

    types = {"str": pa.string(), "i32": pa.int32(), "i64": pa.int64(), "f64": pa.float64()}
    return pa.schema([(name, types[kind]) for name, kind in fields])


_SAMPLE = (
    ("key", "str"), ("split", "str"), ("label", "i32"), ("class_name", "str"), ("source", "str"),
    ("shard", "str"), ("width", "i32"), ("height", "i32"), ("conversion", "str"),
)
ORIGINAL_COLUMNS = _SAMPLE + (("format", "str"), ("original_bytes", "i64"))
CODED_COLUMNS = _SAMPLE + (
    ("bpp", "f64"), ("psnr", "f64"), ("ms_ssim", "f64"), ("ssim", "f64"),
    ("y_bytes", "i64"), ("z_bytes", "i64"), ("latent_bytes", "i64"), ("scales_bytes", "i64"),
    ("decoded_bytes", "i64"), ("latent_dtype", "str"), ("latent_channels", "i32"),
    ("latent_height", "i32"), ("latent_width", "i32"),
)
CLASSICAL_COLUMNS = _SAMPLE + (
    ("bpp", "f64"), ("psnr", "f64"), ("ms_ssim", "f64"), ("ssim", "f64"),
    ("file_bytes", "i64"), ("decoded_bytes", "i64"),
)
FAILURE_COLUMNS = (
    ("key", "str"), ("split", "str"), ("label", "i32"), ("class_name", "str"), ("source", "str"),
    ("shard", "str"), ("stage", "str"), ("reason", "str"),
)


def manifest_schema(set_id: SetId):
    if not set_id.coded:
        return _columns(*ORIGINAL_COLUMNS)
    return _columns(*(CODED_COLUMNS if set_id.learned else CLASSICAL_COLUMNS))


def failure_schema():
    return _columns(*FAILURE_COLUMNS)


def read_manifest(directory: Location):
    """The manifest of a shard set as a PyArrow table."""
    path = storage.join(directory, MANIFEST)
    if not storage.is_file(path):
        raise FileNotFoundError(f"{path} not found: run `make prep` for this set first")
    return read_table(path)


def read_table(path: Location):
    """A Parquet file (a manifest, its per-shard parts) as a PyArrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(storage.read_bytes(path)))


def write_table(table, path: Location) -> None:
    """A Parquet file, written atomically."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_atomic(path, buffer.getvalue())
