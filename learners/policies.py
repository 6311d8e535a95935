"""Actor-critic policies for the grid family, built from an engine's observation spec.

Every learning method shares these networks. A policy reads the engine's observation dict
(tensors with a leading batch dim) and returns action logits (B, 7) and a value (B,):

- ``image`` (B, R, C) uint8 symbols (egocentric or full grid): a learned symbol embedding, then a
  small conv trunk (or an MLP over the flattened embedding);
- ``features`` (B, F) float32 vectors, when the world emits them, concatenated to the trunk;
- ``rgb`` (B, H, W, 3) uint8 pixels instead of symbols when ``PolicyConfig.pixels`` is set;
- an optional GRU core for partially observable worlds; its state is reset where an episode
  ended;
- optionally (``shared_trunk=False``) a second, separate encoder for the critic, so that the value
  loss does not shape the actor's features (the stable-baselines3 ``MlpPolicy`` layout).

Symbols enter as a learned embedding (``encoding="embed"``) or as a fixed one-hot
(``encoding="onehot"``); the dense layers use ReLU or tanh. Every linear and conv layer gets
orthogonal weights with gain sqrt(2) whatever the activation (as CleanRL and stable-baselines3
do), the policy head gain 0.01 and the value head gain 1, zero biases.

Example:
    >>> from autoworld.envs.catalogue import load_world
    >>> from autoworld.envs.grid.engine import GridEngine
    >>> eng = GridEngine(load_world("DoorKey-8x8"), num_envs=4)
    >>> policy = policy_from_spec(eng.observation_spec(), PolicyConfig())
    >>> logits, value, _ = policy(eng.reset())
    >>> tuple(logits.shape), tuple(value.shape)
    ((4, 7), (4,))
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from autoworld.errors import EngineError

NUM_ACTIONS = 7
NUM_SYMBOLS = 24  # autoworld.envs.grid.symbols.NUM_SYMBOLS (checked at build time)

ObsSpec = dict[str, tuple[tuple[int, ...], Any, float, float]]


class PolicyConfig(BaseModel):
    """Architecture of an actor-critic policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trunk: Literal["conv", "mlp"] = Field(
        "conv", description="Symbol-image trunk: 3x3 convolutions, or an MLP over the flattened "
        "symbol embedding (faster on CPU for small views).")
    embed_dim: int = Field(8, ge=1, le=64, description="Size of the learned symbol embedding.")
    channels: int = Field(32, ge=1, le=256, description="Channels of each conv layer.")
    hidden: int = Field(128, ge=8, le=2048, description="Width of the trunk's dense layers.")
    recurrent: bool = Field(False, description="Add a GRU core (for partial observability).")
    pixels: bool = Field(False, description="Read the 'rgb' observation instead of the symbols "
                         "(the world must emit 'rgb').")
    use_features: bool = Field(True, description="Concatenate the 'features' vector when the "
                               "world emits one.")
    encoding: Literal["embed", "onehot"] = Field(
        "embed", description="Symbols as a learned embedding of embed_dim, or a fixed one-hot "
        "over the symbol table (ignored with pixels).")
    activation: Literal["relu", "tanh"] = Field("relu", description="Activation of the dense "
                                                "layers (the conv layers keep ReLU).")
    dense_layers: int = Field(1, ge=1, le=4, description="Dense layers of width hidden after "
                              "the trunk.")
    shared_trunk: bool = Field(True, description="Actor and critic share one encoder; False "
                               "gives the critic its own (feed-forward policies only).")

    @model_validator(mode="after")
    def _separate_critic_is_feed_forward(self) -> PolicyConfig:
        if self.recurrent and not self.shared_trunk:
            raise ValueError("shared_trunk=False needs a feed-forward policy (recurrent=False)")
        return self


def spec_to_json(obs_spec: ObsSpec) -> dict[str, dict[str, Any]]:
    """A JSON-able copy of an observation spec (shapes as lists, dtypes as names)."""
    return {k: {"shape": list(shape), "dtype": str(dtype).replace("torch.", ""),
                "low": float(low), "high": float(high)}
            for k, (shape, dtype, low, high) in obs_spec.items()}


def spec_from_json(data: dict[str, dict[str, Any]]) -> ObsSpec:
    """Inverse of ``spec_to_json``."""
    return {k: (tuple(v["shape"]), getattr(torch, v["dtype"]), v["low"], v["high"])
            for k, v in data.items()}


