"""Columns declared ``Encrypted`` and the pgcrypto SQL that writes and reads them.

Seeding (which encrypts generated values) and ``rotate-key`` (which
re-encrypts stored ones) both go through here, so they agree on which columns
are encrypted, which hold ASCII-armored ciphertext, and how the SQL is built.

Keys *and* cipher options only ever reach the server as bind parameters: the
audit trigger records the statement text (``current_query()``) in the
immutable ``audit_log``, so nothing about the encryption may be inlined.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import LargeBinary, String

from ..core.errors import DeclarationError
from .state import Encrypted, Schema


def declared_encrypted(where: object, schema: Schema) -> list[Encrypted]:
    """The columns declared Encrypted, checked: each a text (armored) or bytea column of a declared table."""
    marks = schema.of(Encrypted)
    for mark in marks:
        what = f"Encrypted({mark.table!r}, {mark.column!r})"
        table = schema.metadata.tables.get(mark.table)
        if table is None:
            raise DeclarationError(where, what, f"table {mark.table!r} is not declared")
        if mark.column not in table.c:
            raise DeclarationError(where, what, f"column {mark.column!r} is not a column of {mark.table}")
        if not isinstance(table.c[mark.column].type, (String, LargeBinary)):
            raise DeclarationError(where, what, "an encrypted column must be text (armored ciphertext) or bytea")
    return marks


def is_armored(schema: Schema, mark: Encrypted) -> bool:
    """Text columns hold ASCII-armored ciphertext; bytea columns hold it raw (see :func:`declared_encrypted`)."""
    return isinstance(schema.metadata.tables[mark.table].c[mark.column].type, String)


def encrypt_sql(mark: Encrypted, armored: bool, plain: sql.Composable, key: sql.Composable,
                options: sql.Composable) -> sql.Composable:
    """``armor(pgp_sym_encrypt(plain, key, options))``, or its bytea / unarmored forms.

    ``key`` and ``options`` are placeholders (``sql.Placeholder()`` or named ones) whose values the
    caller binds: the key and ``mark.options``."""
    encrypt = sql.SQL("pgp_sym_encrypt" if mark.data == "text" else "pgp_sym_encrypt_bytea")
    expression = sql.SQL("{}({}, {}, {})").format(encrypt, plain, key, options)
    return sql.SQL("armor({})").format(expression) if armored else expression


def decrypt_sql(mark: Encrypted, armored: bool, value: sql.Composable, key: sql.Composable) -> sql.Composable:
    """``pgp_sym_decrypt(dearmor(value), key)``, or its bytea / unarmored forms (``key`` bound or a variable)."""
    decrypt = sql.SQL("pgp_sym_decrypt" if mark.data == "text" else "pgp_sym_decrypt_bytea")
    stored = sql.SQL("dearmor({})").format(value) if armored else value
    return sql.SQL("{}({}, {})").format(decrypt, stored, key)
