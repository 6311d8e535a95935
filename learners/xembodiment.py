"""Cross-embodiment policies for the arm family: one network for arms with 2 to 7 joints.

A policy reads the arm engine's observation dict (``autoworld.envs.arm``; per-joint tensors padded
to ``N_MAX`` joints with a mask) and outputs an action chunk of ``T`` end-effector deltas
(B, T, 3). Two trunks:

- ``mlp``: a padded MLP. The masked joint states, the mask, the end effector and the task features
  are concatenated with an *embodiment embedding* computed from the joint descriptions (a per-joint
  encoder, mean-pooled over the real joints), so an arm never seen in training still gets a
  meaningful embedding (zero-shot) instead of an unknown id.
- ``transformer``: one token per joint (its state and description), masked padding
  (``src_key_padding_mask``) and one task token (end effector and task features) whose output
  feeds the head (MetaMorph-style).

Two heads: ``mse`` regresses the chunk; ``mdn`` is a mixture of diagonal Gaussians over chunks
(multimodal: passing an obstacle left or right are two components, not their average). With
``per_embodiment_heads`` every training embodiment gets its own output layer (HPT-style), chosen
by matching the observed joint descriptions; a held-out arm uses the shared head, which is always
trained on every sample.

Example:
    >>> import torch
    >>> cfg = XPolicyConfig(arch="transformer", head="mdn", chunk=4)
    >>> policy = XPolicy(cfg)
    >>> obs = {"joint_state": torch.zeros(2, 7, 3), "joint_desc": torch.zeros(2, 7, 6),
    ...        "joint_mask": torch.tensor([[True] * 5 + [False] * 2] * 2),
    ...        "ee": torch.zeros(2, 3), "task": torch.zeros(2, 16)}
    >>> tuple(policy.act(obs).shape)
    (2, 4, 3)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autoworld.errors import AutoworldError

FORMAT = "autoworld-xpolicy/1"
OBS_KEYS = ("joint_state", "joint_desc", "joint_mask", "ee", "task")
_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 1.0


class PolicyShapeError(AutoworldError, ValueError):
    """An observation or chunk does not have the shapes the policy was built for."""


class XPolicyConfig(BaseModel):
    """Architecture of a cross-embodiment chunk policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: Literal["mlp", "transformer"] = Field("mlp", description="Trunk: padded MLP with an "
                                                "embodiment embedding, or per-joint tokens.")
    head: Literal["mse", "mdn"] = Field("mse", description="Output head: chunk regression (MSE) "
                                        "or a mixture density over chunks.")
    chunk: int = Field(8, ge=1, le=64, description="Action-chunk length T (steps).")
    hidden: int = Field(128, ge=8, le=2048, description="Width of the trunk's dense layers.")
    layers: int = Field(2, ge=1, le=8, description="Dense layers (mlp) or encoder layers "
                        "(transformer).")
    embed_dim: int = Field(32, ge=4, le=512, description="Embodiment-embedding size (mlp) or "
                           "token width (transformer).")
    attn_heads: int = Field(4, ge=1, le=16, description="Attention heads (transformer); must "
                            "divide embed_dim.")
    components: int = Field(4, ge=1, le=32, description="Mixture components (mdn head).")
    per_embodiment_heads: bool = Field(False, description="One output layer per training "
                                       "embodiment plus a shared one for unseen arms.")
    embodiments: tuple[str, ...] = Field((), description="Names of the embodiments that own a "
                                         "head (with per_embodiment_heads), in key order.")
    n_max: int = Field(7, ge=1, le=32, description="Padded joint count (envs.arm N_MAX).")
    desc_dim: int = Field(6, ge=1, le=64, description="Joint-description width "
                          "(envs.arm JOINT_DESC_DIM).")
    task_dim: int = Field(16, ge=1, le=256, description="Task-feature width (envs.arm TASK_DIM).")
    action_dim: int = Field(3, ge=1, le=8, description="Action width per step (ee_delta: 3).")

    def out_dim(self) -> int:
        """Width of one head's raw output."""
        flat = self.chunk * self.action_dim
        return flat if self.head == "mse" else self.components * (2 * flat + 1)


def _mlp(sizes: list[int], final_act: bool = True) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(nn.Linear(a, b))
        if final_act or i < len(sizes) - 2:
            mods.append(nn.GELU())
    return nn.Sequential(*mods)


def check_obs(obs: dict[str, torch.Tensor], cfg: XPolicyConfig) -> int:
    """Check the observation's keys and shapes against ``cfg``; returns the batch size."""
    missing = [k for k in OBS_KEYS if k not in obs]
    if missing:
        raise PolicyShapeError(f"observation lacks {missing}; an arm observation has "
                               f"{list(OBS_KEYS)}")
    B = obs["ee"].shape[0]
    want = {"joint_state": (B, cfg.n_max, 3), "joint_desc": (B, cfg.n_max, cfg.desc_dim),
            "joint_mask": (B, cfg.n_max), "ee": (B, 3), "task": (B, cfg.task_dim)}
    for k, shape in want.items():
        if tuple(obs[k].shape) != shape:
            raise PolicyShapeError(f"observation[{k!r}] has shape {tuple(obs[k].shape)}, the "
                                   f"policy expects {shape}; build the policy with the engine's "
                                   "N_MAX, JOINT_DESC_DIM and TASK_DIM")
    return B


