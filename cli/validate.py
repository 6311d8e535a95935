"""`autoworld validate`: the staged validation report of a spec (exit 1 when invalid)."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from autoworld.cli.common import EXIT_INVALID, console, fail, handle_errors

STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "dim"}


@handle_errors
def validate_command(
    spec: str = typer.Argument(..., help="Spec file (.yaml/.yml/.json) or catalogue world name."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    levels: int = typer.Option(5, "--levels", "-k", min=1, max=256,
                               help="Levels generated and solved by the oracle (K)."),
    split: str = typer.Option("validation", "--split", "-s", help="Split the K levels come from."),
    num_envs: int = typer.Option(8, "--num-envs", min=1, max=4096, help="Envs of the smoke test."),
    steps: int = typer.Option(128, "--steps", min=1, max=100_000,
                              help="Random steps of the smoke test."),
    margin: float = typer.Option(0.05, "--margin", min=0.0,
                                 help="Least gap between optimal and random return per level."),
    device: str = typer.Option("cpu", "--device", help="Torch device of build and smoke."),
    recompute: bool = typer.Option(
        False, "--recompute", help="Re-solve levels whose oracle values the catalogue stores."
    ),
    novelty: bool = typer.Option(
        False, "--novelty", help="Add the novelty stage: content-hash dedup against the "
        "catalogue (a catalogue world is compared with the others) and the nearest world."
    ),
    min_distance: float = typer.Option(
        0.0, "--min-distance", min=0.0, max=1.0,
        help="With --novelty: least distance to the nearest catalogue world."
    ),
    learning_check: bool = typer.Option(
        False, "--learning-check", help="Reliability also runs a short learning run that must "
        "beat the random policy on the validation levels."
    ),
    learning_method: str = typer.Option("ppo", "--learning-method",
                                        help="Learning method of --learning-check."),
    learning_steps: int = typer.Option(30_000, "--learning-steps", min=1, max=10_000_000,
                                       help="Env-step budget of --learning-check."),
) -> None:
    """Validate SPEC stage by stage: schema, build, smoke, levels, reliability (and novelty)."""
    from pathlib import Path

    from autoworld.cli.common import check_device, check_split, is_arm_world_arg
    from autoworld.envs.catalogue import list_worlds, load_world
    from autoworld.validation import NoveltyIndex, ValidationConfig, validate

    check_split(split)
    check_device(device)
    if spec not in list_worlds() and is_arm_world_arg(spec):
        return _validate_arm(spec, as_json)
    if spec not in list_worlds():
        p = Path(spec)
        if not p.is_file():
            raise fail(f"no such spec file: {spec}; give an existing .yaml/.json spec or a "
                       "catalogue name (see `autoworld list`)")
        if p.suffix not in (".yaml", ".yml", ".json"):
            raise fail(f"{spec}: a spec file ends in .yaml, .yml or .json; rename it")
        source: object = p
    else:
        source = spec
    config = ValidationConfig(num_levels=levels, split=split, num_envs=num_envs,  # type: ignore[arg-type]
                              smoke_steps=steps, margin=margin, device=device,
                              recompute=recompute, novelty=novelty,
                              min_distance=min_distance, learning_check=learning_check,
                              learning_method=learning_method, learning_steps=learning_steps)
    index = None
    if novelty:  # a catalogue world is checked against the other catalogue worlds
        index = NoveltyIndex(load_world(n) for n in list_worlds() if n != spec)
    report = validate(source, config, novelty_index=index)
    if as_json:
        typer.echo(report.to_json())
    else:
        title = f"validate {report.world or spec}" + (
            f" ({report.content_hash})" if report.content_hash else "")
        table = Table(title=title)
        table.add_column("stage", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("seconds", justify="right")
        table.add_column("message")
        for s in report.stages:
            table.add_row(s.name, Text(s.status, style=STATUS_STYLE[s.status]),
                          f"{s.seconds:.2f}", Text(s.message))
        console.print(table)
        if report.levels:
            lv = Table(title="levels")
            for col in ("level", "seed", "optimal", "random", "oracle", "states"):
                lv.add_column(col, justify="right")
            for c in report.levels:
                lv.add_row(str(c.index), str(c.seed), f"{c.optimal_return:.3f}",
                           "-" if c.random_return is None else f"{c.random_return:.3f}",
                           "exact" if c.exact else "bound", str(c.num_states))
            console.print(lv)
    if not report.ok:
        raise fail(f"invalid spec: {report.error}", code=EXIT_INVALID)
    if not as_json:
        console.print(Text(f"valid: {report.world} passed every stage", style="bold green"))


def _validate_arm(name: str, as_json: bool) -> None:
    """An arm world (catalogue name, Arm<Task>-<arm> or arm spec file): the arm family's own
    checks (targets within reach on both splits, the scripted expert succeeds)."""
    import json

    from autoworld.envs.arm.validation import validate_arm_spec
    from autoworld.learners.arm_methods import arm_world_arg

    report = validate_arm_spec(arm_world_arg(name))
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        console.print(f"validate {report.name} (arm): workspace r in [{report.r_min:.3f}, "
                      f"{report.r_max:.3f}] m, expert success "
                      f"{'-' if report.expert_success is None else f'{report.expert_success:.2f}'}"
                      f" over {report.episodes} episodes", soft_wrap=True)
    if not report.ok:
        raise fail("invalid arm world: " + "; ".join(report.errors), code=EXIT_INVALID)
    if not as_json:
        console.print(Text(f"valid: {report.name} passed every check", style="bold green"))
