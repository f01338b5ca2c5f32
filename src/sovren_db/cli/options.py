"""Options shared by several commands, as decorators (pip-tools style)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from ..core.config import Settings, load_settings
from ..core.findings import FORMATS



def _format_chosen(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Keep the format where the group's error handler finds it: errors are printed in it too."""
    state = ctx.find_object(AppState)
    if state is not None:
        state.fmt = value
    return value


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, is_eager=True,
    callback=_format_chosen,
    help="Output for people (text), programs (json) or GitHub workflow annotations (github).",
)


class AppState:
    """What the group's options decided: root, strictness, debug."""

    def __init__(self, root: Path | None, strict: bool | None, debug: bool, target: str | None = None):
        self.root = root
        self.strict = strict
        self.debug = debug
        self.fmt: str | None = None
        self.target = target
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.root, strict=self.strict)
            if self.target:
                from ..targets import for_target

                self._settings = for_target(self._settings, self.target)
            if self._settings.environment_note:
                click.echo(f"note: {self._settings.environment_note}", err=True)
        return self._settings


def pass_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command the loaded Settings as its first argument."""

    @click.pass_obj
    @functools.wraps(fn)
    def wrapper(state: AppState, *args: Any, **kwargs: Any) -> Any:
        return fn(state.settings, *args, **kwargs)

    return wrapper


def exit_with(code: int) -> None:
    raise SystemExit(code)
