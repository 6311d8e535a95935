"""The ``autoworld`` command: one typer app, one module per command."""

from __future__ import annotations

import typer

from autoworld import __version__
from autoworld.cli.bench import bench_command
from autoworld.cli.components import components_command
from autoworld.cli.demo import demo_command
from autoworld.cli.embodiment import embodiment
from autoworld.cli.evolve import evolve
from autoworld.cli.generate import generate_command
from autoworld.cli.leaderboard import leaderboard_command
from autoworld.cli.list_worlds import list_command
from autoworld.cli.methods import methods_command
from autoworld.cli.play import play_command
from autoworld.cli.schema import schema_command
from autoworld.cli.show import show_command
from autoworld.cli.train import train_command
from autoworld.cli.validate import validate_command

app = typer.Typer(
    name="autoworld",
    help="autoworld turns a sentence into executable worlds and learns in them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"autoworld {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """autoworld turns a sentence into executable worlds and learns in them."""


def _help(fn) -> str:
    """A command's docstring with each paragraph on one line: rich help keeps a docstring's
    line breaks, which would break descriptions mid-sentence wherever the terminal's width
    differs from the source's."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in (inspect.getdoc(fn) or "").split("\n\n"))


for _name, _fn in [
    ("list", list_command),
    ("show", show_command),
    ("play", play_command),
    ("validate", validate_command),
    ("schema", schema_command),
    ("components", components_command),
    ("demo", demo_command),
    ("train", train_command),
    ("generate", generate_command),
    ("bench", bench_command),
    ("leaderboard", leaderboard_command),
    ("methods", methods_command),
    ("evolve", evolve),
    ("embodiment", embodiment),
]:
    app.command(_name, help=_help(_fn), short_help=_help(_fn).split("\n\n")[0])(_fn)


def _click_exception() -> type[Exception]:
    """The ClickException class of the click that typer runs on (typer >= 0.17 vendors its own
    copy, so ``click.ClickException`` would not catch its errors)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors (unknown command or option, bad option value)
    become one red line and exit code 2, like every other error."""
    import sys

    from autoworld.cli.common import EXIT_USAGE, fail

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=args or ["--help"], prog_name="autoworld", standalone_mode=False)
    except _click_exception() as exc:
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() + where  # type: ignore[attr-defined]
        raise SystemExit(fail(message, getattr(exc, "exit_code", EXIT_USAGE)).exit_code) from None
    except typer.Abort:
        raise SystemExit(fail("aborted", 130).exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
