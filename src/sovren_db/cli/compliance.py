"""Compliance commands (issue 7): erase, audit verify, rotate-key, snapshot, verify-restore.

Exit codes: 0 done or clean; 1 something found (work a dry run would do, a
broken audit chain, rows that do not decrypt, a restore that differs); 2 bad
input, configuration or connection. Keys never come from argv: only the names
of the environment variables or files holding them do.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import format_option
from .output import emit


@click.command()
@click.option("--subject", required=True, metavar="USER_ID", help="The data subject: a users.user_id.")
@click.option("--dry-run", is_flag=True, help="Only list, per store, what would go (exit 1 when something would).")
@click.option("--allow-protected", is_flag=True, help="Allow erasing in a protected environment.")
@click.option("--verify", is_flag=True,
              help="Erase nothing: sweep every store for any trace of the subject (exit 1 naming where).")
@format_option
@click.pass_context
def erase(ctx: click.Context, subject: str, dry_run: bool, allow_protected: bool, verify: bool, fmt: str) -> None:
    """Erase or anonymise everything the declarations link to one user, in every store.

    Resumable: a rerun skips the steps already done. Records one ERASE audit event holding a salted
    hash of the subject, never the id. With --verify, looks for the id and the subject's identifying
    values (email, username) in every column, key and document instead.
    """
    from ..compliance.erase import erase as run_erase

    if verify:
        from ..compliance.sweep import verify as run_verify

        if dry_run:
            raise click.UsageError("--verify erases nothing already: leave out --dry-run.")
        outcome = run_verify(ctx.obj.settings, subject)
    else:
        outcome = run_erase(ctx.obj.settings, subject, dry_run=dry_run, allow_protected=allow_protected)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.group()
def audit() -> None:
    """The immutable audit trail (architecture §6, Appendix G.2)."""


KEY_ENV_HELP = "Environment variable holding the checkpoint signing key (HMAC-SHA256)."


@audit.command("verify")
@click.option("--checkpoint", metavar="FILE|redis[:LIST]",
              help="Also check the chain against the latest signed checkpoint kept there.")
@click.option("--key-env", default="SOVREN_AUDIT_SEAL_KEY", show_default=True, metavar="VAR", help=KEY_ENV_HELP)
@click.option("--every-row", is_flag=True,
              help="Compare every row's columns with its payload even where the CHECK constraint vouches for them.")
@format_option
@click.pass_context
def audit_verify(ctx: click.Context, checkpoint: str | None, key_env: str, every_row: bool, fmt: str) -> None:
    """Walk the audit_log hash chain in one streamed pass; exit 1 at the first broken link.

    With --checkpoint, a tail cut or rewritten since the latest checkpoint is reported too.
    """
    from ..compliance.audit_verify import verify

    outcome = verify(ctx.obj.settings, checkpoint, key_env, every_row)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@audit.command("seal")
@click.option("--to", "to", default="-", show_default=True, metavar="FILE|redis[:LIST]|-",
              help="Append the checkpoint to a file, push it on a Redis list (REDIS_URL), or print it (-).")
@click.option("--key-env", default="SOVREN_AUDIT_SEAL_KEY", show_default=True, metavar="VAR", help=KEY_ENV_HELP)
@format_option
@click.pass_context
def audit_seal(ctx: click.Context, to: str, key_env: str, fmt: str) -> None:
    """Verify the chain, then write a signed checkpoint of its head (event count, last event id, hash).

    The key never reaches Postgres: a superuser who rewrites the log's tail cannot re-sign it.
    """
    from ..compliance.audit_verify import seal

    outcome = seal(ctx.obj.settings, to, key_env)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.command("rotate-key")
@click.option("--old-key-env", metavar="VAR", help="Environment variable holding the current key.")
@click.option("--old-key-file", type=click.Path(dir_okay=False, path_type=Path), help="File holding the current key.")
@click.option("--new-key-env", metavar="VAR", help="Environment variable holding the new key.")
@click.option("--new-key-file", type=click.Path(dir_okay=False, path_type=Path), help="File holding the new key.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Rows re-encrypted per transaction.")
@click.option("--verify-only", is_flag=True, help="Only check that every value decrypts with the new key.")
@format_option
@click.pass_context
def rotate_key(ctx: click.Context, old_key_env: str | None, old_key_file: Path | None, new_key_env: str | None,
               new_key_file: Path | None, batch_size: int, verify_only: bool, fmt: str) -> None:
    """Re-encrypt the columns declared Encrypted from the old key to the new one, then verify.

    Without an old key, plaintext values are encrypted (first encryption). Resumable: a rerun with the
    same key pair continues where it stopped.
    """
    from ..compliance.rotate import KeySource, rotate

    outcome = rotate(ctx.obj.settings, old=KeySource.of("old", old_key_env, old_key_file),
                     new=KeySource.of("new", new_key_env, new_key_file), batch_size=batch_size,
                     verify_only=verify_only)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the manifest (JSON).")
@format_option
@click.pass_context
def snapshot(ctx: click.Context, out: Path, fmt: str) -> None:
    """Write a manifest of every table, collection and key family: counts, checksums, revisions."""
    from ..compliance.snapshot import write_snapshot

    outcome = write_snapshot(ctx.obj.settings, out)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.command("verify-restore")
@click.option("--manifest", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A manifest written by 'sovren-db snapshot'.")
@click.option("--check", "names", multiple=True, metavar="NAME",
              help="Compare only these tables, collections or key families (repeatable). Default: all.")
@format_option
@click.pass_context
def verify_restore(ctx: click.Context, manifest: Path, names: tuple[str, ...], fmt: str) -> None:
    """Compare a restored triad with a snapshot manifest and with the declarations; exit 1 on any difference."""
    from ..compliance.restore import verify_restore as run_verify

    outcome = run_verify(ctx.obj.settings, manifest, names)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)
