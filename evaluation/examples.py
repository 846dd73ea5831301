"""Figure 2's examples: the first test image of a few classes, with its coded versions."""

from __future__ import annotations

from collections.abc import Iterator

from classifier.domains import LATENT, ORIGINAL
from evaluation.catalogue import Catalogue
from foundation import schema
from foundation.sets import SetId


def gather_examples(catalogue: Catalogue, qualities: list[int], classes: int = 4) -> list[dict]:
    """The first test image of up to `classes` classes, with its coded versions."""
    original = catalogue.shard_set(ORIGINAL.name)
    picked: dict[int, dict] = {}
    for raw in _test_samples(original):  # labels only, until each class has its example
        label = schema.decode_sample(raw, only=(schema.LABEL,))[schema.LABEL]
        if label not in picked:
            sample = schema.decode_sample(raw)
            image = next(sample[m] for m in schema.ORIGINAL_FORMATS if m in sample)
            picked[label] = {"key": sample["__key__"], "original": image,
                             "class_name": sample[schema.META]["class_name"], "coded": {}}
            if len(picked) == classes:
                break
    by_key = {e["key"]: e for e in picked.values()}
    for q in qualities:
        coded = catalogue.shard_set(LATENT.name, SetId.of(q))
        table = coded.info["codec"]["scale_table"]
        for raw in _test_samples(coded):
            if raw["__key__"] in by_key:  # decode only the examples
                sample = schema.decode_sample(raw)
                meta = sample[schema.META]
                by_key[sample["__key__"]]["coded"][q] = {
                    "decoded": sample[schema.DECODED], "y_hat": sample[schema.LATENT],
                    "sigma": schema.sigma_from_index(sample[schema.SCALES], table),
                    **{k: meta[k] for k in ("bpp", "psnr", "ssim")}}
    return [e for e in picked.values() if len(e["coded"]) == len(qualities)]


def _test_samples(shard_set) -> Iterator[dict]:
    for path in shard_set.shards("test"):
        yield from schema.iter_raw_shard(path)
