"""SASRec's pre-LN Transformer block, able to return its attention weights (for explanations)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fusionrec.models.sasrec import Block as SASRecBlock


class Block(SASRecBlock):
    """``x + attn(ln(x))``, then ``x + ffn(ln(x))`` (the same parameters as SASRec's block)."""

    def forward(self, x: torch.Tensor, causal: bool, weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        """x (B, L, H) -> (B, L, H), and (B, heads, L, L) attention weights when ``weights``."""
        b, length, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        att = None
        if weights:
            logits = q @ k.transpose(-1, -2) / (h // self.heads) ** 0.5  # (B, heads, L, L)
            if causal:
                logits = logits.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf"))
            att = logits.softmax(-1)
            a = att @ v
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, h)))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x))))), att
