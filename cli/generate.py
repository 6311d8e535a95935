"""`autoworld generate`: worlds from a theme, validated stage by stage, written to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from autoworld.cli.common import EXIT_INVALID, console, echo_json, fail, handle_errors

BACKENDS = ("procedural", "openai", "transformers")


def _backend(name: str, model: str | None, base_url: str | None = None,
             timeout: float = 30.0, retries: int = 2, prices: tuple[float, float] = (0.0, 0.0)
             ) -> Any:
    if name == "procedural":
        from autoworld.generator.procedural import ProceduralBackend

        return ProceduralBackend()
    try:
        if name == "openai":
            from autoworld.generator.openai_backend import OpenAIBackend

            return OpenAIBackend(base_url=base_url, model=model, timeout=timeout,
                                 max_retries=retries, usd_per_1k_prompt=prices[0],
                                 usd_per_1k_completion=prices[1])
        from autoworld.generator.transformers_backend import TransformersBackend
    except ImportError as exc:
        raise fail(f"the {name!r} backend is not available ({exc}); install the 'llm' extra "
                   "(pip install 'autoworld[llm]') or use --backend procedural") from None
    if not model:
        raise fail("--backend transformers needs --model PATH (a local Hugging Face model "
                   "directory)")
    return TransformersBackend(model)


def _summary_table(run) -> Table:
    table = Table(title=f"generate: {run.accepted}/{len(run.results)} worlds accepted "
                        f"({run.backend}, {run.proposals} proposals)")
    table.add_column("stage", no_wrap=True)
    table.add_column("attempted", justify="right")
    table.add_column("passed", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("cumulative", justify="right")
    for s in run.stages:
        style = "green" if s.rate >= 0.95 else "yellow" if s.rate >= 0.5 else "red"
        table.add_row(s.name, str(s.attempted), str(s.passed),
                      Text(f"{100 * s.rate:.1f}%", style=style), f"{100 * s.cumulative:.1f}%")
    return table


@handle_errors
def generate_command(
    theme: str = typer.Argument("", help="The theme, e.g. 'a foggy ice maze with coins'."),
    n: int = typer.Option(1, "--num", "-n", min=1, max=10_000, help="Worlds per theme."),
    backend: str = typer.Option("procedural", "--backend", "-b",
                                help="procedural, openai or transformers."),
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="Model name (openai) or local model path "
                                     "(transformers)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Run seed (world i uses seed + i)."),
    levels: int = typer.Option(15, "--levels", "-k", min=1, max=256,
                               help="Levels validated per world (a third validation, the rest "
                               "test)."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Folder for accepted specs (YAML) and level banks."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    themes_file: Path | None = typer.Option(None, "--themes",
                                            help="File of themes, one per line."),
    repair_rounds: int = typer.Option(3, "--repair-rounds", min=0, max=10,
                                      help="Repair rounds after a rejection."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint "
                                        "of --backend openai (default $AUTOWORLD_LLM_BASE_URL; "
                                        "key from $AUTOWORLD_LLM_API_KEY)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1,
                                  help="Seconds per request of --backend openai."),
    retries: int = typer.Option(2, "--retries", min=0, max=20,
                                help="Retries of a failed request of --backend openai."),
    usd_prompt: float = typer.Option(0.0, "--usd-per-1k-prompt", min=0.0,
                                     help="Price of 1,000 prompt tokens (the cost shown)."),
    usd_completion: float = typer.Option(0.0, "--usd-per-1k-completion", min=0.0,
                                         help="Price of 1,000 completion tokens."),
) -> None:
    """Generate N worlds per THEME, validate each (schema, build, smoke, levels, reliability,
    novelty) and print per-stage pass rates, time and tokens/cost."""
    from autoworld.generator.generate import Generator, GeneratorConfig

    if backend not in BACKENDS:
        raise fail(f"--backend: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    themes = [theme] if theme else []
    if themes_file is not None:
        lines = themes_file.read_text(encoding="utf-8").splitlines()
        themes += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not themes:
        raise fail("give a THEME or --themes FILE")
    gen = Generator(_backend(backend, model, base_url, timeout, retries,
                             (usd_prompt, usd_completion)),
                    GeneratorConfig(repair_rounds=repair_rounds))
    total = n * len(themes)
    if total > 1 and not as_json:
        with Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("generate", total=total, last="")
            run = gen.generate(themes, n=n, seed=seed, levels=levels, out=out,
                               on_result=lambda r: progress.update(
                                   task, advance=1, last=r.name if r.accepted else
                                   f"rejected at {r.stage}"))
    else:
        run = gen.generate(themes, n=n, seed=seed, levels=levels, out=out)
    if as_json:
        data = run.summary()
        data["worlds"] = [{"name": r.name, "theme": r.theme, "seed": r.seed,
                           "accepted": r.accepted, "content_hash": r.content_hash,
                           "stage": r.stage, "reason": r.reason, "rounds": r.rounds,
                           "files": list(r.files)} for r in run.results]
        echo_json(data)
    else:
        console.print(_summary_table(run))
        rates = run.autoenv_rates()
        console.print(
            f"AutoEnv format: execution {100 * rates['execution']:.1f}%, level generation "
            f"{100 * rates['level_generation']:.1f}%, reliability "
            f"{100 * rates['reliability']:.1f}%, overall {100 * rates['overall']:.1f}%")
        console.print(f"time {run.seconds:.1f} s ({run.accepted_per_minute:.1f} accepted/min), "
                      f"tokens {run.prompt_tokens} in / {run.completion_tokens} out, "
                      f"cost ${run.cost_usd:.4f}")
        for r in run.results:
            if r.accepted:
                console.print(Text(f"accepted {r.name}", style="green"))
            else:
                console.print(Text(f"rejected ({r.stage}): {r.reason}", style="red"),
                              soft_wrap=True)
        if out is not None:
            console.print(f"wrote {run.accepted} world(s) to {out}")
        elif run.accepted:
            console.print(f"nothing was written: add --out DIR to keep the {run.accepted} "
                          "accepted world(s) as spec files", soft_wrap=True)
    if run.accepted == 0:
        raise fail("no world was accepted; see the rejections above", code=EXIT_INVALID)