def _layer_init(layer: nn.Module, gain: float = 2 ** 0.5) -> nn.Module:
    """Orthogonal weights, zero bias (the CleanRL initialisation)."""
    if isinstance(layer, nn.Linear | nn.Conv2d):
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class Encoder(nn.Module):
    """Observation -> (B, hidden): symbol embedding or one-hot (or pixels), trunk, the features
    vector, then ``dense_layers`` dense layers."""

    def __init__(self, obs_spec: ObsSpec, config: PolicyConfig, image_key: str,
                 features_dim: int) -> None:
        super().__init__()
        self.config = config
        self.image_key = image_key
        self.features_dim = features_dim
        shape = tuple(obs_spec[image_key][0])
        c = config.channels
        self.num_symbols = 0
        if config.pixels:
            h, w, ch = shape
            self.embed = None
            self.trunk = nn.Sequential(
                _layer_init(nn.Conv2d(ch, c, 4, stride=4)), nn.ReLU(),
                _layer_init(nn.Conv2d(c, c, 3, padding=1)), nn.ReLU(), nn.Flatten())
            flat = c * (h // 4) * (w // 4)
        else:
            self.num_symbols = max(NUM_SYMBOLS, int(obs_spec[image_key][3]) + 1)
            if config.encoding == "embed":
                self.embed = nn.Embedding(self.num_symbols, config.embed_dim)
                depth = config.embed_dim
            else:
                self.embed = None
                depth = self.num_symbols
            r, col = shape
            if config.trunk == "conv":
                self.trunk = nn.Sequential(
                    _layer_init(nn.Conv2d(depth, c, 3, padding=1)), nn.ReLU(),
                    _layer_init(nn.Conv2d(c, c, 3, padding=1)), nn.ReLU(), nn.Flatten())
                flat = c * r * col
            else:
                self.trunk = nn.Flatten()
                flat = depth * r * col
        act = _ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        width = flat + features_dim
        for _ in range(config.dense_layers):
            layers += [_layer_init(nn.Linear(width, config.hidden)), act()]
            width = config.hidden
        self.dense = nn.Sequential(*layers)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = obs[self.image_key]
        if self.embed is None and not self.config.pixels and self.config.trunk == "mlp":
            return self._onehot_mlp(x, obs)
        if self.config.pixels:
            x = x.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        else:
            if self.embed is not None:
                # index_select rather than nn.Embedding's call: the same values and gradients,
                # but its backward (index_add) is ~1.5x faster on CPU than embedding's dense
                # backward, a fifth of a PPO update's time with this trunk
                w = self.embed.weight
                x = w.index_select(0, x.reshape(-1).long()).reshape(*x.shape, w.shape[1])
            else:
                x = nn.functional.one_hot(x.long(), self.num_symbols).float()  # (B, R, C, S)
            if self.config.trunk == "conv":
                x = x.permute(0, 3, 1, 2)  # (B, E or S, R, C)
        x = self.trunk(x)
        if self.features_dim:
            x = torch.cat([x, obs["features"].float()], dim=1)
        return self.dense(x)

    def _onehot_mlp(self, x: torch.Tensor, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The first dense layer over a flattened one-hot, without building the one-hot: W @
        onehot is the sum over cells of W's column for (cell, symbol), an embedding-bag lookup
        (same weights, same result, a fraction of the work)."""
        first = self.dense[0]
        sym = x.long().reshape(x.shape[0], -1)  # (B, N) symbol per cell
        n = sym.shape[1]
        cols = n * self.num_symbols
        idx = sym + torch.arange(n, device=sym.device) * self.num_symbols  # column of each
        h = nn.functional.embedding_bag(idx, first.weight[:, :cols].t().contiguous(),
                                        mode="sum") + first.bias  # (B, hidden)
        if self.features_dim:
            h = h + nn.functional.linear(obs["features"].float(), first.weight[:, cols:])
        return self.dense[1:](h)


def _rename_flat_encoder_keys(state_dict: dict[str, Any], prefix: str, *_args: Any) -> None:
    """Policies saved before the encoder became a submodule kept ``embed.``, ``trunk.`` and
    ``dense.`` at the top level; load them into ``encoder.``."""
    for old in ("embed.", "trunk.", "dense."):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + "encoder." + key[len(prefix):]] = state_dict.pop(key)


class ActorCritic(nn.Module):
    """Encoder (shared, or one per head), policy head (B, 7) and value head (B,). See the module
    docstring."""

    def __init__(self, obs_spec: ObsSpec, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.obs_spec = dict(obs_spec)
        key = "rgb" if config.pixels else "image"
        if key not in obs_spec:
            raise EngineError(f"the world has no {key!r} observation (it emits "
                              f"{', '.join(obs_spec)}); "
                              + ("unset PolicyConfig.pixels" if config.pixels else ""))
        self.image_key = key
        self.features_dim = 0
        if config.use_features and "features" in obs_spec:
            self.features_dim = int(obs_spec["features"][0][0])
        self.encoder = Encoder(obs_spec, config, key, self.features_dim)
        self.critic_encoder = (None if config.shared_trunk
                               else Encoder(obs_spec, config, key, self.features_dim))
        self.gru = nn.GRUCell(config.hidden, config.hidden) if config.recurrent else None
        self.actor = _layer_init(nn.Linear(config.hidden, NUM_ACTIONS), 0.01)
        self.critic = _layer_init(nn.Linear(config.hidden, 1), 1.0)
        self._register_load_state_dict_pre_hook(_rename_flat_encoder_keys)

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor | None:
        """Zero recurrent state (B, hidden), or None for a feed-forward policy."""
        if self.gru is None:
            return None
        return torch.zeros(batch, self.config.hidden, device=device)

    # ------------------------------------------------------------------ forward
    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The (actor's) encoder output (B, hidden) before the recurrent core."""
        return self.encoder(obs)

    def _value(self, obs: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        """Value (B,) from the actor's features ``h``, or from the critic's own encoder."""
        if self.critic_encoder is not None:
            h = self.critic_encoder(obs)
        return self.critic(h).squeeze(-1)

    def forward(self, obs: dict[str, torch.Tensor], state: torch.Tensor | None = None,
                done: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits (B, 7), value (B,) and the next recurrent state.

        ``done`` (B,) bool marks envs whose previous episode ended, so their recurrent state is
        zeroed before this observation is read.
        """
        h = self.encode(obs)
        if self.gru is not None:
            if state is None:
                state = self.initial_state(h.shape[0], h.device)
            if done is not None:
                state = state * (~done).to(state.dtype)[:, None]
            state = self.gru(h, state)
            h = state
        return self.actor(h), self._value(obs, h), state

    def forward_sequence(self, obs: dict[str, torch.Tensor], state: torch.Tensor | None,
                         dones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (T, B, 7) and values (T, B) of a rollout segment: obs (T, B, ...), ``dones``
        (T, B) the reset flags fed to each step, ``state`` the recurrent state before step 0."""
        T, B = dones.shape
        flat = {k: v.reshape(T * B, *v.shape[2:]) for k, v in obs.items()}
        if self.gru is None:
            logits, values, _ = self.forward(flat)
            return logits.view(T, B, -1), values.view(T, B)
        h = self.encode(flat).view(T, B, -1)
        outs = []
        for t in range(T):  # a loop over time, not over envs
            state = state * (~dones[t]).to(state.dtype)[:, None]
            state = self.gru(h[t], state)
            outs.append(state)
        core = torch.stack(outs)  # (T, B, hidden)
        return self.actor(core), self.critic(core).squeeze(-1)


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None = None,
                   greedy: bool = False) -> torch.Tensor:
    """Actions (B,) int64 drawn from ``logits`` with the Gumbel-max trick, so that a seeded
    ``generator`` makes sampling reproducible on any device; ``greedy`` takes the argmax."""
    if greedy:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_(1e-10, 1.0 - 1e-7)))
    return (logits + gumbel).argmax(dim=-1)


def policy_from_spec(obs_spec: ObsSpec, config: PolicyConfig | None = None) -> ActorCritic:
    """An actor-critic network for an engine's ``observation_spec()``."""
    from autoworld.envs.grid.symbols import NUM_SYMBOLS as ENGINE_SYMBOLS

    if ENGINE_SYMBOLS > NUM_SYMBOLS:  # the embedding table must cover every symbol
        raise EngineError(f"policies know {NUM_SYMBOLS} symbols, the engine {ENGINE_SYMBOLS}")
    return ActorCritic(obs_spec, config or PolicyConfig())
