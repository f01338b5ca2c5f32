"""Plain, comparable descriptions of Postgres objects (declared or live)."""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from sqlalchemy import MetaData

# Table privileges in the order GRANT and REVOKE statements list them.
PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def normalise_sql(text: str | None) -> str:
    """Whitespace-insensitive form of a SQL fragment, for comparing bodies."""
    return re.sub(r"\s+", " ", (text or "").strip())


def fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


@lru_cache(maxsize=16384)  # check asks again for every declared policy on each run (1,500 on the bench schema)
def _expressions_fingerprint(using: str | None, check: str | None) -> str:
    return fingerprint(normalise_sql(using), normalise_sql(check))


@dataclass(frozen=True)
class Extension:
    name: str

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Role:
    """A cluster role. NOLOGIN group roles by default: deployments grant them to login users."""

    name: str
    login: bool = False
    bypass_rls: bool = False

    @property
    def key(self) -> str:
        return self.name


VOLATILITIES = ("VOLATILE", "STABLE", "IMMUTABLE")


@dataclass(frozen=True)
class Function:
    name: str
    args: str              # identity arguments as Postgres prints them: "" or "p_table text, p_id uuid"
    returns: str           # "trigger", "void", "integer"...
    body: str              # the function body, between the dollar quotes
    language: str = "plpgsql"
    security_definer: bool = False
    search_path: str | None = None
    volatility: str = "VOLATILE"   # IMMUTABLE for CHECK constraints, STABLE for policies
    # Roles granted EXECUTE besides the owner; None keeps Postgres's default (PUBLIC may call it).
    callers: tuple[str, ...] | None = None
    # A C function (its AS clause: 'library', 'symbol') that may stand in for this one where the server
    # loads its library (the audit capture, postgres/audit_capture.py): `check` accepts either.
    native: str | None = None

    def __post_init__(self) -> None:
        if self.volatility not in VOLATILITIES:
            raise ValueError(f"Function {self.name}: volatility must be one of {', '.join(VOLATILITIES)}")

    @property
    def key(self) -> str:
        return f"{self.name}({self.args})"

    def privileges(self) -> list[str]:
        """REVOKE from PUBLIC and GRANT to ``callers``, when they are declared."""
        if self.callers is None:
            return []
        return [f"REVOKE ALL ON FUNCTION {self.key} FROM PUBLIC",
                *[f"GRANT EXECUTE ON FUNCTION {self.key} TO {role}" for role in self.callers]]

    def definition(self) -> str:
        options = [f"LANGUAGE {self.language}", self.volatility]
        if self.security_definer:
            options.append("SECURITY DEFINER")
        if self.search_path:
            options.append(f"SET search_path = {self.search_path}")
        body = self.body if self.language.lower() == "c" else f"$sovren$\n{self.body.strip()}\n$sovren$"
        return f"CREATE OR REPLACE FUNCTION {self.name}({self.args}) RETURNS {self.returns} {' '.join(options)} AS {body}"

    def signature_matches(self, other: "Function") -> bool:
        if self.native and other.language.lower() == "c":
            return (other.body == self.native and self.returns.lower() == other.returns.lower()
                    and self._callers() == other._callers())
        return (normalise_sql(self.body) == normalise_sql(other.body)
                and self.returns.lower() == other.returns.lower()
                and self.language == other.language
                and self.security_definer == other.security_definer
                and self.volatility == other.volatility
                and (self.search_path or "") == (other.search_path or "")
                and self._callers() == other._callers())

    def _callers(self) -> tuple[str, ...] | None:
        return None if self.callers is None else tuple(sorted(self.callers))


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    function: str                      # function name, called with no arguments
    timing: str = "AFTER"              # BEFORE | AFTER
    events: tuple[str, ...] = ("INSERT", "UPDATE", "DELETE")
    level: str = "ROW"                 # ROW | STATEMENT
    enabled: bool = True
    referencing: str = ""              # transition tables: "OLD TABLE AS old_rows NEW TABLE AS new_rows"
    deferred: bool = False             # a constraint trigger, DEFERRABLE INITIALLY DEFERRED (runs at commit)

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    def definition(self) -> str:
        kind = "CONSTRAINT TRIGGER" if self.deferred else "TRIGGER"
        when = " DEFERRABLE INITIALLY DEFERRED" if self.deferred else ""
        referencing = f" REFERENCING {self.referencing}" if self.referencing else ""
        return (f"CREATE {kind} {self.name} {self.timing} {' OR '.join(self.events)} ON {self.table}{when}"
                f"{referencing} FOR EACH {self.level} EXECUTE FUNCTION {self.function}()")

    def shape(self) -> tuple:
        return (self.function, self.timing, tuple(sorted(self.events)), self.level, self.referencing, self.deferred)


