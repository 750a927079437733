"""A small 1-D CNN encoder for multi-lead signals (ECG, EEG, accelerometers).

The encoder owns its preprocessing (per-record, per-lead standardisation), so that
evaluators can feed raw dataset items. It returns the mean-pooled embedding and the
per-time-step tokens of the last block.

Example:
    >>> import torch
    >>> enc = CNN1d(in_channels=12, embed_dim=64)
    >>> out = enc(torch.randn(4, 12, 500))
    >>> out.pooled.shape, out.tokens.shape
    (torch.Size([4, 64]), torch.Size([4, 63, 64]))
"""

from __future__ import annotations

from pydantic import PositiveInt
from selfsup import Encoder, EncoderOutput
from torch import Tensor, nn

__all__ = ["CNN1d"]


def _block(c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class CNN1d(Encoder):
    """Strided 1-D convolution blocks, then mean pooling over time.

    Args:
        in_channels: Leads (channels) of the input ``[B, in_channels, samples]``; a
            ``[B, samples]`` input is treated as one lead.
        width: Channels of the first block; doubled every block up to ``4 * width``.
        depth: Number of blocks; each halves the time resolution.
        embed_dim: Width of the embedding (a final 1x1 convolution).
        kernel_size: Kernel of every convolution (odd).
        standardize: Z-score each record and lead before the network.

    Raises:
        ValueError: ``depth < 1`` or an even ``kernel_size``.
    """

    modality = "ecg"

    def __init__(
        self,
        in_channels: PositiveInt = 12,
        width: PositiveInt = 32,
        depth: PositiveInt = 4,
        embed_dim: PositiveInt = 128,
        kernel_size: PositiveInt = 7,
        standardize: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"ecg:cnn1d: depth must be >= 1, got {depth}")
        if kernel_size % 2 == 0:
            raise ValueError(f"ecg:cnn1d: kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.standardize = standardize
        blocks, c_in = [], in_channels
        for i in range(depth):
            c_out = width * min(2**i, 4)
            blocks.append(_block(c_in, c_out, kernel_size, stride=2 if i > 0 else 1))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv1d(c_in, embed_dim, kernel_size=1)

    def _prepare(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ecg:cnn1d expects [B, {self.in_channels}, samples] signals, got "
                f"{tuple(x.shape)}; set encoder.params.in_channels to the number of leads"
            )
        x = x.float()
        if self.standardize:
            mean = x.mean(dim=-1, keepdim=True)
            std = x.std(dim=-1, keepdim=True).clamp_min(1e-6)
            x = (x - mean) / std
        return x

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode a batch of signals ``[B, leads, samples]``."""
        h = self.head(self.blocks(self._prepare(x)))  # [B, D, T]
        return EncoderOutput(pooled=h.mean(dim=-1), tokens=h.transpose(1, 2))
