"""No card data, enforced by the database (PCI DSS 3.2-3.4, architecture Appendix G.5).

A project declares :data:`functions` and, per table in
scope, a :class:`~sovren_db.postgres.state.PciScope`; each text column of
that table carries ``CHECK (NOT sovren_has_card_number(column))``
(:func:`no_card_number` builds it) and each last-four column
``CHECK (column ~ '^[0-9]{4}$')`` (:func:`four_digits`). ``sovren-db check``
reads the catalog and reports a scope column without its validated
constraint (``pci-unchecked``).

A card number here is a run of 13 to 19 digits, each separated from the next
by spaces or dashes only, not glued to a letter or digit, that passes the
Luhn check. Runs are maximal: digits joined to a card number by spaces or
dashes make a longer run, which is not one (a 20-digit reference is not a
card number); a false positive needs 13-19 digits in one run *and* the Luhn
check (1 in 10).
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, text
from sqlalchemy.engine import Connection

from ..core.findings import Finding
from .state import Function, PciScope, Schema

FUNCTION = "sovren_has_card_number"
# A run: digits joined by spaces or dashes only, not glued to letters or digits on either side
# (a card number inside a hex digest or an alphanumeric token is not one as written).
RUN = "(?<![0-9A-Za-z])[0-9](?:[ -]*[0-9]){12,}(?![0-9A-Za-z])"

# The Luhn sums of the runs: a set-returning subquery, so PL/SQL cannot inline it; only called
# for values that have a run at all (the regular expression of has_card_number).
luhn_card_run = Function(
    name="sovren_luhn_card_run",
    args="value text",
    returns="boolean",
    language="sql",
    volatility="IMMUTABLE",
    body=f"""
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.regexp_matches(value, '{RUN}', 'g') AS run(found)
     CROSS JOIN LATERAL (SELECT pg_catalog.reverse(pg_catalog.translate(run.found[1], ' -', '')) AS digits) AS d
     WHERE pg_catalog.length(d.digits) <= 19
       AND (SELECT pg_catalog.sum(CASE WHEN i % 2 = 1 THEN n WHEN n > 4 THEN 2 * n - 9 ELSE 2 * n END)
              FROM (SELECT i, pg_catalog.substr(d.digits, i, 1)::int AS n
                      FROM pg_catalog.generate_series(1, pg_catalog.length(d.digits)) AS i) AS position
           ) % 10 = 0
)
""",
)

# LANGUAGE sql, IMMUTABLE and one expression: CHECK constraints may call it and the planner inlines it,
# so a value without 13 digits in a row costs one regular expression (bench/schema_guards.py). No SET
# search_path (it would stop the inlining): the helper is schema-qualified, as pg_restore runs the
# constraints with an empty search_path, like the audit functions' 'public'.
has_card_number = Function(
    name=FUNCTION,
    args="value text",
    returns="boolean",
    language="sql",
    volatility="IMMUTABLE",
    body=f"""
SELECT value OPERATOR(pg_catalog.~) '{RUN}' AND public.sovren_luhn_card_run(value)
""",
)
functions = [luhn_card_run, has_card_number]   # in creation order


def no_card_number(table: str, column: str) -> CheckConstraint:
    return CheckConstraint(f"NOT {FUNCTION}({column})", name=f"{table}_{column}_no_card_number")


def four_digits(table: str, column: str) -> CheckConstraint:
    return CheckConstraint(f"{column} ~ '^[0-9]{{4}}$'", name=f"{table}_{column}_four_digits")


# Per column of the scoped tables: its type's character capacity, and the validated CHECK constraints
# on it alone that call the function, or that only allow four digits.
_CONSTRAINTS = """
SELECT t.relname AS "table", a.attname AS "column",
       a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) AS is_text,
       CASE WHEN a.atttypmod > 4 THEN a.atttypmod - 4 END AS max_length,
       EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass
                  AND d.objid = c.oid AND d.refclassid = 'pg_proc'::regclass
                JOIN pg_proc p ON p.oid = d.refobjid AND p.proname = :function
                WHERE c.conrelid = t.oid AND c.contype = 'c' AND c.convalidated AND c.conkey = ARRAY[a.attnum])
           AS checked,
       EXISTS (SELECT 1 FROM pg_constraint c
                WHERE c.conrelid = t.oid AND c.contype = 'c' AND c.convalidated AND c.conkey = ARRAY[a.attnum]
                  AND pg_get_constraintdef(c.oid) LIKE '%''^[0-9]{4}$''%') AS four_digits
  FROM pg_class t
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:tables)
"""


def pci_findings(schema: Schema, conn: Connection, where: str) -> list[Finding]:
    scopes = schema.of(PciScope)
    if not scopes:
        return []
    findings = []
    for scope in scopes:
        rows = conn.execute(text(_CONSTRAINTS), {"function": scope.function, "tables": [scope.table]}).all()
        if not rows:
            continue  # a missing table is drift, reported as such
        findings += _scope_findings(scope, {r.column: r for r in rows}, where)
    return findings


def _scope_findings(scope: PciScope, columns: dict, where: str) -> list[Finding]:
    wanted = scope.columns or tuple(name for name, r in columns.items()
                                    if r.is_text and (r.max_length is None or r.max_length >= 13))
    findings = []
    for name in wanted:
        row = columns.get(name)
        if row is None or not row.checked:
            findings.append(Finding("postgres", f"column {scope.table}.{name}", "is in PCI scope but no validated "
                                    f"CHECK (NOT {scope.function}({name})) keeps card numbers out of it",
                                    code="pci-unchecked", file=where))
    for name in scope.last4:
        if name not in columns or not columns[name].four_digits:
            findings.append(Finding("postgres", f"column {scope.table}.{name}", "holds the last four digits of a "
                                    f"card but no validated CHECK ({name} ~ '^[0-9]{{4}}$') restricts it to them",
                                    code="pci-unchecked", file=where))
    return findings
