"""Write one planned shard: read its images, code them (the learned codec, or a classical one),
and commit the tar and its manifest rows.

A shard is committed in steps, each under a temporary name renamed when complete: its rows and
failures, then its fingerprint (size and sha256 of the finished tar), the tar last. A shard
whose tar exists with the recorded size is done; anything else is redone on resume.

Failures are per image: any error reading, decoding, converting or coding one image becomes
that image's failure record and the shard is written with the rest. Only errors of the shard
itself (its storage) fail the shard, and they say what to fix.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa

from foundation import schema, storage
from foundation.images import MAX_PIXELS, BadImage, LoadedImage, decode_rgb
from foundation.sets import SetId
from foundation.storage import Location
from prep.datasets.listing import Failure, Item


@dataclass(frozen=True)
class ShardTask:
    set_dir: str  # <out>/<dataset>/<original|qQ|jpegP>: a local path or an object store URI
    shard: str  # file name, e.g. train-000003.tar
    dataset_root: str
    set_id: SetId
    items: tuple[Item, ...]
    max_pixels: int = MAX_PIXELS  # larger images are failures, never decoded

    @property
    def path(self) -> Location:
        return storage.join(self.set_dir, self.shard)


@dataclass(frozen=True)
class ShardResult:
    shard: str
    samples: int
    failures: int
    seconds: float
    peak_rss_bytes: int
    worker: str  # host:pid
    node: str = ""  # Ray node id ("" outside Ray)


def part_paths(set_dir: Location, shard: str) -> tuple[Location, Location]:
    """The per-shard manifest rows and failure rows, merged into the set's files at the end."""
    parts = storage.join(set_dir, schema.PARTS)
    return storage.join(parts, f"{shard}.parquet"), storage.join(parts, f"{shard}.failures.parquet")


def complete_shards(set_dir: Location, verify: bool = False) -> tuple[set[str], list[str]]:
    """Names of the shards that are done (tar, parts and fingerprint there, the tar's size as
    recorded; with `verify` its sha256 too), and a note for each damaged one, which is removed
    so that it is redone. Two listings and a small read per shard, also on object stores."""
    parts = storage.listdir(storage.join(set_dir, schema.PARTS))
    done, notes = set(), []
    for name, size in schema.shard_sizes(set_dir).items():
        path = storage.join(set_dir, name)
        if not all(storage.name(p) in parts for p in part_paths(set_dir, name)):
            continue  # its parts are lost: redone (the tar is overwritten)
        if storage.name(schema.fingerprint_path(set_dir, name)) not in parts:
            problem = _adopt(set_dir, name, size)
        else:
            problem = _damage(path, size, schema.read_fingerprint(set_dir, name), verify)
        if problem:
            storage.remove(path)
            notes.append(f"{path} {problem}: redoing it")
        else:
            done.add(name)
    return done, notes


def _damage(path: Location, size: int, fingerprint: schema.Fingerprint,
            verify: bool) -> str | None:
    if size != fingerprint.bytes:
        return f"is {size} bytes, {fingerprint.bytes} when written (damaged or truncated)"
    if verify and storage.sha256(path) != fingerprint.sha256:
        return "has the recorded size but not the recorded sha256 (damaged)"
    return None


def _adopt(set_dir: Location, name: str, size: int) -> str | None:
    """A shard written before fingerprints were recorded: record its own if it reads whole and
    holds exactly its manifest rows' keys (read once, not coded again), else say why not."""
    path = storage.join(set_dir, name)
    try:
        keys = [raw["__key__"] for raw in schema.iter_raw_shard(path)]
    except ValueError as err:
        return f"has no fingerprint and does not read whole ({err})"
    if keys != schema.read_table(part_paths(set_dir, name)[0]).column("key").to_pylist():
        return "has no fingerprint and holds other keys than its manifest rows"
    schema.write_fingerprint(set_dir, name, schema.Fingerprint(size, storage.sha256(path)))
    return None


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def prefetch(fn: Callable, items: Iterable, pool: ThreadPoolExecutor, depth: int) -> Iterator:
    """fn over items in order, `depth` calls ahead in the pool (bounded memory)."""
    iterator = iter(items)
    pending: list[Future] = [pool.submit(fn, x) for x in islice(iterator, depth)]
    while pending:
        result = pending.pop(0).result()
        pending.extend(pool.submit(fn, x) for x in islice(iterator, 1))
        yield result


def _load(task: ShardTask, item: Item) -> tuple[Item, bytes | None, LoadedImage | str]:
    """The file's bytes and decoded image, or the reason it cannot be used."""
    try:
        data = Path(task.dataset_root, item.source).read_bytes()
    except OSError as err:
        return item, None, f"cannot read file: {err}"
    try:
        return item, data, decode_rgb(data, item.source, task.max_pixels)
    except Exception as err:  # BadImage, or anything else the decoder raises for this file
        return item, None, str(err) if isinstance(err, BadImage) else _reason(err)


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _failure(item: Item, stage: str, reason: str) -> Failure:
    return Failure(item.key, item.source, item.split, item.label, item.class_name, stage, reason)


