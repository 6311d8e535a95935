"""The transformers backend, offline: a tiny random LM and a tokenizer trained inside the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("llguidance")

from autoworld.errors import GenerationError, SpecError  # noqa: E402
from autoworld.generator.base import Backend  # noqa: E402
from autoworld.generator.transformers_backend import (  # noqa: E402
    TransformersBackend,
    compact_schema,
    full_schema,
)
from autoworld.spec import parse_spec  # noqa: E402

CATALOGUE = Path(__file__).resolve().parents[2] / "envs" / "catalogue"
N_SAMPLES = 5
EOS = "<|endoftext|>"


def _corpus() -> list[str]:
    """A few KB of text including JSON specs, so BPE learns JSON-ish merges."""
    texts = []
    for path in sorted(CATALOGUE.glob("*.yaml"))[:12]:
        data = yaml.safe_load(path.read_text())
        texts.append(json.dumps(data))
        texts.append(json.dumps(data, separators=(",", ":")))
        texts.append(data.get("description", ""))
    texts.append("Design one world for the theme below. A slippery ice maze with keys and doors.")
    return texts


def build_tiny_model(out: Path) -> Path:
    """Train a byte-level BPE tokenizer and save it with a random 1-layer Llama into ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)
    fast.save_pretrained(out)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=32768, eos_token_id=fast.eos_token_id,
                         bos_token_id=fast.eos_token_id, pad_token_id=fast.eos_token_id)
    import torch

    torch.manual_seed(0)  # test-only: a reproducible random model
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-lm"))


def test_constrained_decoding_always_gives_valid_specs(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, max_new_tokens=200, grammar="compact")
    assert isinstance(backend, Backend)
    specs = []
    for seed in range(N_SAMPLES):
        prop = backend.propose("a slippery ice maze", seed=seed)
        assert prop.data is not None, prop.text
        specs.append(parse_spec(prop.data))  # raises SpecError if invalid
        assert prop.prompt_tokens > 0 and 0 < prop.completion_tokens <= 200
    assert len({s.canonical_json() for s in specs}) > 1  # the seeds do sample different worlds
    # same theme, seed and backend: the same spec
    again = backend.propose("a slippery ice maze", seed=0)
    assert parse_spec(again.data) == specs[0]


def test_unconstrained_decoding_is_not_valid(tiny_model_dir):
    """Negative control: without the grammar the same random model produces no valid spec."""
    # the same prompt as the constrained run (no schema in it), to compare like with like
    backend = TransformersBackend(tiny_model_dir, max_new_tokens=40, constrained=False,
                                  schema_in_prompt=False)
    valid = 0
    for seed in range(N_SAMPLES):
        prop = backend.propose("a slippery ice maze", seed=seed)
        try:
            parse_spec(prop.data)
        except SpecError:
            continue
        valid += 1
    assert valid == 0


def test_full_grammar_compiles_and_decodes_json(tiny_model_dir):
    """The full WorldSpec grammar compiles for this tokenizer; output is schema-shaped JSON."""
    schema = full_schema()
    assert schema["properties"]["transition"]["prefixItems"]
    backend = TransformersBackend(tiny_model_dir, max_new_tokens=8, grammar="full")
    prop = backend.propose("anything", seed=0)
    assert prop.completion_tokens <= 8 and prop.text.startswith("{")


def test_compact_schema_instances_are_worldspecs():
    schema = compact_schema()
    rewards = schema["properties"]["reward"]["items"]["properties"]["kind"]["enum"]
    for kind in rewards:
        parse_spec({"name": "A", "transition": [{"kind": "turn_forward"}],
                    "observation": [{"kind": "egocentric"}], "reward": [{"kind": kind}]})


def test_missing_model_folder_is_a_clean_error(tmp_path):
    with pytest.raises(GenerationError, match="no model folder"):
        TransformersBackend(tmp_path / "nope")


def test_unreadable_weights_are_a_clean_error(tiny_model_dir, tmp_path):
    import shutil

    from autoworld.generator.transformers_backend import load_causal_lm

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    transformers = pytest.importorskip("transformers")
    with pytest.raises(GenerationError, match=r"cannot load a causal LM .*git lfs pull"):
        load_causal_lm(transformers, str(broken), "cpu", GenerationError)


def test_a_prompt_past_the_models_context_is_a_clear_error(tiny_model_dir, tmp_path):
    import shutil

    short = tmp_path / "short"
    shutil.copytree(tiny_model_dir, short)
    cfg = json.loads((short / "config.json").read_text())
    cfg["max_position_embeddings"] = 64  # the generator's prompt is thousands of tokens
    (short / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GenerationError, match=r"the prompt is \d+ tokens and the model's "
                                              r"context is 64"):
        TransformersBackend(short, max_new_tokens=8).propose("a maze", seed=0)
