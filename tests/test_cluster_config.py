"""The cluster launcher configs pass Ray's own validation, as `ray up` runs it before it
contacts a cloud, and a broken one fails."""

from __future__ import annotations

import copy
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def validated(config: dict) -> dict:
    """What `ray up` does to a config before any provider call: defaults, then the schema."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cloud_config_is_valid_for_ray_up():
    config = validated(load("config.yaml"))
    types = config["available_node_types"]
    head, gpu = types[config["head_node_type"]], types["gpu"]
    assert head["resources"]["CPU"] == 0  # prep actors and training stay off the head
    assert gpu["resources"]["GPU"] >= 1 and 0 <= gpu["min_workers"] <= gpu["max_workers"]
    assert gpu["max_workers"] <= config["max_workers"]
    # the image's Ray and Python are the project's
    image = config["docker"]["image"]
    assert metadata.version("ray") in image
    assert f"py{sys.version_info.major}{sys.version_info.minor}" in image
    # the checkout goes to every node and is installed there
    [remote] = [r for r, local in config["file_mounts"].items() if local == "."]
    assert any(f"pip install --quiet -e {remote}" in c for c in config["setup_commands"])
    # the head starts the tracking server with the users of a file from outside the checkout
    [(users, local)] = [(r, x) for r, x in config["file_mounts"].items() if x != "."]
    assert local.startswith("~/") and not users.startswith(remote)
    [start] = [c for c in config["head_start_ray_commands"] if "tracking_server" in c]
    assert f"--auth-config {users}" in start and "--host 0.0.0.0" not in start


def test_on_premises_config_is_valid_for_ray_up():
    config = validated(load("local.yaml"))
    [node_type] = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(
        config["provider"]["worker_ips"])


@pytest.mark.parametrize("breakage", [
    lambda c: c.update(max_worker=4),  # a misspelt key
    lambda c: c["available_node_types"]["gpu"].update(min_workers="one"),
    lambda c: c["available_node_types"]["gpu"].pop("resources"),
    lambda c: c.update(head_node_type="cpu-head"),
    lambda c: c["docker"].update(shm="16g"),
])
def test_a_broken_config_is_refused(breakage):
    config = load("config.yaml")
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validated(config)