@dataclass(frozen=True)
class Policy:
    name: str
    table: str
    using: str | None = None
    check: str | None = None
    command: str = "ALL"
    roles: tuple[str, ...] = ("public",)
    permissive: bool = True

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def declared_fingerprint(self) -> str:
        return _expressions_fingerprint(self.using, self.check)

    def definition(self) -> str:
        sql = [f"CREATE POLICY {self.name} ON {self.table}",
               f"AS {'PERMISSIVE' if self.permissive else 'RESTRICTIVE'}",
               f"FOR {self.command}", f"TO {', '.join(self.roles)}"]
        if self.using:
            sql.append(f"USING ({self.using})")
        if self.check:
            sql.append(f"WITH CHECK ({self.check})")
        return " ".join(sql)

    def shape(self) -> tuple:
        return (self.command, tuple(sorted(self.roles)), self.permissive)


@dataclass(frozen=True)
class RowSecurity:
    table: str
    enabled: bool = True
    forced: bool = True

    @property
    def key(self) -> str:
        return self.table


@dataclass(frozen=True)
class Grant:
    role: str
    table: str
    privileges: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.table}:{self.role}"


@dataclass(frozen=True)
class PartitionRule:
    """Monthly range partitions of ``table`` on ``column``: this month and ``months_ahead`` more, plus a default."""

    table: str
    column: str
    months_ahead: int = 3
    default: bool = True

    @property
    def key(self) -> str:
        return self.table

    def expected(self, today: date) -> list[tuple[str, date, date]]:
        """(name, from, to) of every partition the rule wants present on ``today``."""
        wanted = []
        year, month = today.year, today.month
        for _ in range(self.months_ahead + 1):
            start = date(year, month, 1)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            wanted.append((partition_name(self.table, start), start, date(year, month, 1)))
        return wanted

    def wanted_names(self, today: date) -> list[str]:
        """Names of every partition the rule wants present on ``today``: the months, then the default."""
        return [name for name, _, _ in self.expected(today)] + ([self.default_name] if self.default else [])

    @property
    def default_name(self) -> str:
        return f"{self.table}_default"


def partition_name(table: str, start: date) -> str:
    return f"{table}_p{start.year:04d}_{start.month:02d}"


ERASE_RULES = ("delete", "anonymise", "retain")


