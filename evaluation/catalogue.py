"""The shard sets of one dataset folder, each opened once for a whole evaluation or report.

Opening a set reads its dataset.json and lists its shards; on an object store each is several
round trips. Every part of the report (the cells, the examples, the class names, the cost)
asks the catalogue, which opens a set and reads its manifest the first time they are asked for
and hands the same ones out after that.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from classifier import domains
from classifier.data import ShardSet, open_shard_set
from foundation import schema, storage
from foundation.sets import SetId
from foundation.storage import Location


class Catalogue:
    def __init__(self, root: Location):
        self.root = storage.location(root)
        self._sets: dict[str, ShardSet] = {}
        self._checked: dict[str, set[str]] = {}  # set name -> splits whose shards were checked
        self._manifests: dict[str, pd.DataFrame] = {}
        self._prepared: list[SetId] | None = None

    @property
    def dataset(self) -> str:
        return storage.name(self.root)

    def prepared_sets(self) -> list[SetId]:
        """Every coded set that is complete (its dataset.json is written when prep ends), the
        learned codec's first, each codec's by quality."""
        if self._prepared is None:
            if not storage.is_dir(self.root):
                raise FileNotFoundError(f"shard folder {self.root} does not exist: run "
                                        f"`make prep` first")
            found = []
            for name, folder in storage.listdir(self.root).items():
                try:
                    set_id = SetId.parse(name)
                except ValueError:  # another folder beside the sets
                    continue
                if folder and set_id.coded and storage.is_file(
                        storage.join(self.root, name, schema.DATASET_JSON)):
                    found.append(set_id)
            self._prepared = sorted(found)
        return self._prepared

    def qualities(self) -> list[int]:
        """Qualities of the learned codec whose set is complete."""
        return [s.quality for s in self.prepared_sets() if s.learned]

    def shard_set(self, domain: str, set_id: SetId | None = None,
                  splits: tuple[str, ...] = schema.SPLITS) -> ShardSet:
        """The set a domain reads (classifier.data.open_shard_set's checks and errors), opened the
        first time; later calls only check the shards of splits not checked yet."""
        set_id = domains.get(domain).reads(set_id)
        name = set_id.name
        if name not in self._sets:
            self._sets[name] = open_shard_set(self.root, domain, set_id, splits)
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
