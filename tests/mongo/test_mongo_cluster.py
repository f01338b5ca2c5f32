"""Shard keys and residency zones on a real sharded cluster: a mongos in front of one shard per zone.

The cluster is ``MONGO_SHARDED_URL`` or one started from ``mongod`` and ``mongos``
binaries (``sovren_db.services.start_mongo_cluster``: shard_eu serves zone eu,
shard_us zone us); elsewhere these tests are skipped, saying so. The pure tests at
the end check how that cluster is started where no binary exists.
"""

from __future__ import annotations

from pathlib import Path

import pymongo
import pytest
from bson import MaxKey, MinKey
from mongo_support import make_settings, write_declarations

from sovren_db.core.errors import Refused
from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.diff import diff_states
from sovren_db.mongo.ops import CreateCollectionOp
from sovren_db.mongo.toimpl import execute
from sovren_db.services import mongo_cluster

pytestmark = pytest.mark.mongo


@pytest.fixture
def cluster_backend(mongo_cluster_url: str, tmp_path: Path):
    from sovren_db.mongo.backend import MongoBackend

    database = mongo_cluster_url.rsplit("/", 1)[1].split("?")[0]
    backend = MongoBackend(make_settings(tmp_path, mongo_cluster_url, database))
    backend.connect()
    yield backend
    backend.close()


def converge(backend, declared) -> None:
    for op in diff_states(declared, backend.introspect()):
        backend.execute(op)


def config(backend, collection: str, filter: dict) -> list[dict]:
    return list(backend.client["config"][collection].find(filter))


def shard_client(backend, zone: str) -> pymongo.MongoClient:
    """A direct connection to the shard serving ``zone``, as config.shards names its host."""
    [shard] = config(backend, "shards", {"tags": zone})
    replset, hosts = shard["host"].split("/", 1)
    return pymongo.MongoClient(f"mongodb://{hosts}/?replicaSet={replset}", serverSelectionTimeoutMS=10000)


def test_sovren_shard_keys_and_zones_are_applied_and_then_show_no_drift(cluster_backend, sovren_declared):
    assert cluster_backend.mongos
    converge(cluster_backend, sovren_declared)
    assert diff_states(sovren_declared, cluster_backend.introspect()) == []
    name = cluster_backend.db.name
    [communications] = config(cluster_backend, "collections", {"_id": f"{name}.communications"})
    assert communications["key"] == {"userId": "hashed"}
    tags = config(cluster_backend, "tags", {"ns": f"{name}.scenario_simulations"})
    assert sorted((t["tag"], t["min"]["region"]) for t in tags) == [("eu", "eu"), ("us", "us")]
    assert not config(cluster_backend, "collections", {"_id": f"{name}.executives", "unsplittable": {"$ne": True}})


def test_a_region_s_documents_land_on_its_zone_s_shard(cluster_backend, sovren_declared, tmp_path):
    # zone ranges are set before shardCollection, so the initial chunks already sit on the zone shards
    write_declarations(
        tmp_path,
        {
            "payloads.toml": (
                "[[indexes]]\nkey = { region = 1, userId = 1 }\n"
                "[shard]\nkey = { region = 1, userId = 1 }\n"
                '[[zones]]\nzone = "eu"\n'
                'min = { region = "eu", userId = { "$minKey" = 1 } }\nmax = { region = "eu", userId = { "$maxKey" = 1 } }\n'
                '[[zones]]\nzone = "us"\n'
                'min = { region = "us", userId = { "$minKey" = 1 } }\nmax = { region = "us", userId = { "$maxKey" = 1 } }\n'
            )
        },
    )
    converge(cluster_backend, load_declared(tmp_path / "mongo"))
    payloads = cluster_backend.db["payloads"]
    payloads.insert_many([{"region": "eu", "userId": f"u{i}"} for i in range(5)])
    payloads.insert_many([{"region": "us", "userId": f"u{i}"} for i in range(3)])
    name = cluster_backend.db.name
    for zone, expected in (("eu", 5), ("us", 3)):
        with shard_client(cluster_backend, zone) as client:
            held = client[name]["payloads"]
            assert held.count_documents({"region": zone}) == expected
            assert held.count_documents({"region": {"$ne": zone}}) == 0


def test_a_zone_range_removed_by_hand_is_drift_and_migrate_puts_it_back(cluster_backend, sovren_declared):
    converge(cluster_backend, sovren_declared)
    namespace = f"{cluster_backend.db.name}.scenario_simulations"
    cluster_backend.client.admin.command(
        {
            "updateZoneKeyRange": namespace,
            "min": {"region": "us", "userId": MinKey()},
            "max": {"region": "us", "userId": MaxKey()},
            "zone": None,
        }
    )
    ops = diff_states(sovren_declared, cluster_backend.introspect())
    assert [(op.op_name, op.collection) for op in ops] == [("mongo_set_zones", "scenario_simulations")]
    for op in ops:
        cluster_backend.execute(op)
    assert diff_states(sovren_declared, cluster_backend.introspect()) == []


def test_a_zone_no_shard_serves_is_refused_before_the_collection_exists(cluster_backend, tmp_path):
    write_declarations(
        tmp_path,
        {
            "apac.toml": (
                "[[indexes]]\nkey = { region = 1 }\n[shard]\nkey = { region = 1 }\n"
                '[[zones]]\nzone = "apac"\nmin = { region = "apac" }\nmax = { region = "apad" }\n'
            )
        },
    )
    [spec] = load_declared(tmp_path / "mongo").collections.values()
    with pytest.raises(Refused, match="apac"):
        execute(CreateCollectionOp.of(spec), cluster_backend.db)
    assert "apac" not in cluster_backend.db.list_collection_names()


# -- pure: how the local cluster is started -------------------------------------------


def test_cluster_members_are_replica_set_members_of_their_role(tmp_path):
    argv = mongo_cluster.mongod_argv("mongod", tmp_path, 27019, role="configsvr", replset="sovren_cfg")
    assert argv[:4] == ["mongod", "--configsvr", "--replSet", "sovren_cfg"]
    assert argv[argv.index("--bind_ip") + 1] == "127.0.0.1" and "--fork" in argv
    router = mongo_cluster.mongos_argv("mongos", tmp_path, 27017, 27019)
    assert router[router.index("--configdb") + 1] == "sovren_cfg/127.0.0.1:27019"


def test_only_the_config_server_set_says_configsvr():
    config = mongo_cluster.initiate_command("sovren_cfg", 27019, configsvr=True)["replSetInitiate"]
    assert config == {"_id": "sovren_cfg", "members": [{"_id": 0, "host": "127.0.0.1:27019"}], "configsvr": True}
    shard = mongo_cluster.initiate_command("shard_eu", 27018, configsvr=False)["replSetInitiate"]
    assert "configsvr" not in shard


def test_each_zone_gets_a_shard_of_its_own_before_any_is_assigned():
    commands = mongo_cluster.cluster_commands({"eu": 27018, "us": 27020})
    assert commands == [
        {"addShard": "shard_eu/127.0.0.1:27018", "name": "shard_eu"},
        {"addShard": "shard_us/127.0.0.1:27020", "name": "shard_us"},
        {"addShardToZone": "shard_eu", "zone": "eu"},
        {"addShardToZone": "shard_us", "zone": "us"},
    ]


def test_without_binaries_the_cluster_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(mongo_cluster.ServerUnavailable, match="mongod and mongos binaries on PATH"):
        mongo_cluster.start_mongo_cluster(tmp_path / "c")
