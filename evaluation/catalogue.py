"""The shard sets of one dataset folder, each opened once for a whole evaluation or report.

Opening a set reads its dataset.json and lists its shards; on an object store each is several
round trips. Every part of the report (the cells, the examples, the class names, the cost)
asks the catalogue, which opens a set and reads its manifest the first time they are asked for
and hands the same ones out after that.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from foundation import schema, storage
from foundation.storage import Location
from trainer import domains
from trainer.data import ShardSet, open_shard_set


class Catalogue:
    def __init__(self, root: Location):
        self.root = storage.location(root)
        self._sets: dict[str, ShardSet] = {}
        self._checked: dict[str, set[str]] = {}  # set name -> splits whose shards were checked
        self._manifests: dict[str, pd.DataFrame] = {}
        self._prepared: list[tuple[str, int]] | None = None

    @property
    def dataset(self) -> str:
        return storage.name(self.root)

    def prepared_sets(self) -> list[tuple[str, int]]:
        """(codec, quality) of every coded set that is complete (its dataset.json is written
        when prep ends), the learned codec's first, each codec's by quality."""
        if self._prepared is None:
            if not storage.is_dir(self.root):
                raise FileNotFoundError(f"shard folder {self.root} does not exist: run "
                                        f"`make prep` first")
            found = []
            for name, folder in storage.listdir(self.root).items():
                try:
                    codec, quality = schema.parse_set_name(name)
                except ValueError:  # another folder beside the sets
                    continue
                if folder and quality is not None and storage.is_file(
                        storage.join(self.root, name, schema.DATASET_JSON)):
                    found.append((codec, quality))
            self._prepared = sorted(found, key=lambda s: (schema.CODECS.index(s[0]), s[1]))
        return self._prepared

    def qualities(self) -> list[int]:
        """Qualities of the learned codec whose set is complete."""
        return [q for codec, q in self.prepared_sets() if codec == schema.LEARNED]

    def shard_set(self, domain: str, quality: int | None = None, codec: str = schema.LEARNED,
                  splits: tuple[str, ...] = schema.SPLITS) -> ShardSet:
        """The set a domain reads (trainer.data.open_shard_set's checks and errors), opened the
        first time; later calls only check the shards of splits not checked yet."""
        reader = domains.get(domain)
        reader.check(quality, codec)
        name = reader.set_name(quality, codec)
        if name not in self._sets:
            self._sets[name] = open_shard_set(self.root, domain, quality, codec, splits)
            self._checked[name] = set(splits)
        shard_set = self._sets[name]
        unchecked = tuple(s for s in splits if s not in self._checked[name])
        if unchecked:
            schema.check_shards(shard_set.directory, shard_set.info, unchecked)
            self._checked[name].update(unchecked)
        return shard_set if shard_set.domain == domain else replace(shard_set, domain=domain)

    def manifest(self, shard_set: ShardSet) -> pd.DataFrame:
        """The set's manifest, read once."""
        key = str(shard_set.directory)
        if key not in self._manifests:
            self._manifests[key] = schema.read_manifest(shard_set.directory).to_pandas()
        return self._manifests[key]
