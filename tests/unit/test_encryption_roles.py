"""Seeding and rotation agree on encrypted columns and their SQL; one BYPASSRLS role lookup and SET ROLE."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, Text

from sovren_db.compliance import ledger, pii, rotate
from sovren_db.core.errors import ConfigError, DeclarationError, Refused
from sovren_db.postgres import roles
from sovren_db.postgres.state import Encrypted, Role, Schema
from sovren_db.seeds import postgres_load
from sovren_db.seeds.targets import Targets

WHERE = Path("postgres")
KEY = "unit-key-never-inlined"
OPTIONS = "cipher-algo=aes128, compress-algo=1"


def schema_with(*marks: Encrypted, role: Role | None = Role("sovren_migrator", bypass_rls=True)) -> Schema:
    schema = Schema(metadata=MetaData())
    Table("vault", schema.metadata, Column("vault_id", BigInteger, primary_key=True), Column("note", Text),
          Column("token", String(200)), Column("blob", LargeBinary), Column("secret_bytes", Text),
          Column("count", Integer))
    Table("other", schema.metadata, Column("other_id", BigInteger, primary_key=True), Column("raw", LargeBinary))
    schema.add(*marks, *([role] if role else []))
    return schema


MARKS = (Encrypted("vault", "note"), Encrypted("vault", "token", options=OPTIONS), Encrypted("vault", "blob"),
         Encrypted("vault", "secret_bytes", data="bytea"), Encrypted("other", "raw", data="bytea"))


def seeding_side(schema: Schema, tables: tuple[str, ...] = ("vault", "other")) -> dict[str, postgres_load.Encryption]:
    """What the seeder encrypts: Targets' encryption of the loaded ``tables``."""
    targets = Targets(tables=[SimpleNamespace(table=t) for t in tables], graph=None, role="r")
    targets._add_encryption(WHERE, schema, SimpleNamespace(encryption_key=KEY, path=Path("seeds/ci.toml")))
    return {e.mark.key: e for entries in targets.encrypted.values() for e in entries}


def rotation_side(schema: Schema) -> dict[str, bool]:
    """What rotate-key re-encrypts (column -> armored), through the names rotate.py uses."""
    return {m.key: rotate.is_armored(schema, m) for m in rotate.declared_encrypted(WHERE, schema)}


def test_seeding_and_rotation_agree_on_encrypted_and_armored_columns():
    schema = schema_with(*MARKS)
    seeding = seeding_side(schema)
    assert {key: e.armored for key, e in seeding.items()} == rotation_side(schema) == {
        "vault.note": True, "vault.token": True, "vault.blob": False, "vault.secret_bytes": True, "other.raw": False}
    assert [m.key for m in pii.declared_encrypted(WHERE, schema)] == list(rotation_side(schema))
    assert all(e.key == KEY and KEY not in repr(e) for e in seeding.values())
    assert list(seeding_side(schema, ("vault",))) == ["vault.note", "vault.token", "vault.blob", "vault.secret_bytes"]


@pytest.mark.parametrize("mark, says", [
    (Encrypted("vault", "count"), "must be text (armored ciphertext) or bytea"),
    (Encrypted("vault", "missing"), "'missing' is not a column of vault"),
    (Encrypted("nowhere", "x"), "table 'nowhere' is not declared"),
])
def test_both_paths_refuse_the_same_bad_declaration(mark, says):
    schema = schema_with(Encrypted("vault", "note"), mark)
    for path in (seeding_side, rotation_side, lambda s: pii.declared_encrypted(WHERE, s)):
        with pytest.raises(DeclarationError, match=re.escape(says)):
            path(schema)


def normalised(composable: sql.Composable) -> str:
    """The SQL text with named placeholders (the seeder's) written as positional ones (rotation's)."""
    return re.sub(r"%\(\w+\)s", "%s", composable.as_string(None))


