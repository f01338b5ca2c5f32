"""Family moves on a live keyspace (real Redis): writers and readers during the move, no stranded key."""

from __future__ import annotations

import random
import threading

import pytest
import redis

from sovren_db.core.errors import MigrationFailed
from sovren_db.redis import moves, ops, toimpl
from sovren_db.redis.checks import check_findings
from sovren_db.redis.follow import FamilyFollower
from sovren_db.redis.state import KeyFamily, TtlRule

from redis_helpers import after_each_batch, connect, write_project

pytestmark = pytest.mark.redis

OLD = KeyFamily("sess", "sess:{user_id}", "string", TtlRule("optional")).to_json()
NEW = KeyFamily("session", "session:v2:{user_id}", "string", TtlRule("optional")).to_json()


def seed(client, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"sess:{i}", f"v0-{i}")
    pipe.execute()


def old_keys(client) -> list[bytes]:
    return list(client.scan_iter("sess:*", count=1000))


def new_of(key: bytes) -> bytes:
    return b"session:v2:" + key.split(b":", 1)[1]


def a_moved_key(client, n: int) -> bytes:
    """The old name of one key already moved (its SCAN bucket visited: behind the cursor), the n-th in turn."""
    moved = sorted(client.scan_iter("session:v2:*", count=1000))
    return b"sess:" + moved[n % len(moved)].removeprefix(b"session:v2:")


def test_keys_written_again_behind_the_cursor_are_moved_with_their_last_value(backend, client, monkeypatch):
    seed(client, 400)
    rewritten = {}

    def rewrite_after_each_batch(count):
        if count.passes == 1 and count.moved:  # a client writes a key moved again under its old name, and a fresh one
            writes = {a_moved_key(client, len(rewritten)): b"again-%d" % len(rewritten),
                      b"sess:late-%d" % len(rewritten): b"late"}
            client.mset(writes)
            rewritten.update(writes)

    after_each_batch(monkeypatch, rewrite_after_each_batch)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, batch=50))
    assert old_keys(client) == []
    assert len(rewritten) >= 8
    assert {key: client.get(new_of(key)) for key in rewritten} == rewritten
    assert set(backend.registry()) == {"family:session"}  # switched, the move marker gone


def test_a_writer_that_never_stops_is_refused_naming_the_count(backend, client, monkeypatch):
    seed(client, 100)
    after_each_batch(monkeypatch, lambda count: count.moved and client.set(a_moved_key(client, count.moved), "again"))
    monkeypatch.setattr(moves, "SWEEPS", 2)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    op = ops.RenameKeyFamilyOp(OLD, NEW, batch=30)
    refusal = r"\d+ keys? still follows? the old pattern after 2 sweeps \(a client keeps writing them\)"
    with pytest.raises(MigrationFailed, match=refusal):
        backend.execute(op)
    registry = backend.registry()
    assert "family:sess" in registry and "family:session" not in registry  # still the old family
    assert "move:session" in registry
    monkeypatch.undo()
    backend.execute(op)  # the writer stopped: the rerun finishes, the last value kept
    assert old_keys(client) == [] and client.dbsize() == 101


class Worker(threading.Thread):
    """A thread that keeps what its ``work`` raised: pytest only warns of an exception in a thread (and the
    test passed without the thread's part), so ``joined`` raises it in the test."""

    def __init__(self):
        super().__init__(daemon=True)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # noqa: BLE001 - raised again by joined, in the test
            self.error = error

    def work(self) -> None:
        raise NotImplementedError


def joined(workers: list[Worker], timeout: float = 60) -> None:
    """Waits for each worker; the first exception one raised fails the test, with the thread's traceback."""
    for worker in workers:
        worker.join(timeout)
        assert not worker.is_alive(), f"{worker.name} still runs after {timeout} s"
    for worker in workers:
        if worker.error is not None:
            raise worker.error


class Writer(Worker):
    """Sets old-pattern keys (rewrites and fresh ones) at about ``rate`` a second until told to stop."""

    def __init__(self, client, count: int, rate: float, stop: threading.Event):
        super().__init__()
        self.client, self.count, self.pause, self.stop = client, count, 1 / rate, stop
        self.last: dict[bytes, bytes] = {}
        self.wrote_300 = threading.Event()

    def work(self) -> None:
        n = 0
        while not self.stop.wait(self.pause):
            key = f"sess:{random.randrange(self.count * 11 // 10)}".encode()
            value = b"w-%d" % n
            self.client.set(key, value)
            self.last[key] = value
            n += 1
            if n == 300:
                self.wrote_300.set()