def _base_meta(item: Item, shard: str, loaded: LoadedImage) -> dict:
    width, height = loaded.rgb.size
    return {
        "key": item.key, "split": item.split, "label": item.label,
        "class_name": item.class_name, "source": item.source, "shard": shard,
        "width": width, "height": height, "conversion": loaded.conversion,
    }


def _original_members(item: Item, data: bytes, loaded: LoadedImage, meta: dict):
    member = schema.original_member(loaded.format)
    if member is None:  # not JPEG or PNG: keep the pixels losslessly as PNG
        member, data = "png", schema.encode_png(loaded.rgb)
        meta["conversion"] = "; ".join(
            filter(None, [meta["conversion"], f"{loaded.format} re-encoded as PNG"])
        )
    meta |= {"format": member, "original_bytes": len(data)}
    members = {
        schema.LABEL: str(item.label).encode(), member: data, schema.META: schema.encode_json(meta)
    }
    return members, meta


def _coded_members(item: Item, coded, quality: int, meta: dict):
    latent = schema.encode_latent(coded.y_hat)
    members = {
        schema.LABEL: str(item.label).encode(),
        schema.LATENT: latent,
        schema.SCALES: schema.encode_scale_index(coded.scale_index),
        schema.Y_STRING: coded.y_string,
        schema.Z_STRING: coded.z_string,
        schema.DECODED: schema.encode_png(coded.decoded),
    }
    channels, h, w = coded.y_hat.shape
    meta |= {
        "quality": quality, "bpp": coded.bpp, "psnr": coded.psnr, "ms_ssim": coded.ms_ssim,
        "ssim": coded.ssim, "y_bytes": len(coded.y_string), "z_bytes": len(coded.z_string),
        "latent_bytes": len(latent), "scales_bytes": len(members[schema.SCALES]),
        "decoded_bytes": len(members[schema.DECODED]),
        "latent_dtype": str(schema.smallest_int_dtype(coded.y_hat)),
        "latent_channels": channels, "latent_height": h, "latent_width": w,
        "z_shape": list(coded.z_shape), "pad": list(coded.pad),
    }
    members[schema.META] = schema.encode_json(meta)
    return members, meta


def _classical_members(item: Item, coded, set_id: SetId, meta: dict):
    member = schema.bitstream_member(set_id.codec)
    members = {
        schema.LABEL: str(item.label).encode(),
        member: coded.data,
        schema.DECODED: schema.encode_png(coded.decoded),
    }
    meta |= {
        "codec": set_id.codec, "quality": set_id.quality, "bpp": coded.bpp, "psnr": coded.psnr,
        "ms_ssim": coded.ms_ssim, "ssim": coded.ssim, "file_bytes": len(coded.data),
        "decoded_bytes": len(members[schema.DECODED]),
    }
    members[schema.META] = schema.encode_json(meta)
    return members, meta


