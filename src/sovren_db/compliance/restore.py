"""``sovren-db verify-restore --manifest F [--check NAME ...]`` (Appendix D, H.5's ``verify_restore.py``).

Takes the same counts and checksums of the restored triad as ``snapshot``
did (of every entry, or only of the tables, collections and key families
named by ``--check``) and compares them with the manifest, then runs
``check``: drift that the source did not have at snapshot time is a
difference too (drift already recorded in the manifest is a note). Exit 1
names each table, collection or family that differs; 0 when none does.

Redis keys with a TTL may expire between the snapshot and the check: once
the restored server's clock passes the earliest expiry recorded for a
family, its keys without a TTL are still compared exactly, and its volatile
keys only by count (no more than at the snapshot).

MongoDB documents under a declared TTL likewise: ``snapshot`` sums them per
UTC day of expiry. Those expiring before the first midnight at least
:data:`TTL_MARGIN` (15 minutes: reading a collection takes a while, and the
servers' clocks may differ a little) after the later of the two reads (snapshot
and restore, each by its server's clock) may have been deleted by the TTL
monitor in between: they are compared by count, never more than the snapshot
had. Every other document of the collection is compared exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import commands
from ..commands import Outcome
from ..core.errors import ConfigError
from ..core.findings import Finding
from ..core.runtime import Runtime
from .snapshot import FORMAT, MASK, UNDECLARED, Digest, finding_key, take

if TYPE_CHECKING:
    from ..core.config import Settings

TTL_MARGIN = dt.timedelta(minutes=15)
WHAT = {"postgres": ("table", "rows"), "mongo": ("collection", "documents"), "redis": ("key family", "keys")}


def load_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}.") from None
    except ValueError:
        raise ConfigError(f"{path} is not a manifest written by 'sovren-db snapshot' (not JSON).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a manifest written by 'sovren-db snapshot' (format {FORMAT!r}).")
    return manifest


def selected(manifest: dict, names: tuple[str, ...]) -> dict[str, list[str]] | None:
    """store -> names to compare (None: everything); ConfigError naming an unknown name."""
    if not names:
        return None
    stores = manifest.get("stores", {})
    wanted: dict[str, list[str]] = {}
    for name in names:
        holders = [store for store, entries in stores.items() if name in entries]
        if not holders:
            raise ConfigError(f"--check {name}: no table, collection or key family of that name is in the manifest.")
        for store in holders:
            wanted.setdefault(store, []).append(name)
    return wanted


def verify_restore(settings: "Settings", manifest_path: Path, names: tuple[str, ...] = ()) -> Outcome:
    manifest = load_manifest(manifest_path)
    wanted = selected(manifest, names)
    runtime = Runtime(settings)
    try:
        restored = take(settings, runtime, wanted)
    finally:
        runtime.close()
    findings, notes, compared = [], list(runtime.notes), 0
    for store, expected in manifest["stores"].items():
        entries = {n: e for n, e in expected.items() if wanted is None or n in wanted.get(store, ())}
        if not entries:
            continue
        if store not in restored["stores"]:
            findings.append(Finding(store, f"{store} store", f"is in the manifest ({len(entries)} entries) but not "
                                    "configured here, so it cannot be compared", code="restore"))
            continue
        for name, entry in sorted(entries.items()):
            compared += 1
            found = restored["stores"][store].get(name, {"missing": True})
            findings += compare_entry(store, name, entry, found, notes)
    findings += _revision_findings(manifest, restored)
    drift, drift_notes = _drift(settings, manifest)
    findings += drift
    notes += drift_notes
    lines = [f"restore verified: {compared} tables, collections and key families match {manifest_path} "
             f"(snapshot of {manifest.get('taken_at')}), revisions match, no new drift"]
    return Outcome(exit_code=1 if findings else 0, lines=[] if findings else lines, findings=findings,
                   notes=list(dict.fromkeys(notes)),
                   data={"manifest": str(manifest_path), "compared": compared, "differences": len(findings)})


def compare_entry(store: str, name: str, expected: dict, found: dict, notes: list[str]) -> list[Finding]:
    kind, unit = WHAT[store]
    what = f"{kind} {name}" if name != UNDECLARED else "keys of no declared family"
    if expected.get("missing") and found.get("missing"):
        return []
    if found.get("missing"):
        return [Finding(store, what, f"is missing (the snapshot had {expected.get('count', 0):,} {unit})",
                        code="restore")]
    if expected.get("missing"):
        return [Finding(store, what, "exists but was missing at snapshot time", code="restore")]
    if store == "redis" and _expired_since(expected, found):
        return _volatile_compare(what, expected, found, notes)
    if store == "mongo" and "expiry" in expected and "expiry" in found:
        return _ttl_compare(what, expected, found, notes)
    return _exact(store, what, unit, expected, found)


def _exact(store: str, what: str, unit: str, expected: dict, found: dict) -> list[Finding]:
    if found["count"] != expected["count"]:
        return [Finding(store, what, f"has {found['count']:,} {unit}, the snapshot had {expected['count']:,}",
                        code="restore")]
    if found["checksum"] != expected["checksum"]:
        return [Finding(store, what, f"has the snapshot's {found['count']:,} {unit} but their checksum differs "
                        "(changed contents)", code="restore")]
    return []


def _expired_since(expected: dict, found: dict) -> bool:
    """Whether a volatile key of the family may have expired since the snapshot (restored server's clock)."""
    start = expected.get("expires_from")
    return start is not None and found.get("now", start) >= start


def _volatile_compare(what: str, expected: dict, found: dict, notes: list[str]) -> list[Finding]:
    durable, durable_found = (e["count"] - e["volatile"]["count"] for e in (expected, found))
    findings = []
    if durable_found != durable:
        findings.append(Finding("redis", what, f"has {durable_found:,} keys without a TTL, the snapshot had "
                                f"{durable:,}", code="restore"))
    if found["volatile"]["count"] > expected["volatile"]["count"]:
        findings.append(Finding("redis", what, f"has {found['volatile']['count']:,} keys with a TTL, more than the "
                                f"snapshot's {expected['volatile']['count']:,}", code="restore"))
    notes.append(f"{what}: keys with a TTL may have expired since the snapshot; compared by count only")
    return findings


def ttl_cutoff(expected: dict, found: dict) -> dt.datetime:
    """The first UTC midnight at least :data:`TTL_MARGIN` after the later of the two reads: a document
    expiring from then on cannot have been deleted by the TTL monitor before the restore was read."""
    later = max(dt.datetime.fromisoformat(e["expiry"]["now"]) for e in (expected, found)) + TTL_MARGIN
    return dt.datetime.combine(later.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def ttl_split(entry: dict, cutoff: dt.datetime) -> tuple[Digest, Digest]:
    """(documents that cannot have expired by ``cutoff``, documents that may have) of a collection
    entry with ``expiry``: the day sums before the cutoff's day, and the rest of the entry."""
    expiring = Digest()
    for day, sums in entry["expiry"]["days"].items():
        if dt.date.fromisoformat(day) < cutoff.date():
            expiring.count += sums["count"]
            expiring.total = (expiring.total + int(sums["checksum"], 16)) & MASK
    staying = Digest(entry["count"] - expiring.count, (int(entry["checksum"], 16) - expiring.total) & MASK)
    return staying, expiring


def _ttl_compare(what: str, expected: dict, found: dict, notes: list[str]) -> list[Finding]:
    """Documents that cannot have expired yet exactly; those that may have by count, no more than
    at the snapshot (and the same ones when none is gone)."""
    cutoff = ttl_cutoff(expected, found)
    (staying, expiring), (staying_found, expiring_found) = ttl_split(expected, cutoff), ttl_split(found, cutoff)
    findings = []
    if staying_found.count != staying.count:
        findings.append(Finding("mongo", what, f"has {staying_found.count:,} documents not due to expire (TTL) "
                                f"before {cutoff:%Y-%m-%d}, the snapshot had {staying.count:,}", code="restore"))
    elif staying_found.total != staying.total:
        findings.append(Finding("mongo", what, f"has the snapshot's {staying.count:,} documents not due to expire "
                                "(TTL) but their checksum differs (changed contents)", code="restore"))
    if expiring_found.count > expiring.count:
        findings.append(Finding("mongo", what, f"has {expiring_found.count:,} documents expiring (TTL) before "
                                f"{cutoff:%Y-%m-%d}, more than the snapshot's {expiring.count:,}", code="restore"))
    elif expiring_found.count == expiring.count and expiring_found.total != expiring.total:
        findings.append(Finding("mongo", what, f"has the snapshot's {expiring.count:,} documents expiring (TTL) "
                                "but their checksum differs (changed contents)", code="restore"))
    elif expiring_found.count < expiring.count:
        notes.append(f"{what}: {expiring.count - expiring_found.count:,} of the snapshot's {expiring.count:,} "
                     f"documents expiring (TTL) before {cutoff:%Y-%m-%d} are gone, as the TTL monitor may have "
                     "deleted them; those were compared by count only")
    return findings


def _revision_findings(manifest: dict, restored: dict) -> list[Finding]:
    findings = []
    for store, revision in manifest.get("revision", {}).items():
        if store in restored["revision"] and restored["revision"][store] != revision:
            findings.append(Finding(store, f"{store} revision", f"is {restored['revision'][store] or 'base'}, "
                                    f"the snapshot was at {revision or 'base'}", code="restore"))
    return findings


def _drift(settings: "Settings", manifest: dict) -> tuple[list[Finding], list[str]]:
    """Drift of the restored triad that the source did not have when the snapshot was taken."""
    outcome = commands.check(settings)
    before = set(manifest.get("drift", []))
    new = [f for f in outcome.findings if finding_key(f) not in before]
    kept = len(outcome.findings) - len(new)
    notes = list(outcome.notes)
    if kept:
        notes.append(f"{kept} drift finding(s) were already there at snapshot time (see 'sovren-db check')")
    return new, notes
