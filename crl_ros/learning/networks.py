"""Network building blocks shared by every agent (see docs/algorithm.md).

- `ConvEncoder`: the paper's 3-layer CNN, LayerNorm over (C, H, W) after each conv.
- `MLP`: width x depth ReLU layers, LayerNorm on hidden layers 1..depth-1 (the critics) or
  on all of them (the policy). It is an *ensemble* of E independent MLPs whose weights are
  stacked ([E, in, out]) so twin critics cost one batched matmul per layer instead of two
  separate networks.
- `EnsembleLayerNorm`: the MLPs' LayerNorm, either the one the authors' critic MLP uses (bias,
  no gain, unbiased std + 1e-6) or torch's affine one, which the authors' policy MLP uses; one
  switch per network (`layer_norm_kind` for the critics, `policy_layer_norm_kind`).
- `ContrastiveCritic`: one encoder for observations and goals ("late fusion") feeding E
  (phi, psi) pairs; logits = phi(s, a) . psi(g).
- `GaussianPolicy`: observation and goal stacked channel-wise ("early fusion"), fixed std.
- `GoalConditionedValue`: early-fusion V(s, g) / Q(s, a, g) ensemble for GC-IQL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

RELU_GAIN = math.sqrt(2.0)  # nn.init.calculate_gain("relu")
AUTHORS_LN_EPS = 1e-6  # added to the unbiased std by the authors' LayerNorm
POLICY_INIT_BOUND = 1e-3  # the authors' policy: hidden and head weights and biases uniform in +-this


@dataclass
class NetworkConfig:
    """Architecture switches shared by all agents (the paper's architecture ablations)."""
    encoder_channels: tuple[int, ...] = (32, 64, 64)
    encoder_kernels: tuple[int, ...] = (8, 4, 3)
    encoder_strides: tuple[int, ...] = (4, 2, 1)
    encoder_paddings: tuple[int, ...] = (2, 1, 1)
    hidden_width: int = 1024
    hidden_depth: int = 4
    layer_norm: bool = True  # in the encoder (over C, H, W) and in the MLPs
    # The MLP LayerNorm, one switch per network (the conv encoders always use torch's):
    # "authors": a learnable bias, no gain, (x - mean) / (unbiased std + 1e-6) + bias;
    # "torch": torch's LayerNorm (learnable gain and bias, biased std, eps 1e-5 inside the sqrt).
    # The authors' critic MLP uses the first (so the critic heads here, and GC-IQL's value and
    # Q heads), their policy (a CNN with fc_normalization_type 'layer') torch's nn.LayerNorm.
    layer_norm_kind: Literal["authors", "torch"] = "authors"
    policy_layer_norm_kind: Literal["authors", "torch"] = "torch"
    # The policy MLP: LayerNorm after ALL its hidden layers (the authors'); false: all but the
    # last, like the critic MLPs (crl_ros before this switch)
    policy_layer_norm_all: bool = True
    # The policy MLP's init: "authors": every hidden layer's weights and biases and the mean
    # head's weight and bias uniform in [-1e-3, 1e-3]; "xavier": hidden layers Xavier-uniform
    # (ReLU gain), biases 0, head weight uniform in [-1e-3, 1e-3]. Conv layers: Xavier either way.
    policy_init: Literal["authors", "xavier"] = "authors"

    def __post_init__(self) -> None:
        n = len(self.encoder_channels)
        if not (len(self.encoder_kernels) == len(self.encoder_strides) == len(self.encoder_paddings) == n):
            raise ValueError("encoder_channels, encoder_kernels, encoder_strides and encoder_paddings "
                             f"must have the same length, got {n}, {len(self.encoder_kernels)}, "
                             f"{len(self.encoder_strides)}, {len(self.encoder_paddings)}")
        if self.hidden_width < 1 or self.hidden_depth < 0:
            raise ValueError(f"hidden_width must be >= 1 and hidden_depth >= 0, got "
                             f"{self.hidden_width} and {self.hidden_depth}")


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, C] -> float [B, C, H, W] in [0, 1].

    The permute is free and leaves the tensor in channels_last memory order, which the
    conv kernels on both CPU (oneDNN) and CUDA (cuDNN) prefer.
    """
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def xavier_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int, gain: float) -> None:
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class ConvEncoder(nn.Module):
    """Conv -> [LayerNorm(C, H, W)] -> ReLU per layer, flattened; no FC layer."""

    def __init__(self, image_size: tuple[int, int], in_channels: int, cfg: NetworkConfig):
        super().__init__()
        height, width = image_size
        channels = in_channels
        layers: list[nn.Module] = []
        for out_channels, kernel, stride, padding in zip(cfg.encoder_channels, cfg.encoder_kernels,
                                                         cfg.encoder_strides, cfg.encoder_paddings):
            conv = nn.Conv2d(channels, out_channels, kernel, stride, padding)
            xavier_uniform_(conv.weight, channels * kernel * kernel, out_channels * kernel * kernel, RELU_GAIN)
            nn.init.zeros_(conv.bias)
            height = (height + 2 * padding - kernel) // stride + 1
            width = (width + 2 * padding - kernel) // stride + 1
            if height < 1 or width < 1:
                raise ValueError(f"image of {image_size} is too small for the encoder "
                                 f"(channels {cfg.encoder_channels}, kernels {cfg.encoder_kernels}, "
                                 f"strides {cfg.encoder_strides})")
            layers.append(conv)
            if cfg.layer_norm:
                layers.append(nn.LayerNorm([out_channels, height, width]))
            layers.append(nn.ReLU(inplace=True))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.output_dim = channels * height * width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images).flatten(1)


class EnsembleLinear(nn.Module):
    """E independent linear layers: weight [in, E, out], bias [E, 1, out].

    Stored input-major so a batch shared by all members (the first layer) is ONE plain GEMM
    against a free [in, E * out] view; member-wise inputs use a batched matmul on the
    [E, in, out] view.
    """

    def __init__(self, in_dim: int, out_dim: int, ensemble_size: int, gain: float = 1.0):
        super().__init__()
        self.in_dim, self.out_dim, self.ensemble_size = in_dim, out_dim, ensemble_size
        self.weight = nn.Parameter(torch.empty(in_dim, ensemble_size, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_dim))
        xavier_uniform_(self.weight, in_dim, out_dim, gain)

    def member_weight(self, member: int) -> torch.Tensor:
        """[in, out] weight of one ensemble member."""
        return self.weight[:, member]

    def forward(self, x: torch.Tensor, detach_params: bool = False, in_features: slice = slice(None),
                add_bias: bool = True) -> torch.Tensor:
        """x: [B, in] shared by all members, or [E, B, in]; returns [E, B, out].

        `in_features` restricts the layer to a slice of its inputs (x holds only those) and
        `add_bias=False` leaves the bias out, so callers can compute a shared part of the
        pre-activation once and add the rest later.
        """
        weight = self.weight[in_features]
        bias = self.bias
        if detach_params:
            weight, bias = weight.detach(), bias.detach()
        if x.dim() == 2:
            out = (x @ weight.flatten(1)).view(x.shape[0], self.ensemble_size, self.out_dim).transpose(0, 1)
            return out + bias if add_bias else out
        weight = weight.transpose(0, 1)
        return torch.baddbmm(bias, x, weight) if add_bias else torch.bmm(x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dim with a separate learnable transform per ensemble member.

    ``kind="authors"``: (x - mean) / (std + 1e-6) + bias, std the unbiased (n - 1) one, no
    gain (the authors' critic MLP); ``kind="torch"``: ``F.layer_norm`` (biased variance, eps
    1e-5 inside the sqrt) times a gain plus a bias, as ``nn.LayerNorm`` (the authors' policy). Both compute in fp32 under bf16 autocast.
    """

    def __init__(self, dim: int, ensemble_size: int, kind: str = "authors"):
        super().__init__()
        if kind not in ("authors", "torch"):
            raise ValueError(f"layer norm kind must be 'authors' or 'torch', got {kind!r}")
        self.dim, self.kind = dim, kind
        self._unbiased_scale = 1.0 / math.sqrt(max(dim - 1, 1))  # ||x - mean|| -> unbiased std
        if kind == "torch":
            self.weight = nn.Parameter(torch.ones(ensemble_size, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, dim))

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        bias = self.bias.detach() if detach_params else self.bias
        if self.kind == "authors":
            # (x - mean) / (unbiased std + eps) + bias; a norm and a reciprocal are several times
            # faster on CPU (forward and backward) than torch.std_mean and a division
            centred = x.float()
            centred = centred - centred.mean(-1, keepdim=True)
            std = torch.linalg.vector_norm(centred, dim=-1, keepdim=True) * self._unbiased_scale
            return torch.addcmul(bias, centred, (std + AUTHORS_LN_EPS).reciprocal())
        weight = self.weight.detach() if detach_params else self.weight
        return torch.addcmul(bias, F.layer_norm(x, (self.dim,)), weight)

    def extra_repr(self) -> str:
        return f"{self.dim}, kind={self.kind}"


