"""HR-NAS's lightweight transformer, as the original code defines it.

The feature map is resized to a fixed ``grid x grid`` (8x8) map, two standardised coordinate channels are
appended, and a 1x1 conv + BatchNorm turns the channels into ``tokens`` tokens, each the flattened grid (a 64-d
vector). One post-norm encoder layer (self-attention across tokens) and one decoder layer (learned queries
attending to the encoder output, with the residual on the *memory*, as in the original) follow; a 1x1 conv +
BatchNorm maps the tokens back to channels, and the result is upsampled to the block's output size.

Its cost does not depend on the input's height and width except for the two resizes, which is why it is
"lightweight". The token count is searchable: ``|gamma|`` of ``input_norm`` is each token's importance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import TRANSFORMER_FFN, TRANSFORMER_GRID

__all__ = ["TOKEN_UNITS", "LightweightTransformer", "TokenAttention", "TokenUnits", "coordinate_channels"]


@dataclass(frozen=True)
class TokenUnits:
    """The names of the tensors that hold a :class:`LightweightTransformer`'s tokens (the search's token units),
    relative to the transformer. Declared here, next to the attributes they name, and read from here by everything
    that addresses tokens by name (the search's penalty, selection and shrinking; deploy's BatchNorm folding), so
    renaming one of them changes this file only; tests/test_layers.py checks the names against every space."""

    project: str = "input_proj"  # channels -> tokens (its output rows are the tokens)
    gate_norm: str = "input_norm"  # |gamma| of this BatchNorm is each token's importance
    queries: str = "query_embed"  # one learned query per token
    back_project: str = "reverse_proj"  # tokens -> channels (its input columns are the tokens)
    back_norm: str = "reverse_norm"

    def gate(self, prefix: str) -> str:
        """The token gate of the transformer at module path ``prefix``."""
        return f"{prefix}.{self.gate_norm}.weight"

    def tensors(self) -> tuple[tuple[str, int], ...]:
        """The transformer's per-token tensors (relative to it), each with the dim that indexes its tokens."""
        norm = tuple((f"{self.gate_norm}.{k}", 0) for k in ("weight", "bias", "running_mean", "running_var"))
        return ((f"{self.project}.weight", 0), *norm, (f"{self.queries}.weight", 0), (f"{self.back_project}.weight", 1))


TOKEN_UNITS = TokenUnits()


def coordinate_channels(grid: int) -> torch.Tensor:
    """(1, 2, grid, grid): x (column) then y (row) coordinates, each standardised to mean 0 and std 1."""
    r = torch.arange(grid, dtype=torch.float32)
    r = (r - r.mean()) / r.std(unbiased=False)
    ys, xs = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xs, ys]).unsqueeze(0)


class TokenAttention(nn.Module):
    """Multi-head attention without projection biases (like ``nn.MultiheadAttention(bias=False)``).

    Parameter names match ``nn.MultiheadAttention`` (``in_proj_weight``, ``out_proj.weight``) so weights trained
    by the original code load unchanged.
    """

    def __init__(self, dim: int, num_heads: int = 1, attn_drop: float = 0.1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b, lq, d = query.shape
        lk = context.shape[1]
        h = self.num_heads
        q = F.linear(query, w_q).reshape(b, lq, h, d // h).transpose(1, 2)
        k = F.linear(context, w_k).reshape(b, lk, h, d // h).transpose(1, 2)
        v = F.linear(context, w_v).reshape(b, lk, h, d // h).transpose(1, 2)
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d))


class _PostNormLayer(nn.Module):
    """Shared parts of the encoder and decoder layers: attention, a ReLU feed-forward and two LayerNorms.

    Attribute names follow the original code (``linear1``, ``linear2``, ``norm1``...) so its weights map 1:1.
    """

    def __init__(self, dim: int, ffn_dim: int, drop: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, ffn_dim, bias=False)
        self.dropout = nn.Dropout(drop)
        self.linear2 = nn.Linear(ffn_dim, dim, bias=False)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(drop)
        self.dropout2 = nn.Dropout(drop)

    def _ffn_residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class EncoderLayer(_PostNormLayer):
    """Post-norm transformer encoder layer: ``LN(x + attn(x, x))``, then ``LN(x + ffn(x))``."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int = 1, drop: float = 0.1) -> None:
        super().__init__(dim, ffn_dim, drop)
        self.self_attn = TokenAttention(dim, num_heads, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x, x)))
        return self._ffn_residual(x)


class DecoderLayer(_PostNormLayer):
    """The original's decoder layer: ``LN(memory + attn(queries, memory))``, then ``LN(t + ffn(t))``.

    It has no self-attention over the queries, and its first residual adds the memory rather than the queries
    (so there are as many queries as tokens).
    """

    def __init__(self, dim: int, ffn_dim: int, num_heads: int = 1, drop: float = 0.1) -> None:
        super().__init__(dim, ffn_dim, drop)
        self.multihead_attn = TokenAttention(dim, num_heads, drop)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        t = self.norm1(memory + self.dropout1(self.multihead_attn(queries, memory)))
        return self._ffn_residual(t)


class LightweightTransformer(nn.Module):
    """Token transformer added to a block's output.

    Args:
        in_chs: channels of the block input.
        out_chs: channels of the block output (the back-projection's width).
        tokens: number of tokens (the searchable quantity).
        grid: side of the pooled map; each token is a ``grid * grid`` vector.
        ffn_dim: hidden width of the feed-forward layers.
        num_heads: attention heads.
        drop: dropout in attention and feed-forward layers.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        tokens: int,
        grid: int = TRANSFORMER_GRID,
        ffn_dim: int = TRANSFORMER_FFN,
        num_heads: int = 1,
        drop: float = 0.1,
    ) -> None:
        super().__init__()
        if tokens < 1:
            raise ValueError(f"a transformer needs at least one token, got {tokens}")
        dim = grid * grid
        self.tokens, self.grid = tokens, grid
        self.register_buffer("coords", coordinate_channels(grid), persistent=False)
        self.input_proj = nn.Conv2d(in_chs + 2, tokens, 1, bias=False)
        self.input_norm = nn.BatchNorm2d(tokens)
        self.encoder = EncoderLayer(dim, ffn_dim, num_heads, drop)
        self.query_embed = nn.Embedding(tokens, dim)
        self.decoder = DecoderLayer(dim, ffn_dim, num_heads, drop)
        self.reverse_proj = nn.Conv2d(tokens, out_chs, 1, bias=False)
        self.reverse_norm = nn.BatchNorm2d(out_chs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform for every matrix, unit/zero BatchNorms (the original's initialisation)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for bn in (self.input_norm, self.reverse_norm):
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b = x.shape[0]
        g = self.grid
        f = F.interpolate(x, size=(g, g), mode="bilinear", align_corners=False)
        f = torch.cat([f, self.coords.to(f.dtype).expand(b, -1, -1, -1)], dim=1)
        tokens = self.input_norm(self.input_proj(f)).flatten(2)  # (B, L, g*g)
        memory = self.encoder(tokens)
        queries = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        t = self.decoder(queries, memory).reshape(b, self.tokens, g, g)
        t = self.reverse_norm(self.reverse_proj(t))
        return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"tokens={self.tokens}, grid={self.grid}"
