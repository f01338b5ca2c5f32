"""Sovren's MongoDB collections as documents, one block of users at a time.

Documents reference the block's Postgres rows (``userId`` = ``users.user_id``,
``operationId`` = ``operations.operation_id``) and carry BSON types
(ObjectId, dates, ints, doubles) as the validators expect them. Each ``_id``
is deterministic: the document's creation second, then eight bytes of its
own draw, so a second load of the same seed inserts nothing new.
"""

from __future__ import annotations

from typing import Callable

from bson import ObjectId

from .entities import Block

Documents = list[dict]


def object_ids(block: Block, name: str, seconds: list[int]) -> list[ObjectId]:
    raw, unix = block.draws.bytes(f"{name}._id", 8 * len(seconds)), block.plan.clock.unix
    return [ObjectId(unix(s).to_bytes(4, "big") + raw[8 * i:8 * i + 8]) for i, s in enumerate(seconds)]


def executives(block: Block) -> Documents:
    execs, users, when = block.executives, block.users, block.plan.clock.datetime
    ids = object_ids(block, "executives", execs.created)
    return [{"_id": ids[i], "executiveId": execs.id[i], "userId": users.id[execs.parent[i]], "role": execs.role[i],
             "name": execs.display_name[i], "skills": execs.skills[i], "voiceProfile": execs.voice[i],
             "active": execs.active[i], "createdAt": when(execs.created[i]), "updatedAt": when(execs.updated[i])}
            for i in range(execs.size)]


def communications(block: Block) -> Documents:
    sent, users, when = block.communications, block.users, block.plan.clock.datetime
    ids = object_ids(block, "communications", sent.at)
    return [{"_id": ids[i], "messageId": sent.id[i], "userId": users.id[sent.parent[i]], "recipient": sent.recipient[i],
             "message": sent.text[i], "status": sent.status[i], "timestamp": when(sent.at[i])}
            for i in range(sent.size)]


def owners(block: Block, children) -> list[tuple[int, int]]:
    """(operation, user) of each child of an operation."""
    return [(op, block.operations.parent[op]) for op in children.parent]


def scenario_simulations(block: Block) -> Documents:
    sims, ops, users, when = block.simulations, block.operations, block.users, block.plan.clock.datetime
    ids = object_ids(block, "scenario_simulations", sims.created)
    docs = []
    for i, (op, user) in enumerate(owners(block, sims)):
        done = sims.status[i] == "completed"
        docs.append({
            "_id": ids[i], "simulationId": sims.id[i], "operationId": ops.id[op], "userId": users.id[user],
            "region": users.region[user], "executiveIds": sims.executives[i], "scenario": sims.scenario[i],
            "parameters": {"kind": ops.kind[op], "horizonDays": ops.horizon[op], "iterations": sims.iterations[i]},
            "result": {"recommendation": ops.recommendation[op]} if done else None,
            "confidence": ops.confidence_cents[op] / 100 if done else None,
            "status": sims.status[i], "createdAt": when(sims.created[i]),
            "completedAt": when(sims.completed[i]) if sims.completed[i] is not None else None,
        })
    return docs


def analytics_payloads(block: Block) -> Documents:
    data, ops, users, when = block.analytics, block.operations, block.users, block.plan.clock.datetime
    ids = object_ids(block, "analytics_payloads", data.created)
    docs = []
    for i, (op, user) in enumerate(owners(block, data)):
        points = data.points[i]
        docs.append({"_id": ids[i], "operationId": ops.id[op], "userId": users.id[user], "region": users.region[user],
                     "kind": data.kind[i], "payload": {"kind": data.kind[i], "points": points},
                     "sizeBytes": 40 + 4 * len(points), "createdAt": when(data.created[i])})
    return docs


def documents(name: str, spec, block: Block) -> Documents:
    """The documents of collection ``name`` in ``block``: Sovren's generator for it, else from its
    ``$jsonSchema`` as the profile's ``[mongo] name = { per = ..., mean = ... }`` says (:mod:`.documents`)."""
    from ..mongo.validate import validator_schema
    from .documents import Documents as FromSchema, fit_to_schema

    schema = validator_schema(spec.validator) or {}
    if name in COLLECTIONS:
        return fit_to_schema(COLLECTIONS[name](block), schema, block, name)
    return FromSchema(name, schema, block.plan.profile.documents[name], block).build()


# Collection -> documents of a block. The profile's [mongo] entries switch them on.
COLLECTIONS: dict[str, Callable[[Block], Documents]] = {
    "executives": executives,
    "communications": communications,
    "scenario_simulations": scenario_simulations,
    "analytics_payloads": analytics_payloads,
}
