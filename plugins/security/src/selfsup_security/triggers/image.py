"""Image triggers: CTRL (a frequency-domain trigger) and a patch (SSL-Backdoor style).

**CTRL** (Li et al., "An Embarrassingly Simple Backdoor Attack on Self-supervised
Learning", ICCV 2023) follows the reference code (github.com/meet-cjli/CTRL,
``utils/frequency.py: PoisonFre.Poison_Frequency_Diff``): the image on the 0-255 scale
is converted RGB -> YUV, cut into ``window x window`` blocks, each block transformed by
an orthonormal 2-D DCT-II, ``magnitude`` added at the diagonal positions
``(p, p)`` of every block for each ``p`` in ``positions`` (the reference's
``--trigger_position 15 31`` for ``--window_size 32``, i.e. ``window//2 - 1`` and
``window - 1``) in the U and V channels (``--channel 1 2``), inverse DCT, YUV -> RGB,
divided by 255 and clamped to ``[0, 1]``. The CIFAR-10 defaults are magnitude 100 and a
32-pixel window (the whole image).

Two deliberate differences from the reference:

* YUV -> RGB uses the exact inverse of the RGB -> YUV matrix (kornia, which the
  reference calls, uses rounded inverse coefficients, so there a zero magnitude is
  not exactly the identity).
* **Grayscale images** (one channel, e.g. digits, Fashion-MNIST) have no U and V: the
  magnitude is added at the same positions of the one channel. The paper only
  evaluates colour images; this is our extension, and it makes the trigger a visible
  (if faint) luminance pattern instead of a chroma one.

The DCT is done with a precomputed orthonormal DCT-II matrix ``D`` (``Y = D X D^T`` per
block), batched over images, channels and blocks.

**Patch** (Saha et al., "Backdoor Attacks on Self-Supervised Learning", CVPR 2022):
a small fixed square pattern pasted on the image, at a random position per item (the
paper's choice) or a fixed corner.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 32, 32)
    >>> y = CTRL(magnitude=100).stamp(x, torch.Generator().manual_seed(0))
    >>> y.shape, bool(y.min() >= 0 and y.max() <= 1)
    (torch.Size([2, 3, 32, 32]), True)
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import Tensor

from selfsup_security.triggers.base import ItemTrigger

__all__ = ["CTRL", "Patch", "block_dct2", "block_idct2", "dct_matrix", "rgb_to_yuv", "yuv_to_rgb"]

#: RGB -> YUV (BT.601 analogue YUV, the coefficients of kornia.color.rgb_to_yuv).
_RGB_TO_YUV = (
    (0.299, 0.587, 0.114),
    (-0.147, -0.289, 0.436),
    (0.615, -0.515, -0.100),
)


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` of size ``n``: ``dct(x) = D @ x``, ``D^-1 = D^T``.

    ``D[k, i] = s_k cos(pi (2 i + 1) k / (2 n))`` with ``s_0 = sqrt(1/n)``,
    ``s_k = sqrt(2/n)`` (scipy's ``dct(..., type=2, norm="ortho")``).
    """
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def _blocks(x: Tensor, window: int) -> Tensor:
    """``[..., H, W] -> [..., H/w, W/w, w, w]``."""
    *lead, h, w = x.shape
    x = x.reshape(*lead, h // window, window, w // window, window)
    return x.transpose(-3, -2)


def _unblocks(x: Tensor) -> Tensor:
    """Inverse of :func:`_blocks`."""
    *lead, nh, nw, wh, ww = x.shape
    return x.transpose(-3, -2).reshape(*lead, nh * wh, nw * ww)


def _check_window(shape: tuple[int, ...], window: int) -> None:
    h, w = shape[-2], shape[-1]
    if h % window or w % window:
        raise ValueError(
            f"CTRL: window_size={window} does not divide the image size {h}x{w}; set "
            "security:ctrl's window_size to a divisor of both sides (the reference uses the "
            "whole image, 32, on CIFAR-10)"
        )


def block_dct2(x: Tensor, window: int) -> Tensor:
    """Orthonormal 2-D DCT-II of every ``window x window`` block of ``x [..., H, W]``."""
    _check_window(tuple(x.shape), window)
    d = dct_matrix(window, x.dtype).to(x.device)
    return _unblocks(d @ _blocks(x, window) @ d.T)


def block_idct2(x: Tensor, window: int) -> Tensor:
    """Inverse of :func:`block_dct2`."""
    _check_window(tuple(x.shape), window)
    d = dct_matrix(window, x.dtype).to(x.device)
    return _unblocks(d.T @ _blocks(x, window) @ d)


def rgb_to_yuv(x: Tensor) -> Tensor:
    """RGB ``[..., 3, H, W]`` to YUV (any scale: the map is linear)."""
    m = torch.tensor(_RGB_TO_YUV, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def yuv_to_rgb(x: Tensor) -> Tensor:
    """YUV ``[..., 3, H, W]`` back to RGB, with the exact inverse of :func:`rgb_to_yuv`."""
    m = torch.linalg.inv(torch.tensor(_RGB_TO_YUV, dtype=torch.float64))
    return torch.einsum("ij,...jhw->...ihw", m.to(dtype=x.dtype, device=x.device), x)


Position = Annotated[int, Field(ge=0)]
Channel = Annotated[int, Field(ge=0, le=2)]


class CTRL(ItemTrigger):
    """CTRL's frequency-domain trigger (see the module docstring for the recipe).

    Args:
        magnitude: Added to each chosen DCT coefficient, on the 0-255 pixel scale (the
            paper's CIFAR-10 default is 100; ``0`` leaves the image unchanged).
        window_size: Side of the DCT blocks. ``None``: the image size for images up to
            32x32 (the reference on CIFAR-10), else 32; it must divide both sides.
        positions: Diagonal positions ``p`` (coefficient ``(p, p)`` of every block);
            ``None``: ``(window//2 - 1, window - 1)``, the reference's ``15 31`` at 32.
        channels: YUV channels that carry the trigger (``1, 2``: U and V, the
            reference). Ignored for one-channel images (the trigger goes to that channel).
    """

    modality = "image"

    def __init__(
        self,
        magnitude: Annotated[float, Field(ge=0)] = 100.0,
        window_size: Annotated[int, Field(ge=2)] | None = None,
        positions: Annotated[tuple[Position, ...], Field(min_length=1)] | None = None,
        channels: Annotated[tuple[Channel, ...], Field(min_length=1)] = (1, 2),
    ) -> None:
        if magnitude < 0:
            raise ValueError(f"security:ctrl: magnitude={magnitude} must be >= 0 (0-255 scale)")
        if window_size is not None and window_size < 2:
            raise ValueError(f"security:ctrl: window_size={window_size} must be >= 2")
        self.magnitude = float(magnitude)
        self.window_size = window_size
        self.positions = None if positions is None else tuple(int(p) for p in positions)
        self.channels = tuple(int(c) for c in channels)
        bad = [c for c in self.channels if not 0 <= c <= 2]
        if bad:
            raise ValueError(f"security:ctrl: channels={list(channels)}: YUV channels are 0, 1, 2")

    def window_for(self, height: int, width: int) -> int:
        """The block size used on ``height x width`` images."""
        if self.window_size is not None:
            return self.window_size
        side = max(height, width)
        return side if side <= 32 and height == width else 32

    def positions_for(self, window: int) -> tuple[int, ...]:
        """The diagonal positions used with blocks of side ``window``."""
        positions = self.positions or (window // 2 - 1, window - 1)
        bad = [p for p in positions if not 0 <= p < window]
        if bad:
            raise ValueError(
                f"security:ctrl: positions={list(positions)} must lie in [0, {window}) for "
                f"window_size={window}; set positions (or window_size) accordingly"
            )
        return tuple(positions)

    def describe(self) -> dict[str, Any]:
        """Plain-data parameters (``None`` defaults shown as such)."""
        return {
            "magnitude": self.magnitude,
            "window_size": self.window_size,
            "positions": None if self.positions is None else list(self.positions),
            "channels": list(self.channels),
            "grayscale": "the one channel gets the trigger (a deviation: the paper uses U, V)",
            "scale": "0-255",
        }

    def stamp(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Apply CTRL to a batch ``[B, C, H, W]`` in ``[0, 1]`` (C = 1 or 3); deterministic."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"security:ctrl takes images [B, C, H, W] with C = 1 or 3, got "
                f"{tuple(x.shape)}; use a trigger of the data's modality"
            )
        window = self.window_for(int(x.shape[2]), int(x.shape[3]))
        positions = self.positions_for(window)
        img = x.to(torch.float64) * 255.0
        colour = img.shape[1] == 3
        if colour:
            img = rgb_to_yuv(img)
        channels = list(self.channels) if colour else [0]
        freq = block_dct2(img, window)
        for p in positions:  # the same coefficient of every block
            freq[:, channels, p::window, p::window] += self.magnitude
        img = block_idct2(freq, window)
        if colour:
            img = yuv_to_rgb(img)
        return (img / 255.0).clamp(0.0, 1.0).to(x.dtype)


_PATTERNS = ("random", "checkerboard", "white")
_POSITIONS = ("random", "bottom-right", "bottom-left", "top-right", "top-left", "center")


class Patch(ItemTrigger):
    """A ``size``-pixel square patch pasted on the image (SSL-Backdoor style).

    Args:
        size: Side of the patch in pixels (at most the image's shorter side).
        pattern: ``"random"``: a fixed binary (black/white) pattern drawn with
            ``pattern_seed``, per channel; ``"checkerboard"``: alternating black and
            white pixels; ``"white"``: a plain white square.
        position: Where the patch goes: ``"random"`` (a seeded position per item, as
            SSL-Backdoor) or a fixed corner or the centre.
        pattern_seed: Seed of the random pattern (the same pattern for every item).
    """

    modality = "image"

    def __init__(
        self,
        size: Annotated[int, Field(ge=1)] = 4,
        pattern: Literal["random", "checkerboard", "white"] = "random",
        position: Literal[
            "random", "bottom-right", "bottom-left", "top-right", "top-left", "center"
        ] = "random",
        pattern_seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        if size < 1:
            raise ValueError(f"security:patch: size={size} must be >= 1 pixel")
        if pattern not in _PATTERNS:
            raise ValueError(f"security:patch: pattern={pattern!r}; choose one of {_PATTERNS}")
        if position not in _POSITIONS:
            raise ValueError(f"security:patch: position={position!r}; choose one of {_POSITIONS}")
        self.size = int(size)
        self.pattern = pattern
        self.position = position
        self.pattern_seed = int(pattern_seed)

    def pattern_for(self, channels: int) -> Tensor:
        """The patch ``[channels, size, size]`` in ``[0, 1]`` (the same for every item)."""
        s = self.size
        if self.pattern == "white":
            return torch.ones(channels, s, s)
        if self.pattern == "checkerboard":
            board = (torch.arange(s).unsqueeze(1) + torch.arange(s).unsqueeze(0)) % 2
            return board.float().expand(channels, s, s).clone()
        gen = torch.Generator().manual_seed(self.pattern_seed)
        return torch.randint(0, 2, (channels, s, s), generator=gen).float()

    def _corners(self, n: int, h: int, w: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        s = self.size
        fixed = {
            "top-left": (0, 0),
            "top-right": (0, w - s),
            "bottom-left": (h - s, 0),
            "bottom-right": (h - s, w - s),
            "center": ((h - s) // 2, (w - s) // 2),
        }
        if self.position == "random":
            top = torch.randint(0, h - s + 1, (n,), generator=generator)
            left = torch.randint(0, w - s + 1, (n,), generator=generator)
            return top, left
        r, c = fixed[self.position]
        return torch.full((n,), r), torch.full((n,), c)

    def stamp(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Paste the patch on every image of ``x [B, C, H, W]`` in ``[0, 1]``."""
        if x.ndim != 4:
            raise ValueError(
                f"security:patch takes images [B, C, H, W], got {tuple(x.shape)}; use a "
                "trigger of the data's modality"
            )
        n, c, h, w = (int(v) for v in x.shape)
        s = self.size
        if s > min(h, w):
            raise ValueError(
                f"security:patch: size={s} is larger than the images ({h}x{w}); set a smaller size"
            )
        patch = self.pattern_for(c).to(device=x.device, dtype=x.dtype)
        top, left = self._corners(n, h, w, generator)
        out = x.clone()
        for i in range(n):
            r, col = int(top[i]), int(left[i])
            out[i, :, r : r + s, col : col + s] = patch
        return out
