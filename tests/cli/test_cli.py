"""Smoke tests of every `autoworld` command (typer's CliRunner) and of the console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import autoworld
from autoworld.cli.app import app
from autoworld.envs.catalogue import CATALOGUE_DIR, list_worlds, load_world
from autoworld.envs.grid.components import REGISTRY

runner = CliRunner()

BAD_SPEC = """\
name: Bad
height: 6
width: 6
transition: [{kind: cardinal}]
observation: [{kind: full_grid}]
reward: [{kind: reach_goal, reward: -1}]
"""


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def assert_clean_error(result, code: int, *needles: str) -> None:
    """Exit ``code``, one red error line on stderr naming ``needles``, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"autoworld {autoworld.__version__}"


def test_command_table_describes_each_command_in_whole_sentences():
    import typer

    group = typer.main.get_command(app)
    assert len(group.commands) >= 14
    for name, cmd in group.commands.items():
        # one line each (the table wraps it); a docstring's own line breaks used to cut the
        # descriptions mid-sentence
        assert cmd.short_help and "\n" not in cmd.short_help, name
        assert cmd.short_help.endswith((".", ")")), (name, cmd.short_help)
        # a command's own help: paragraphs kept, but no line break inside one
        assert all("\n" not in p for p in cmd.help.split("\n\n")), name
    result = invoke("--help")
    assert result.exit_code == 0 and "evolve" in result.stdout
    bench = invoke("bench", "--help").stdout
    assert "Without --num-envs a run uses 256 envs" in " ".join(bench.split())


def test_list_table_json_and_tags():
    result = invoke("list")
    assert result.exit_code == 0 and "DoorKey-8x8" in result.stdout
    rows = json.loads(invoke("list", "--json").stdout)
    grid = [r for r in rows if r["family"] == "grid"]
    assert [r["name"] for r in grid] == list_worlds()
    arm = [r for r in rows if r["family"] == "arm"]
    assert arm and all(r["gym_id"].startswith("autoworld/Arm") for r in arm)
    arm_only = json.loads(invoke("list", "--json", "--tag", "arm").stdout)
    assert {r["name"] for r in arm_only} == {r["name"] for r in arm}
    by_name = {r["name"]: r for r in rows}
    dk = by_name["DoorKey-8x8"]
    assert dk["gym_id"] == "autoworld/DoorKey-8x8-v0" and dk["family"] == "grid"
    assert dk["tags"] == ["binary", "partial", "aligned", "deterministic"]
    assert dk["levels"]["test"] >= 1 and dk["levels"]["validation"] >= 1
    stochastic = json.loads(invoke("list", "--json", "--tag", "stochastic").stdout)
    assert stochastic and all("stochastic" in r["tags"] for r in stochastic)
    assert len(stochastic) < len(rows)
    assert_clean_error(invoke("list", "--tag", "shiny"), 2, "--tag", "shiny")


def test_show_ascii_and_png(tmp_path):
    from PIL import Image

    png = tmp_path / "out" / "doorkey.png"
    result = invoke("show", "DoorKey-8x8", "--level", "1", "--png", str(png))
    assert result.exit_code == 0, result.output
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("#")]
    assert rows[0] == "#" * 8 and len(rows) >= 8
    assert any(ch in result.stdout for ch in "^>v<")
    spec = load_world("DoorKey-8x8")
    assert Image.open(png).size == (spec.width * 16, spec.height * 16)


def test_show_errors_are_one_red_line(tmp_path):
    assert_clean_error(invoke("show", "NoSuchWorld"), 2, "NoSuchWorld")
    assert_clean_error(invoke("show", str(tmp_path / "missing.yaml")), 2, "missing.yaml")
    assert_clean_error(invoke("show", "Empty-6x6", "--split", "dev"), 2, "--split")
    assert_clean_error(invoke("show", "Empty-6x6", "--level", "-1"), 2, "--level")


@pytest.mark.parametrize("world", ["Empty-6x6", "DoorKey-8x8"])
def test_play_with_piped_keys_follows_the_oracle_plan_to_the_goal(world):
    from autoworld.cli.play import keymap_for
    from autoworld.cli.show import get_level
    from autoworld.envs.grid.oracle import solve

    spec = load_world(world)
    plan = solve(spec, get_level(spec, "test", 0)).plan
    key_of = {action: key for key, (action, _) in keymap_for(spec).items()}
    keys = "".join(f"{key_of[a]}\n" for a in plan) + "x\nq\n"
    result = invoke("play", world, input=keys)
    assert result.exit_code == 0, result.output
    assert "episode done: terminated" in result.stdout
    assert "unknown key 'x'" in result.stdout
    assert "1 episode(s) finished" in result.stdout


