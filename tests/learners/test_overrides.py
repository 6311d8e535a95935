"""Hyper-parameters from files and KEY=VALUE overrides (`autoworld train --config/--set`)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from autoworld.cli.app import app
from autoworld.learners.methods import MethodOptions
from autoworld.learners.overrides import ConfigError, configure, dump_config, parse_set
from autoworld.learners.policies import PolicyConfig
from autoworld.learners.ppo import PPOConfig


def test_parse_set_reads_values_as_yaml() -> None:
    assert parse_set("policy.dense_layers=2") == (["policy", "dense_layers"], 2)
    assert parse_set("anneal_lr=false") == (["anneal_lr"], False)
    assert parse_set("target_kl=null") == (["target_kl"], None)
    assert parse_set("policy.encoding=onehot") == (["policy", "encoding"], "onehot")
    # YAML 1.1 reads 1e-3 as a string; the model's float field still takes it
    assert configure(PPOConfig, sets=["learning_rate=1e-3"]).learning_rate == 1e-3


def test_file_then_overrides_in_order(tmp_path) -> None:
    f = tmp_path / "ppo.yaml"
    f.write_text(yaml.safe_dump({"learning_rate": 1e-3, "policy": {"trunk": "mlp",
                                                                   "hidden": 64}}))
    cfg = configure(PPOConfig, path=f, sets=["policy.hidden=32", "clip_vloss=false"])
    assert cfg.learning_rate == 1e-3 and cfg.clip_vloss is False
    # the file's nested mapping updates the policy, it does not replace it
    assert cfg.policy == PPOConfig().policy.model_copy(update={"trunk": "mlp", "hidden": 32})
    assert cfg.policy != PolicyConfig()
    assert cfg.num_envs == PPOConfig().num_envs
    # what dump_config writes, --config reads back to the same config
    g = tmp_path / "dumped.yaml"
    g.write_text(dump_config(cfg))
    assert configure(PPOConfig, path=g) == cfg
    json_file = tmp_path / "ppo.json"
    json_file.write_text(json.dumps({"update_epochs": 8}))
    assert configure(PPOConfig, cfg, path=json_file).update_epochs == 8


@pytest.mark.parametrize("sets, needle", [
    (["policy.dense_layer=2"], "policy.dense_layer: unknown field; use one of activation"),
    (["policy.dense_layers=9"], "less than or equal to 4 (got 9)"),
    (["learning_rate.x=1"], "learning_rate is not a group of fields"),
    (["lr=1"], "lr: unknown field; use one of anneal_lr"),
    (["num_envs"], "write KEY=VALUE"),
    (["policy.encoding=bits"], "policy.encoding"),
    (["gamma=[1"], "not valid YAML"),
])
def test_bad_overrides_name_the_field(sets, needle) -> None:
    with pytest.raises(ConfigError, match="--set") as exc:
        configure(PPOConfig, sets=sets)
    assert needle in str(exc.value)


def test_bad_files_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        configure(PPOConfig, path=tmp_path / "missing.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        configure(PPOConfig, path=f)
    f.write_text("population: 8\n")
    with pytest.raises(ConfigError, match="population: unknown field"):
        configure(PPOConfig, path=f)
    assert configure(MethodOptions, path=f).population == 8


def test_train_cli_show_config_and_set(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["train", "Empty-6x6", "--show-config", "-b", "8",
                              "--set", "policy.encoding=onehot"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["num_envs"] == 8 and shown["policy"]["encoding"] == "onehot"
    res = runner.invoke(app, ["train", "Empty-6x6", "-m", "es", "--show-config",
                              "--set", "population=6"])
    assert res.exit_code == 0 and yaml.safe_load(res.output)["population"] == 6
    res = runner.invoke(app, ["train", "Empty-6x6", "--set", "policy.bogus=1"])
    assert res.exit_code == 2 and "policy.bogus: unknown field" in res.output


def test_train_cli_trains_with_the_configured_network(tmp_path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "train", "Empty-6x6", "--steps", "256", "-b", "8", "--quiet", "--run-dir", str(out),
        "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "policy.trunk=mlp",
        "--set", "policy.encoding=onehot", "--set", "policy.dense_layers=2",
        "--set", "policy.hidden=16"])
    assert res.exit_code == 0, res.output
    sidecar = json.loads((out / "checkpoint" / "policy.json").read_text())
    policy = json.dumps(sidecar)
    assert '"encoding": "onehot"' in policy and '"dense_layers": 2' in policy
    # a registered method gets the options too, and records them
    out2 = tmp_path / "es"
    res = CliRunner().invoke(app, [
        "train", "Empty-6x6", "-m", "es", "--steps", "512", "-b", "8", "--quiet",
        "--run-dir", str(out2), "--set", "population=4", "--set", "policy.trunk=mlp",
        "--set", "policy.hidden=16"])
    assert res.exit_code == 0, res.output
    result = json.loads((out2 / "result.json").read_text())
    assert result["extra"]["options"]["population"] == 4
    assert result["extra"]["options"]["policy"]["hidden"] == 16