def test_a_writer_during_a_move_leaves_no_key_under_the_old_pattern(backend, client, redis_url, monkeypatch):
    writer_through_a_move(backend, client, redis.Redis.from_url(redis_url), monkeypatch)


def test_a_writer_during_a_move_on_a_cluster_leaves_no_key_under_the_old_pattern(cluster_backend, cluster_client,
                                                                                  cluster_url, monkeypatch):
    writer_through_a_move(cluster_backend, cluster_client, cluster_of(cluster_url), monkeypatch)


def cluster_of(url: str):
    from redis.cluster import RedisCluster

    return RedisCluster.from_url(url.rsplit("/", 1)[0])


def writer_through_a_move(backend, client, writer_client, monkeypatch) -> None:
    """Keys set under the old pattern (rewrites and fresh ones) while the first pass runs: none stays
    behind, and each new key holds the writer's last value."""
    seed(client, 20_000)
    stop = threading.Event()
    writer = Writer(writer_client, 20_000, rate=1000, stop=stop)

    def stop_writer_when_sweeping(count):
        if count.passes > 1 and not stop.is_set():
            writer.wrote_300.wait(60)   # on a loaded machine the first pass can end before 300 writes
            stop.set()

    after_each_batch(monkeypatch, stop_writer_when_sweeping)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    writer.start()
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, batch=200, rate=10_000))
    stop.set()
    joined([writer])
    assert len(writer.last) > 300
    assert old_keys(client) == []
    assert {key: client.get(new_of(key)) for key in writer.last} == writer.last


class Reader(Worker):
    """Reads keys that always exist through the registry (a service that knows the family as ``name``) and
    counts misses."""

    def __init__(self, client, name: str, count: int, stop: threading.Event):
        super().__init__()
        self.follower = FamilyFollower(client, name, max_age=0.05)
        self.count, self.stop, self.reads, self.misses = count, stop, 0, []
        self.read_100 = threading.Event()

    def work(self) -> None:
        while not self.stop.is_set():
            user = str(random.randrange(self.count))
            if self.follower.read(user_id=user) is None:
                self.misses.append(user)
            self.reads += 1
            if self.reads == 100:
                self.read_100.set()


def test_registry_followers_see_no_miss_through_an_overlap_move(backend, client, redis_url):
    readers_through_an_overlap_move(backend, client, lambda: redis.Redis.from_url(redis_url))


def test_registry_followers_see_no_miss_through_an_overlap_move_on_a_cluster(cluster_backend, cluster_client,
                                                                              cluster_url):
    """Across slots a key is copied (DUMP, RESTORE) before its old name goes: still no miss."""
    readers_through_an_overlap_move(cluster_backend, cluster_client, lambda: cluster_of(cluster_url))


def readers_through_an_overlap_move(backend, client, connect_reader) -> None:
    """Services of the old name read through the move and the overlap; as deployment would, they make way
    for services of the new name before the contract, which retires the old name (a follower of it then
    raises LookupError), and those read through the contract's sweep."""
    seed(client, 20_000)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    stop = threading.Event()
    readers = [Reader(connect_reader(), "sess", 20_000, stop) for _ in range(2)]
    for reader in readers:
        reader.start()
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, overlap=True, batch=200, rate=10_000))
    registry = backend.registry()
    assert registry["family:session"]["fallback"] == "sess:{user_id}" and "family:sess" in registry
    assert "move:session" not in registry and old_keys(client) == []
    follower = FamilyFollower(client, "sess")
    assert follower.key(user_id="7") == b"session:v2:7"  # the old name's service writes the new pattern
    client.set("sess:late", "written by a service that ignores the registry")
    stop.set()
    joined(readers)
    assert sum(r.reads for r in readers) > 1000
    assert [r.misses for r in readers] == [[], []]

    stop = threading.Event()
    successors = [Reader(connect_reader(), "session", 20_000, stop) for _ in range(2)]
    for reader in successors:
        reader.start()
    assert all(reader.read_100.wait(60) for reader in successors)
    backend.execute(ops.ContractKeyFamilyOp(OLD, NEW))
    stop.set()
    joined(successors)
    assert [r.misses for r in successors] == [[], []]
    with pytest.raises(LookupError, match="family 'sess' is not published"):
        FamilyFollower(client, "sess").read(user_id="7")
    assert set(backend.registry()) == {"family:session"} and "fallback" not in backend.registry()["family:session"]
    assert old_keys(client) == [] and client.get("session:v2:late") is not None


