"""Locations: local paths stay paths, object store URIs stay URIs, anything else is refused."""

from pathlib import Path

import pytest

from foundation import schema, storage
from foundation.sets import SetId


def test_shard_set_locations_keep_their_kind():
    q1, q8 = SetId.of(1), SetId.of(8)
    assert schema.set_dir("s3://bucket/shards/", "minc-2500", q8) == "s3://bucket/shards/minc-2500/q8"
    assert schema.set_dir("gs://b/x", "minc-2500", SetId()) == "gs://b/x/minc-2500/original"
    assert schema.set_dir("data/shards", "minc-2500", q1) == Path("data/shards/minc-2500/q1")
    assert schema.set_dir("file:///srv/shards", "d", q1) == Path("/srv/shards/d/q1")
    assert storage.name("s3://bucket/a/train-000001.tar") == "train-000001.tar"


def test_local_writes_are_atomic_and_listed_like_shards(tmp_path):
    storage.write_atomic(tmp_path / "train-000000.tar", b"x")
    with pytest.raises(RuntimeError), storage.open_write(tmp_path / "train-000001.tar") as file:
        file.write(b"partial")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["train-000000.tar"]
    assert schema.shard_paths(tmp_path) == [tmp_path / "train-000000.tar"]


@pytest.mark.parametrize(("location", "message"), [
    ("ftp://host/shards", "unsupported storage scheme ftp://"),
    ("s3:///shards", "needs a bucket"),
])
def test_bad_locations_are_explained(location, message):
    with pytest.raises(ValueError, match=message):
        storage.is_dir(location)