@dataclass(frozen=True)
class PersonalData:
    """Rows of ``table`` hold personal data of the subject named by ``subject_column``.

    ``erase`` says what ``sovren-db erase`` does with the subject's rows:
    ``delete`` them, ``anonymise`` them (``anonymise`` maps each column to the
    SQL expression it is set to; the subject column must be among them) or
    ``retain`` them (``reason`` says why, e.g. an immutable audit trail).
    ``columns`` names the columns holding personal data; ``identifying``
    those whose values identify the subject wherever they are copied (an
    email, a username): ``sovren-db erase --verify`` looks for them in every
    store. Not DDL: the Postgres plugin ignores this kind;
    :mod:`sovren_db.compliance` reads it.
    """

    table: str
    subject_column: str
    columns: tuple[str, ...] = ()
    erase: str = "delete"
    anonymise: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    identifying: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.anonymise, dict):
            object.__setattr__(self, "anonymise", tuple(sorted(self.anonymise.items())))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "identifying", tuple(self.identifying))
        if self.erase not in ERASE_RULES:
            raise ValueError(f"PersonalData {self.table}: erase must be one of {', '.join(ERASE_RULES)}, "
                             f"not {self.erase!r}")
        if (self.erase == "anonymise") != bool(self.anonymise):
            raise ValueError(f"PersonalData {self.table}: 'anonymise' expressions go with erase='anonymise' only")
        if self.erase == "retain" and not self.reason:
            raise ValueError(f"PersonalData {self.table}: erase='retain' needs a reason")

    @property
    def key(self) -> str:
        return self.table


@dataclass(frozen=True)
class Encrypted:
    """``table.column`` holds pgcrypto ciphertext (``pgp_sym_encrypt``), rotated by ``sovren-db rotate-key``.

    A text column holds it ASCII-armored (``armor(pgp_sym_encrypt(...))``,
    read back with ``pgp_sym_decrypt(dearmor(col), key)``); a bytea column holds
    it raw. ``data`` is the type of the plaintext (``text`` or ``bytea``), and
    ``options`` the pgcrypto options used when encrypting.
    """

    table: str
    column: str
    data: str = "text"
    options: str = "cipher-algo=aes256"

    def __post_init__(self) -> None:
        if self.data not in ("text", "bytea"):
            raise ValueError(f"Encrypted {self.table}.{self.column}: data must be 'text' or 'bytea'")

    @property
    def key(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass(frozen=True)
class PciScope:
    """``table`` is in PCI DSS scope: none of its text columns may hold a card number (PAN).

    Each of ``columns`` (default: every text column able to hold 13 characters)
    needs a validated CHECK constraint calling ``function`` on it
    (:data:`sovren_db.postgres.pci.has_card_number`), and each of ``last4`` one
    allowing four digits only. ``sovren-db check`` verifies them in the catalog.
    Not DDL: the constraints are declared on the table.
    """

    table: str
    columns: tuple[str, ...] = ()
    last4: tuple[str, ...] = ()
    function: str = "sovren_has_card_number"

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "last4", tuple(self.last4))

    @property
    def key(self) -> str:
        return self.table


KINDS = (Extension, Role, Function, RowSecurity, Policy, Trigger, Grant, PartitionRule, PersonalData, Encrypted,
         PciScope)


@dataclass
class Schema:
    """Everything declared for Postgres: tables in ``metadata`` plus catalog objects."""

    metadata: MetaData = field(default_factory=MetaData)
    objects: dict[type, dict[str, object]] = field(default_factory=lambda: {k: {} for k in KINDS})
    sources: dict[tuple[type, str], tuple[str, int]] = field(default_factory=dict, compare=False, repr=False)

    def add(self, *objects: object) -> None:
        caller = sys._getframe(1)  # where each object was added, for declaration errors naming the file
        for obj in objects:
            bucket = self.objects.get(type(obj))
            if bucket is None:
                raise TypeError(f"{obj!r} is not a Postgres object sovren-db manages")
            if obj.key in bucket and bucket[obj.key] != obj:  # type: ignore[attr-defined]
                raise ValueError(f"{type(obj).__name__} {obj.key} is declared twice")  # type: ignore[attr-defined]
            bucket[obj.key] = obj  # type: ignore[attr-defined]
            self.sources.setdefault((type(obj), obj.key), (caller.f_code.co_filename, caller.f_lineno))  # type: ignore[attr-defined]

    def of(self, kind: type) -> list:
        return list(self.objects[kind].values())

    @property
    def declared_roles(self) -> set[str]:
        return set(self.objects[Role])