def flat_obs(obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The observation as one float vector per env (B, N*3 + N + N*D + 3 + TASK_DIM), padded
    joints zeroed; what the MLP trunk and the action-rate model read."""
    mask = obs["joint_mask"].float()  # (B, N)
    js = obs["joint_state"].float() * mask[..., None]
    jd = obs["joint_desc"].float() * mask[..., None]
    return torch.cat([js.flatten(1), mask, jd.flatten(1), obs["ee"].float(),
                      obs["task"].float()], 1)


class XPolicy(nn.Module):
    """A cross-embodiment chunk policy (see the module docstring)."""

    def __init__(self, config: XPolicyConfig, embodiment_descs: torch.Tensor | None = None
                 ) -> None:
        super().__init__()
        self.config = cfg = config
        H, E, N = cfg.hidden, cfg.embed_dim, cfg.n_max
        if cfg.arch == "mlp":
            self.joint_encoder = _mlp([cfg.desc_dim, E, E])
            in_dim = N * 3 + N + 3 + cfg.task_dim + E
            self.trunk = _mlp([in_dim] + [H] * cfg.layers)
        else:
            if E % cfg.attn_heads:
                raise PolicyShapeError(f"embed_dim {E} is not a multiple of attn_heads "
                                       f"{cfg.attn_heads}; change one of them")
            self.joint_token = nn.Linear(3 + cfg.desc_dim, E)
            self.task_token = nn.Linear(3 + cfg.task_dim, E)
            self.type_embed = nn.Parameter(torch.zeros(2, E))
            layer = nn.TransformerEncoderLayer(E, cfg.attn_heads, dim_feedforward=2 * E,
                                               dropout=0.0, batch_first=True, norm_first=True,
                                               activation="gelu")
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            self.trunk = nn.Sequential(nn.LayerNorm(E), nn.Linear(E, H), nn.GELU())
        K = len(cfg.embodiments) if cfg.per_embodiment_heads else 0
        out = cfg.out_dim()
        # head k < K belongs to embodiment k; head K is the shared one (unseen arms)
        self.head_w = nn.Parameter(torch.randn(K + 1, H, out) / math.sqrt(H))
        self.head_b = nn.Parameter(torch.zeros(K + 1, out))
        if cfg.head == "mdn":
            # spread the components' means over the action range and start them narrow, so
            # that they split between modes instead of all settling on the average
            M, flat = cfg.components, cfg.chunk * cfg.action_dim
            with torch.no_grad():
                self.head_b[:, M:M + M * flat].uniform_(-0.5, 0.5)
                self.head_b[:, M + M * flat:].fill_(-1.5)
        keys = torch.zeros(K, N * cfg.desc_dim)
        if K and embodiment_descs is not None:
            if tuple(embodiment_descs.shape) != (K, N, cfg.desc_dim):
                raise PolicyShapeError(f"embodiment_descs has shape "
                                       f"{tuple(embodiment_descs.shape)}, expected "
                                       f"{(K, N, cfg.desc_dim)} (one joint_desc per name in "
                                       "config.embodiments)")
            keys = embodiment_descs.float().reshape(K, -1).clone()
        self.register_buffer("head_keys", keys)  # (K, N*D) joint descriptions owning a head

    # ------------------------------------------------------------------ trunk and heads
    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The trunk's output (B, hidden)."""
        check_obs(obs, self.config)
        mask = obs["joint_mask"].bool()
        if self.config.arch == "mlp":
            m = mask.float()[..., None]
            per_joint = self.joint_encoder(obs["joint_desc"].float())  # (B, N, E)
            emb = (per_joint * m).sum(1) / m.sum(1).clamp_min(1.0)
            js = obs["joint_state"].float() * m
            return self.trunk(torch.cat([js.flatten(1), m[..., 0], obs["ee"].float(),
                                         obs["task"].float(), emb], 1))
        joints = self.joint_token(torch.cat([obs["joint_state"].float(),
                                             obs["joint_desc"].float()], -1))
        task = self.task_token(torch.cat([obs["ee"].float(), obs["task"].float()], -1))
        tokens = torch.cat([task[:, None] + self.type_embed[0],
                            joints + self.type_embed[1]], 1)  # (B, 1+N, E)
        pad = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], 1)  # True = ignored
        h = self.encoder(tokens, src_key_padding_mask=pad)
        return self.trunk(h[:, 0])

    def head_index(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) long: the head of each env (its embodiment's, or the shared one)."""
        K = self.head_keys.shape[0]
        B = obs["ee"].shape[0]
        if K == 0:
            return torch.zeros(B, dtype=torch.long, device=obs["ee"].device)
        desc = obs["joint_desc"].float().reshape(B, 1, -1)
        match = ((desc - self.head_keys[None]).abs().amax(-1) < 1e-5)  # (B, K)
        first = torch.where(match.any(1), match.float().argmax(1),
                            torch.full((B,), K, device=desc.device))
        return first.long()

    def forward(self, obs: dict[str, torch.Tensor], shared: bool = False) -> torch.Tensor:
        """Raw head output (B, out_dim); ``shared`` forces the shared head."""
        h = self.features(obs)
        idx = (torch.full((h.shape[0],), self.head_w.shape[0] - 1, device=h.device)
               if shared else self.head_index(obs))
        all_out = torch.einsum("bh,kho->bko", h, self.head_w) + self.head_b  # (B, K+1, out)
        return all_out.gather(1, idx[:, None, None].expand(-1, 1, all_out.shape[-1]))[:, 0]

    def _split(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MDN output as (mixture logits (B, M), means (B, M, T, A), log-stds (B, M, T, A))."""
        cfg = self.config
        M, T, A = cfg.components, cfg.chunk, cfg.action_dim
        logits = raw[:, :M]
        mu = raw[:, M:M + M * T * A].reshape(-1, M, T, A)
        log_std = raw[:, M + M * T * A:].reshape(-1, M, T, A)
        return logits, mu, log_std.clamp(_LOG_STD_MIN, _LOG_STD_MAX)

    # ------------------------------------------------------------------ training and acting
    def loss(self, obs: dict[str, torch.Tensor], chunk: torch.Tensor) -> torch.Tensor:
        """Mean training loss for target chunks (B, T, A): MSE, or the mixture's negative
        log-likelihood per action dimension. With per-embodiment heads, the shared head's loss
        is added so that unseen arms get a trained head."""
        cfg = self.config
        want = (obs["ee"].shape[0], cfg.chunk, cfg.action_dim)
        if tuple(chunk.shape) != want:
            raise PolicyShapeError(f"target chunk has shape {tuple(chunk.shape)}, expected "
                                   f"{want}; build chunks with the policy's chunk length")
        total = self._loss(self(obs), chunk)
        if self.head_keys.shape[0]:
            total = total + self._loss(self(obs, shared=True), chunk)
        return total

    def _loss(self, raw: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        if self.config.head == "mse":
            return F.mse_loss(raw.reshape(chunk.shape), chunk)
        logits, mu, log_std = self._split(raw)
        z = (chunk[:, None] - mu) / log_std.exp()
        logp = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum((2, 3))  # (B, M)
        nll = -torch.logsumexp(F.log_softmax(logits, -1) + logp, -1)
        return nll.mean() / (self.config.chunk * self.config.action_dim)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], greedy: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """An action chunk (B, T, A) in [-1, 1]. The mixture head picks one component per env
        (sampled by weight, or the heaviest with ``greedy``) and returns its mean, so a sampled
        chunk follows one mode instead of blending two."""
        cfg = self.config
        raw = self(obs)
        if cfg.head == "mse":
            out = raw.reshape(-1, cfg.chunk, cfg.action_dim)
        else:
            logits, mu, _ = self._split(raw)
            if greedy:
                k = logits.argmax(-1)
            else:
                k = torch.multinomial(F.softmax(logits, -1), 1, generator=generator)[:, 0]
            out = mu[torch.arange(mu.shape[0], device=mu.device), k]
        return out.clamp(-1.0, 1.0)


# ====================================================================== checkpoints
def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_xpolicy(policy: XPolicy, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path.safetensors`` (weights) and ``path.json`` (format, config, versions and
    ``extra``), each atomically; returns the weights path."""
    from safetensors.torch import save

    from autoworld.atomic import atomic_write
    from autoworld.learners.checkpoint import versions

    weights, sidecar = _paths(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    atomic_write(weights, save(tensors))
    meta = {"format": FORMAT, "policy_config": policy.config.model_dump(mode="json"),
            "versions": versions(), **(extra or {})}
    atomic_write(sidecar, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return weights


def load_xpolicy(path: str | Path, device: str | torch.device = "cpu"
                 ) -> tuple[XPolicy, dict[str, Any]]:
    """Rebuild a policy written by ``save_xpolicy``; returns it with its sidecar."""
    from safetensors.torch import load

    weights, sidecar = _paths(path)
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise PolicyShapeError(f"{sidecar}: format {meta.get('format')!r} is not {FORMAT!r}; "
                               "load it with the loader of its own format")
    policy = XPolicy(XPolicyConfig(**meta["policy_config"]))
    policy.load_state_dict(load(weights.read_bytes()))
    return policy.to(device), meta
