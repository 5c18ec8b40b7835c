"""The pre-norm transformer block both learned models stack: multi-head
attention with an additive bias (where the tree enters), then an MLP."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PreNormBlock"]


class PreNormBlock(nn.Module):
    """``x + attention(norm(x))``, then ``x + mlp(norm(x))`` (SiLU), with the
    attention scores shifted by a bias the caller builds (``-inf`` where a
    pair may not attend). ``biases`` are the parameters that bias comes
    from; they are registered right after the attention's output map, so
    parameter order (and with it optimiser state) stays fixed.

    Example:
        >>> import torch
        >>> from fastkin.learned import PreNormBlock
        >>> block = PreNormBlock(width=8, heads=2, expansion=2, biases={})
        >>> block.attend(torch.zeros(1, 3, 8), torch.zeros(1, 2, 3, 3)).shape
        torch.Size([1, 3, 8])
    """

    def __init__(self, width: int, heads: int, expansion: int, biases: dict) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        for name, value in biases.items():
            setattr(self, name, value)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, expansion * width), nn.SiLU(), nn.Linear(expansion * width, width))

    def attend(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The block on tokens ``x (B, J, width)`` with scores biased by
        ``bias``, broadcastable to ``(B, heads, J, J)``."""
        b, j, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, j, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.out(attended.transpose(1, 2).reshape(b, j, w))
        return x + self.mlp(self.norm2(x))
