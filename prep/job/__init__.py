"""The prep job: the driver, the shard plan and the actors that write the shards."""