class MLP(nn.Module):
    """An ensemble of E MLPs: `depth` hidden ReLU layers of `width`, LayerNorm on layers
    1..depth-1 (not the last hidden layer, as the authors' critics), or on all of them with
    `norm_last_hidden` (the authors' policy); linear output.

    Hidden layers use Xavier-uniform with ReLU gain; the output layer Xavier with gain 1
    unless the caller re-initialises it (cold init, small policy head, `init_hidden_uniform_`).
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int, layer_norm: bool,
                 ensemble_size: int = 1, layer_norm_kind: str = "authors", norm_last_hidden: bool = False):
        super().__init__()
        dims = [in_dim] + [width] * depth
        self.hidden = nn.ModuleList(EnsembleLinear(dims[i], dims[i + 1], ensemble_size, RELU_GAIN)
                                    for i in range(depth))
        num_norms = (depth if norm_last_hidden else max(depth - 1, 0)) if layer_norm else 0
        self.norms = nn.ModuleList(EnsembleLayerNorm(width, ensemble_size, layer_norm_kind)
                                   for _ in range(num_norms))
        self.output = EnsembleLinear(dims[-1], out_dim, ensemble_size)

    @property
    def first_layer(self) -> EnsembleLinear:
        return self.hidden[0] if len(self.hidden) else self.output

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """x: [B, in] or [E, B, in] -> [E, B, out]. `detach_params` lets a loss backpropagate
        to the *input* (e.g. the actor's action) without giving this network gradients."""
        return self.forward_from_first_layer(self.first_layer(x, detach_params), detach_params)

    def forward_from_first_layer(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """Continue from the first layer's output (pre-activation) [E, B, width]."""
        if not len(self.hidden):
            return x
        for i, layer in enumerate(self.hidden):
            if i > 0:
                x = layer(x, detach_params)
            if i < len(self.norms):
                x = self.norms[i](x, detach_params)
            # In place is safe: neither a linear layer nor the norm's affine needs its output.
            x = F.relu(x, inplace=True)
        return self.output(x, detach_params)

    def init_output_uniform_(self, bound: float, bias: bool = False) -> None:
        """Output weight uniform in [-bound, bound]; its bias too with `bias`, else 0."""
        with torch.no_grad():
            self.output.weight.uniform_(-bound, bound)
            if bias:
                self.output.bias.uniform_(-bound, bound)
            else:
                self.output.bias.zero_()

    def init_hidden_uniform_(self, bound: float) -> None:
        """Every hidden layer's weight and bias uniform in [-bound, bound]."""
        with torch.no_grad():
            for layer in self.hidden:
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)


def pairwise_logits(sa_repr: torch.Tensor, goal_repr: torch.Tensor) -> torch.Tensor:
    """[E, B, R] x [E, B, R] -> [E, B, B]: logit of every (state-action i, goal j) pair."""
    return torch.bmm(sa_repr, goal_repr.transpose(1, 2))


def paired_logits(sa_repr: torch.Tensor, goal_repr: torch.Tensor) -> torch.Tensor:
    """[E, B, R] x [E, B, R] -> [E, B]: logit of (state-action i, goal i) only."""
    return (sa_repr * goal_repr).sum(-1)


class ContrastiveCritic(nn.Module):
    """E critics f_e(s, a, g) = phi_e(enc(s), a) . psi_e(enc(g)) sharing one image encoder."""

    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, cfg: NetworkConfig,
                 repr_dim: int, num_critics: int, cold_init: bool):
        super().__init__()
        height, width, channels = image_shape
        self.encoder = ConvEncoder((height, width), channels, cfg)
        dim = self.encoder.output_dim
        self.sa_head = MLP(dim + action_dim, repr_dim, cfg.hidden_width, cfg.hidden_depth,
                           cfg.layer_norm, num_critics, cfg.layer_norm_kind)
        self.goal_head = MLP(dim, repr_dim, cfg.hidden_width, cfg.hidden_depth, cfg.layer_norm, num_critics,
                             cfg.layer_norm_kind)
        if cold_init:
            # Near-zero logits at the start keep the early contrastive loss well conditioned.
            self.sa_head.init_output_uniform_(1e-12)
            self.goal_head.init_output_uniform_(1e-12)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def obs_features(self, obs_embedding: torch.Tensor) -> torch.Tensor:
        """The observation's share of phi's first layer, [E, B, width] (no bias).

        It is computed once per batch and reused for every action phi is evaluated at (the
        data action for the critic, the policy's action for the actor): the action's share
        is a tiny [A, width] product.
        """
        return self.sa_head.first_layer(obs_embedding, in_features=slice(0, self.encoder.output_dim),
                                        add_bias=False)

    def sa_repr(self, obs_features: torch.Tensor, actions: torch.Tensor,
                detach_params: bool = False) -> torch.Tensor:
        """phi(s, a) [E, B, R] from `obs_features(enc(s))` and actions [B, A]."""
        action_share = self.sa_head.first_layer(actions.to(obs_features.dtype), detach_params,
                                                in_features=slice(self.encoder.output_dim, None))
        return self.sa_head.forward_from_first_layer(obs_features + action_share, detach_params)

    def goal_repr(self, goal_embedding: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        return self.goal_head(goal_embedding, detach_params)


def gaussian_log_prob(mean: torch.Tensor, std: float, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, std^2 I) summed over action dims -> [B]."""
    z = (actions - mean) / std
    return -(0.5 * z.pow(2) + math.log(std) + 0.5 * math.log(2 * math.pi)).sum(-1)


class GaussianPolicy(nn.Module):
    """pi(a | s, g) = N(mean(s, g), std^2): own CNN on obs and goal stacked channel-wise.

    The mean MLP follows `policy_layer_norm_kind`, `policy_layer_norm_all` and `policy_init`
    (docs/algorithm.md)."""

    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, cfg: NetworkConfig, std: float):
        super().__init__()
        height, width, channels = image_shape
        self.std = std
        self.encoder = ConvEncoder((height, width), 2 * channels, cfg)
        self.mean_head = MLP(self.encoder.output_dim, action_dim, cfg.hidden_width, cfg.hidden_depth,
                             cfg.layer_norm, layer_norm_kind=cfg.policy_layer_norm_kind,
                             norm_last_hidden=cfg.policy_layer_norm_all)
        if cfg.policy_init == "authors":
            self.mean_head.init_hidden_uniform_(POLICY_INIT_BOUND)
            self.mean_head.init_output_uniform_(POLICY_INIT_BOUND, bias=True)
        else:
            self.mean_head.init_output_uniform_(POLICY_INIT_BOUND)

    def forward(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Float images [B, C, H, W] -> action mean [B, A]."""
        return self.mean_head(self.encoder(torch.cat([obs, goal], 1)))[0]


class GoalConditionedValue(nn.Module):
    """E heads on an early-fusion CNN: V(s, g) (action_dim 0) or Q(s, a, g) -> [E, B]."""

    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, cfg: NetworkConfig,
                 ensemble_size: int):
        super().__init__()
        height, width, channels = image_shape
        self.encoder = ConvEncoder((height, width), 2 * channels, cfg)
        self.head = MLP(self.encoder.output_dim + action_dim, 1, cfg.hidden_width, cfg.hidden_depth,
                        cfg.layer_norm, ensemble_size, cfg.layer_norm_kind)

    def forward(self, obs: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        features = self.encoder(torch.cat([obs, goal], 1))
        if actions is not None:
            features = torch.cat([features, actions.to(features.dtype)], -1)
        return self.head(features)[..., 0]


@torch.no_grad()
def soft_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online, as one fused multi-tensor op."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