@pytest.mark.parametrize("mark", MARKS, ids=lambda m: m.key)
def test_seeding_and_rotation_build_the_same_encryption_sql_binding_key_and_options(mark):
    schema = schema_with(*MARKS)
    seeding = seeding_side(schema)[mark.key]
    armored = rotate.is_armored(schema, mark)
    rotating = rotate.encrypt_expression(mark, armored, sql.Identifier(mark.column))
    assert normalised(seeding.expression()) == normalised(rotating)
    text = rotating.as_string(None)
    assert text.count("%s") == 2 and mark.options not in text and "cipher-algo" not in text
    assert text.startswith("armor(") == armored
    assert ("_bytea(" in text) == (mark.data == "bytea")
    seeded = seeding.expression().as_string(None)
    assert KEY not in seeded and mark.options not in seeded
    assert seeding.parameters() == {f"{mark.column}_key": KEY, f"{mark.column}_options": mark.options}


def test_the_decrypt_function_reads_what_encryption_writes():
    name, ddl = rotate.decrypt_function(Encrypted("vault", "note"), armored=True)
    text = ddl.as_string(None)
    assert name.as_string(None) == 'pg_temp."sovren_decrypt_armored_text"'
    assert "(p_value text, p_key text) RETURNS text" in text and "pgp_sym_decrypt(dearmor(p_value), p_key)" in text
    raw = rotate.decrypt_function(Encrypted("other", "raw", data="bytea"), armored=False)[1].as_string(None)
    assert "(p_value bytea, p_key text) RETURNS bytea" in raw and "pgp_sym_decrypt_bytea(p_value, p_key)" in raw


# -- the BYPASSRLS role ------------------------------------------------------------

def test_one_bypass_role_lookup_in_each_callers_words():
    schema = schema_with()
    assert roles.bypass_role(schema) == pii.bypass_role(schema) == "sovren_migrator"
    assert pii.bypass_role is roles.bypass_role
    bare = schema_with(role=Role("sovren_app"))
    with pytest.raises(ConfigError, match="with SELECT, UPDATE and DELETE grants so that erasure respects"):
        pii.bypass_role(bare)
    with pytest.raises(ConfigError, match="with INSERT and DELETE grants so that seeding respects"):
        roles.bypass_role(bare, grants="INSERT and DELETE", purpose="seeding")


class RefusingConnection:
    """A connection whose login may not SET ROLE: records what was sent and whether it rolled back."""

    def __init__(self, refuse: bool = True):
        self.refuse, self.sent, self.rolled_back = refuse, [], False
        self.info = SimpleNamespace(user="alice")

    def execute(self, query, params=None):
        self.sent.append(query.as_string(None) if isinstance(query, sql.Composable) else query)
        if self.refuse:
            raise psycopg.errors.InsufficientPrivilege("permission denied to set role")

    def rollback(self):
        self.rolled_back = True


def test_act_as_sets_the_role_for_the_transaction_only():
    conn = RefusingConnection(refuse=False)
    roles.act_as(conn, "sovren_migrator", "Erasure")
    assert conn.sent == ['SET LOCAL ROLE "sovren_migrator"'] and not conn.rolled_back


@pytest.mark.parametrize("call, says", [
    (lambda c: ledger.act_as(c, "sovren_migrator", "Erasure"),
     "Erasure refused: Postgres user 'alice' may not act as 'sovren_migrator' (GRANT sovren_migrator TO alice)."),
    (lambda c: ledger.act_as(c, "sovren_migrator", "Key rotation"),
     "Key rotation refused: Postgres user 'alice' may not act as 'sovren_migrator' "
     "(GRANT sovren_migrator TO alice)."),
    (lambda c: postgres_load.act_as(c, "sovren_migrator"),
     "Seeding refused: Postgres user 'alice' may not act as 'sovren_migrator' "
     "(GRANT sovren_migrator TO alice, or seed as a user who may)."),
])
def test_a_login_that_may_not_act_as_the_role_is_refused_after_a_rollback(call, says):
    conn = RefusingConnection()
    with pytest.raises(Refused) as refused:
        call(conn)
    assert str(refused.value) == says and conn.rolled_back
    assert ledger.act_as is roles.act_as and rotate.act_as is roles.act_as