def test_validate_good_spec_json_and_table(tmp_path):
    result = invoke("validate", "Empty-6x6", "--levels", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and [s["status"] for s in report["stages"]] == ["passed"] * 5
    path = tmp_path / "empty.yaml"
    path.write_text((CATALOGUE_DIR / "Empty-6x6.yaml").read_text(), encoding="utf-8")
    result = invoke("validate", str(path), "--levels", "1", "--steps", "16")
    assert result.exit_code == 0, result.output
    assert "reliability" in result.stdout and "passed every stage" in result.stdout


def test_validate_bad_spec_exits_1_naming_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC, encoding="utf-8")
    result = invoke("validate", str(path))
    assert_clean_error(result, 1, "reward[0]", "greater than 0")
    assert "schema" in result.stdout and "skipped" in result.stdout
    result = invoke("validate", str(path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["stages"][0]["status"] == "failed"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    assert_clean_error(invoke("validate", str(path)), 1, "not valid YAML")
    assert_clean_error(invoke("validate", str(tmp_path / "nope.yaml")), 2, "nope.yaml")


def test_schema_stdout_and_file(tmp_path):
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"transition", "observation", "reward"} <= set(schema["properties"])
    out = tmp_path / "schema.json"
    assert invoke("schema", "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == schema
    assert_clean_error(invoke("schema", "--out", str(tmp_path)), 2)


def test_components_table_json_and_factor():
    result = invoke("components")
    assert result.exit_code == 0 and "egocentric" in result.stdout
    rows = json.loads(invoke("components", "--json").stdout)
    assert {r["name"] for r in rows} == set(REGISTRY)
    ego = next(r for r in rows if r["name"] == "egocentric")
    size = next(p for p in ego["parameters"] if p["name"] == "size")
    assert size["type"] == "integer" and size["default"] == 7
    assert size["bounds"] == {"minimum": 3, "maximum": 11} and size["description"]
    assert ego["factor"] == "observation" and ego["doc"]
    rewards = json.loads(invoke("components", "--json", "--factor", "reward").stdout)
    assert rewards and all(r["factor"] == "reward" for r in rewards)
    assert_clean_error(invoke("components", "--factor", "colour"), 2, "--factor")


def test_demo_tiny():
    result = invoke("demo", "--world", "Empty-6x6", "--world", "DoorKey-8x8",
                    "--num-envs", "4", "--steps", "5", "--levels", "2")
    assert result.exit_code == 0, result.output
    assert "Empty-6x6" in result.stdout and "DoorKey-8x8" in result.stdout
    assert "20 env-steps" in result.stdout and "steps/s" in result.stdout
    assert_clean_error(invoke("demo", "--world", "Nowhere"), 2, "Nowhere")
    assert_clean_error(invoke("demo", "--world", "Empty-6x6", "--world", "DoorKey-8x8",
                              "--num-envs", "1"), 2, "--num-envs")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_demo_without_cuda_is_a_clean_error():
    assert_clean_error(invoke("demo", "--device", "cuda", "--steps", "1"), 2, "--device")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bogus"], "bogus"),
        (["validate", "Empty-6x6", "--levels", "0"], "--levels"),
        (["show"], "world"),
        (["list", "--colour"], "--colour"),
    ],
)
def test_usage_errors_through_main_are_one_red_line(capsys, argv, needle):
    from autoworld.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


def test_main_exit_codes(capsys):
    from autoworld.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and autoworld.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["show", "NoSuchWorld"])
    assert exc.value.code == 2 and "NoSuchWorld" in capsys.readouterr().err


def _console_script() -> str:
    local = Path(sys.executable).with_name("autoworld")
    found = str(local) if local.exists() else shutil.which("autoworld")
    assert found, "the `autoworld` console script is not installed (pip install -e .)"
    return found


def test_installed_console_script_lists_the_catalogue():
    proc = subprocess.run([_console_script(), "list", "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows if r["family"] == "grid"] == list_worlds()


@pytest.mark.parametrize("args, message", [
    (["train", "Empty-6x6", "--device", "bogus"], "--device: unknown device 'bogus'"),
    (["evolve", "--device", "tpu", "-n", "1"], "--device: unknown device 'tpu'"),
    (["validate", "Empty-6x6", "--device", "mps"], "--device mps: autoworld runs on cpu or cuda"),
    (["train", "ArmReach-N3", "--steps", "100"],
     "ArmReach-N3 is an arm world and ppo trains grid worlds; use one of arm-bc"),
    (["train", "Empty-6x6", "--method", "arm-ppo", "--steps", "100"],
     "Empty-6x6 is a grid world and arm-ppo trains arm worlds"),
    (["show", "ArmReach-N3"], "`autoworld show` works on grid worlds"),
    (["demo", "--world", "ArmReach-N3"], "`autoworld demo` works on grid worlds"),
])
def test_wrong_device_or_world_family_is_one_clear_line(args, message) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_file_where_a_folder_should_be_is_one_clear_line(tmp_path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = invoke("train", "Empty-6x6", "--steps", "64", "--num-envs", "2", "--run-dir",
                    str(blocker), "--quiet")
    assert result.exit_code == 2 and "a file is in the way of a folder" in result.output


def test_list_on_a_narrow_terminal_cuts_no_column(monkeypatch) -> None:
    from autoworld.cli import common

    monkeypatch.setattr(common.console, "_width", 80)
    out = invoke("list").stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "ScrambledControlsDungeon-95e693-11x11" in out  # the longest name, whole
    assert "Gymnasium id of each: autoworld/<name>-v0" in out


def test_arm_spec_files_are_routed_by_their_family_not_their_name(tmp_path) -> None:
    from autoworld.envs.arm.spec import arm_world, spec_to_yaml

    path = tmp_path / "myarm.yaml"  # no "Arm" in the name: the file's family decides
    path.write_text(spec_to_yaml(arm_world("reach", "arm3")))
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "(arm)" in result.stdout and "passed every check" in result.stdout
    result = invoke("train", str(path), "--method", "arm-ppo", "--steps", "256", "--num-envs",
                    "8", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "result.json").read_text())["world"] == "ArmReach-N3"
    # and a grid spec file whose name starts with "Arm" stays a grid spec
    from autoworld.envs.catalogue import load_world
    from autoworld.spec import save_spec

    grid = tmp_path / "ArmoryMaze.yaml"
    save_spec(load_world("Empty-6x6").model_copy(update={"name": "ArmoryMaze"}), grid)
    result = invoke("validate", str(grid), "--levels", "1")
    assert result.exit_code == 0 and "passed every stage" in result.stdout, result.output
    # the methods take a Path as well as a string
    from autoworld.learners.arm_methods import arm_world_arg

    assert arm_world_arg(path).name == arm_world_arg(str(path)).name == "ArmReach-N3"