def _batches(loaded: Iterator, batch_size: int) -> Iterator[list]:
    """Consecutive good images of one size, up to batch_size; failed reads pass through alone."""
    batch: list = []
    for entry in loaded:
        image = entry[2]
        if batch and (isinstance(image, str) or image.rgb.size != batch[0][2].rgb.size):
            yield batch
            batch = []
        if isinstance(image, str):
            yield [entry]
            continue
        batch.append(entry)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class ShardEncoder:
    """Holds the codec once and writes shards; runs as a Ray actor or in process.

    The codec's transforms run here on `device`, or, on a GPU node, in a `transformer` actor
    that this process feeds one batch ahead. Entropy coding, its check and the members always
    run here, on the CPU."""

    def __init__(self, weights, device: str = "cpu", threads: int | None = None,
                 batch_size: int = 1, io_threads: int = 2, transformer=None):
        import torch

        from foundation.hyperprior import load_codec

        if threads:
            torch.set_num_threads(threads)
        self.decoder = load_codec(weights) if weights is not None else None  # on the CPU
        self.model = None
        if weights is not None and transformer is None:
            self.model = self.decoder if device == "cpu" else load_codec(weights, device)
        self.transformer = transformer
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(max_workers=io_threads)
        self.name = f"{os.uname().nodename}:{os.getpid()}"
        self.node = _ray_node()

    def write(self, task: ShardTask) -> ShardResult:
        start = time.perf_counter()
        rows, failures = [], []

        def commit(outputs: list) -> None:
            for item, output in outputs:
                result = _result(item, output)
                if isinstance(result, Failure):
                    failures.append(result.row(task.shard))
                    continue
                members, meta = result
                writer.write(item.key, members)  # a storage error here fails the shard
                rows.append(meta)

        loaded = prefetch(lambda it: _load(task, it), task.items, self.pool, 4)
        batches = _one_ahead(_batches(loaded, self.batch_size),
                             self._transforms if task.set_id.learned else None)
        records = partial(_write_parts, task, rows, failures)  # once the tar is whole
        with schema.ShardWriter(task.path, before_commit=records) as writer:
            pending: list = []
            for batch, transformed in batches:
                outputs = self._submit(task, batch, transformed)  # codes this batch while the
                commit(pending)  # pool encodes the previous one's members
                pending = outputs
            commit(pending)
        return ShardResult(task.shard, len(rows), len(failures), time.perf_counter() - start,
                           peak_rss_bytes(), self.name, self.node)

    def _transforms(self, batch: list) -> Callable[[], list]:
        """Start the transforms of a batch of good images; the callable returns their results."""
        images = [loaded.rgb for _, _, loaded in batch]
        if self.transformer is None:
            from foundation import coding

            return lambda: coding.transform(self.model, images)
        import ray

        ref = self.transformer.transform.remote([np.asarray(image) for image in images])
        return lambda: ray.get(ref)

    def _submit(self, task: ShardTask, batch: list, transformed: Callable[[], list]) -> list:
        """(item, Future of (members, manifest row)) per image, or (item, Failure)."""
        if isinstance(batch[0][2], str):
            item, _, reason = batch[0]
            return [(item, _failure(item, "read", reason))]
        if not task.set_id.coded:
            return [
                (item, self.pool.submit(_original_members, item, data, loaded,
                                        _base_meta(item, task.shard, loaded)))
                for item, data, loaded in batch
            ]
        outputs = []
        for (item, _, loaded), c in zip(batch, self._code(task, batch, transformed),
                                        strict=True):
            meta = _base_meta(item, task.shard, loaded)
            if isinstance(c, Failure):
                outputs.append((item, c))
            elif task.set_id.classical:
                outputs.append((item, self.pool.submit(_classical_members, item, c,
                                                       task.set_id, meta)))
            else:
                outputs.append((item, self.pool.submit(_coded_members, item, c, task.set_id.quality,
                                                       meta)))
        return outputs

    def _code(self, task: ShardTask, batch: list, transformed: Callable[[], list]) -> list:
        """Coded, or a Failure, per image: a batch that fails is coded again image by image so
        that only the image at fault fails. A lost transformer actor fails the shard."""
        from ray.exceptions import RayActorError

        from foundation import coding
        from prep.codec import classical

        try:
            if task.set_id.classical:  # Pillow's codecs: nothing to verify
                images = [loaded.rgb for _, _, loaded in batch]
                return list(classical.code_classical(images, task.set_id.codec,
                                                     task.set_id.quality))
            coded = [coding.entropy_code(self.decoder, t) for t in transformed()]
        except RayActorError:
            raise
        except Exception as err:
            if len(batch) > 1:
                return [result for entry in batch
                        for result in self._code(task, [entry], self._transforms([entry]))]
            return [_failure(batch[0][0], "encode", f"coding failed: {_reason(err)}")]
        return [_failure(item, "verify", c.mismatch) if c.mismatch else c
                for (item, _, _), c in zip(batch, coded, strict=True)]


def _one_ahead(batches: Iterator[list], start: Callable | None) -> Iterator[tuple]:
    """Each batch with its transforms, started when the previous batch is handed out: a
    transformer actor works on the next batch while this process entropy-codes the last."""
    previous = None
    for batch in batches:
        good = start is not None and not isinstance(batch[0][2], str)
        current = (batch, start(batch) if good else None)
        if previous is not None:
            yield previous
        previous = current
    if previous is not None:
        yield previous


class Transformer:
    """The codec's transforms on one device (a GPU), for the CPU workers of its node."""

    def __init__(self, weights, device: str = "cuda", threads: int | None = None):
        import torch

        from foundation.hyperprior import load_codec

        if threads:
            torch.set_num_threads(threads)
        self.model = load_codec(weights, device)

    def transform(self, images: list) -> list:
        from foundation import coding

        return coding.transform(self.model, images)

    def node(self) -> str:
        return _ray_node()


def _result(item: Item, output: Future | Failure) -> tuple[dict, dict] | Failure:
    """An image's members and manifest row, or its failure (encoding the members can fail)."""
    if isinstance(output, Failure):
        return output
    try:
        return output.result()
    except Exception as err:
        return _failure(item, "encode", _reason(err))


def _write_parts(task: ShardTask, rows: list[dict], failures: list[dict],
                 fingerprint: schema.Fingerprint) -> None:
    """The shard's rows, failures and fingerprint, written before its tar is renamed."""
    rows_path, failures_path = part_paths(task.set_dir, task.shard)
    storage.makedirs(storage.parent(rows_path))
    manifest = schema.manifest_schema(task.set_id)
    schema.write_table(pa.Table.from_pylist(rows, schema=manifest), rows_path)
    schema.write_table(pa.Table.from_pylist(failures, schema=schema.failure_schema()),
                       failures_path)
    schema.write_fingerprint(task.set_dir, task.shard, fingerprint)


def _ray_node() -> str:
    """The id of the Ray node this process runs on, or "" outside a Ray worker."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
