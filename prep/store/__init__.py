"""The shard store: the shard contract (docs/shards.md) and where sets live (local paths,
object stores)."""