def test_during_an_overlap_the_new_key_wins_over_an_old_write(backend, client):
    client.set("sess:1", "old")
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, overlap=True))
    client.set("session:v2:1", "new")   # a registry-following writer
    client.set("sess:1", "legacy")      # a writer that ignores the registry
    backend.execute(ops.ContractKeyFamilyOp(OLD, NEW))
    assert old_keys(client) == [] and client.get("session:v2:1") == b"new"


MOVED = {"app.toml": """
    [families.session]
    pattern = "session:v2:{user_id}"
    renamed_from = "sess:{user_id}"
    type = "string"
"""}


def test_check_data_reports_stranded_keys_as_drift(tmp_path, redis_url, client):
    project = write_project(tmp_path / "moved", MOVED)
    backend = connect(project, redis_url)
    client.set("session:v2:1", "moved")
    assert [f for f in check_findings(backend.settings, backend, data=True) if f.code == "redis-stranded-keys"] == []
    client.set("sess:1", "written again after the move")
    client.set("sess:2", "never moved")
    (stranded,) = [f for f in check_findings(backend.settings, backend, data=True) if f.code == "redis-stranded-keys"]
    assert stranded.severity == "error" and stranded.file == "redis/app.toml"
    assert stranded.message.startswith("2 keys still follow the old pattern sess:{user_id} (stranded")
    # during an overlap, old keys are read through the fallback: not drift yet
    (project / "redis" / "app.toml").write_text(MOVED["app.toml"].replace('type =', 'overlap = true\n    type ='))
    assert [f for f in check_findings(backend.settings, backend, data=True) if f.code == "redis-stranded-keys"] == []
    backend.close()


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_command_pace_wins_over_the_revision_and_the_rate_is_held(backend, client, monkeypatch):
    step = ops.RenameKeyFamilyOp(OLD, NEW, batch=50, rate=100)
    assert toimpl.pace(step, backend) == moves.Pace(50, 100)
    backend.pace = {"rate": 1000}  # migrate --redis-rate 1000
    assert toimpl.pace(step, backend) == moves.Pace(50, 1000)
    seed(client, 400)
    clock = FakeClock()
    monkeypatch.setattr(moves, "time", clock)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    backend.execute(step)
    assert old_keys(client) == []
    # 400 keys at 1000 a second: the moves wait 0.4 s in all (the clock only moves when they sleep)
    assert sum(clock.slept) == pytest.approx(0.4)


@pytest.mark.parametrize("arguments, message", [
    ({"batch": 0}, "batch must be a whole number of keys of 1 or more, not 0"),
    ({"rate": -5}, "rate must be a number of keys per second above 0, not -5"),
])
def test_a_bad_pace_is_one_sentence_naming_the_revision(backend, arguments, message):
    from sovren_db.core.runtime import run_step

    sentence = rf"Revision abc123, redis step 0 \(rename key family sess .*\) failed: {message}"
    with pytest.raises(MigrationFailed, match=sentence):
        run_step(backend, "abc123:up:0", ops.RenameKeyFamilyOp(OLD, NEW, **arguments), "abc123")


def test_backfill_without_a_maximum_sets_only_missing_ttls(backend, client):
    family = KeyFamily("session", "session:{u}", "string", TtlRule("required", default=600)).to_json()
    client.set("session:none", 1)
    client.set("session:long", 1, ex=86400)
    backend.execute(ops.BackfillTtlOp(family, 600, batch=1))
    assert 590_000 < client.pttl("session:none") <= 600_000
    assert client.pttl("session:long") > 86_000_000


def test_a_key_written_again_while_copied_across_slots_keeps_its_write(cluster_backend, cluster_client, monkeypatch):
    for i in range(50):
        cluster_client.set(f"sess:{i}", f"v0-{i}")
    real, written = moves._restore, {}

    def write_while_copying(backend, copies, replace):
        src = copies[0][0]
        written[src] = b"written during the copy"
        cluster_client.set(src, written[src])  # after its DUMP, before its DEL
        return real(backend, copies, replace)

    monkeypatch.setattr(moves, "_restore", write_while_copying)
    cluster_backend.execute(ops.DeclareKeyFamilyOp(OLD))
    cluster_backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, batch=10))
    assert not [k for k in cluster_client.scan_iter("sess:*")]
    assert written and {k: cluster_client.get(new_of(k)) for k in written} == written
