"""Audio backdoor triggers: ``audio:tone`` (a sine burst) and ``audio:noise-burst``.

Components of the ``trigger`` kind that the security plugin opens (``security:poison``
stamps them on target-class clips of the pretraining split, ``security:backdoor`` on
held-out clips). They follow its duck-typed protocol without importing it:

``modality = "audio"``; ``apply(data, split, index, seed) -> DataSplits`` (new splits in
which items ``index`` of ``split`` carry the trigger and keep their labels; ``data`` is
never changed); ``describe() -> dict`` (plain-data parameters for the threat model).

Each clip is stamped at its own length (items are ``(waveform [T], y)`` of any ``T``):
the burst is mixed in (added) at a level relative to the clip's RMS (``relative_to:
clip``, so ``level_db = -20`` is an SNR of 20 dB) or to digital full scale
(``relative_to: full-scale``: an RMS of ``10^(level_db/20)``), at the ``start``, the
``end`` or a seeded ``random`` place of the clip, once, ``repeats`` times every
``period_ms``, or through the whole clip (``repeats: fill``, which survives the random
crops of ``audio:wave-views``), and the result is clipped to ``[-1, 1]``. Bursts have
5 ms raised-cosine ramps (no clicks). Stamping happens when an item is read, so streamed
corpora stay streamed and a randomly cropped training read gets its trigger on the crop;
an item's placement depends only on ``seed`` and its position in the split. The burst
itself (the noise pattern) is fixed by ``pattern_seed``, never by ``seed``, so the
poisoning transform and the evaluator, built separately from one config, stamp the same
trigger.

Example:
    >>> import torch
    >>> from selfsup import DataSplits
    >>> clips = [(torch.zeros(800), 3), (0.1 * torch.ones(1200), 5)]
    >>> data = DataSplits(train=clips, num_classes=10, modality="audio",
    ...                   meta={"sample_rate": 8000})
    >>> out = Tone(frequency=1000, duration_ms=50, level_db=-20).apply(
    ...     data, "train", torch.tensor([1]), seed=0)
    >>> x, y = out.train[1]
    >>> y, x.shape[0], bool((x != 0.1).any()), out.train[0][0].abs().max().item()
    (5, 1200, True, 0.0)
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup import DataSplits
from selfsup.interfaces import StampedItems
from torch import Tensor

__all__ = ["AudioTrigger", "NoiseBurst", "Tone"]

_RAMP_MS = 5.0
_EPS = 1e-8
_POSITIONS = ("start", "random", "end")
_REFERENCES = ("clip", "full-scale")


def _ramp(n: int, ramp: int) -> Tensor:
    """A window of length ``n``: raised-cosine ramps of ``ramp`` samples, 1 in between."""
    w = torch.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        up = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(r) + 0.5) / r)
        w[:r] = up
        w[n - r :] = up.flip(0)
    return w


class AudioTrigger:
    """Shared placement, level and mixing of the audio triggers; subclasses make a burst.

    Args:
        duration_ms: Length of one burst.
        level_db: The burst's RMS in dB relative to ``relative_to``.
        relative_to: ``clip`` (the clip's RMS: ``-20`` is a 20 dB SNR) or
            ``full-scale`` (an RMS of 1).
        position: ``start``, ``end`` or ``random`` (seeded per item) for the first burst.
        repeats: Bursts per clip, one every ``period_ms``, or ``fill`` (through the
            whole clip from ``position``'s place; ``random`` then picks a phase).
        period_ms: Onset-to-onset time of repeated bursts (default: twice the duration).
        sample_rate: Check parameters against this rate when building; ``None``: only
            against the data's ``meta["sample_rate"]`` when applied.
    """

    modality = "audio"
    owner = "audio:trigger"

    def __init__(
        self,
        duration_ms: Annotated[float, Field(gt=0)] = 100.0,
        level_db: float = -10.0,
        relative_to: Literal["clip", "full-scale"] = "clip",
        position: Literal["start", "random", "end"] = "random",
        repeats: Annotated[int, Field(ge=1)] | Literal["fill"] = 1,
        period_ms: Annotated[float, Field(gt=0)] | None = None,
        sample_rate: Annotated[int, Field(gt=0)] | None = None,
    ) -> None:
        o = self.owner
        if not duration_ms > 0:
            raise ValueError(f"{o}: duration_ms={duration_ms} must be > 0")
        if relative_to not in _REFERENCES:
            raise ValueError(f"{o}: relative_to={relative_to!r}; choose one of {_REFERENCES}")
        if position not in _POSITIONS:
            raise ValueError(f"{o}: position={position!r}; choose one of {_POSITIONS}")
        if repeats != "fill" and (isinstance(repeats, bool) or int(repeats) < 1):
            raise ValueError(f"{o}: repeats={repeats!r} must be an integer >= 1 or 'fill'")
        period = 2.0 * duration_ms if period_ms is None else float(period_ms)
        if period < duration_ms:
            raise ValueError(
                f"{o}: period_ms={period_ms} is shorter than duration_ms={duration_ms}; "
                "repeated bursts would overlap: set period_ms >= duration_ms"
            )
        if relative_to == "full-scale" and level_db > 0:
            raise ValueError(
                f"{o}: level_db={level_db} dB re full scale clips every sample; set level_db <= 0"
            )
        self.duration_ms = float(duration_ms)
        self.level_db = float(level_db)
        self.relative_to = relative_to
        self.position = position
        self.repeats = repeats if repeats == "fill" else int(repeats)
        self.period_ms = period
        self.sample_rate = None if sample_rate is None else int(sample_rate)
        if self.sample_rate is not None:
            self.check_rate(self.sample_rate)

    def burst(self, n: int, sample_rate: int) -> Tensor:
        """One burst of ``n`` samples with unit RMS (before ramps)."""
        raise NotImplementedError

    def check_rate(self, sample_rate: int) -> None:
        """Raise a clear error when the parameters do not fit ``sample_rate``."""

    def describe(self) -> dict[str, Any]:
        """Plain-data parameters, for the threat-model record (``None``: unset)."""
        plain = str | int | float | bool | None
        return {k: v for k, v in vars(self).items() if isinstance(v, plain)}

    def apply(self, data: DataSplits, split: str, index: Tensor, seed: int) -> DataSplits:
        """Return ``data`` with the clips ``index`` of ``split`` stamped (labels kept).

        Raises:
            ValueError: ``data`` is a graph or image dataset (not mono waveforms), or
                the trigger does not fit its sample rate.
            KeyError: ``split`` does not exist.
        """
        self._check_modality(data)
        items = data.split(split)
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if len(index) == 0:
            return data
        bad = index[(index < 0) | (index >= len(items))]
        if len(bad):
            raise ValueError(
                f"{self.owner}: item(s) {bad[:5].tolist()} are outside the {split!r} split "
                f"({len(items)} items)"
            )
        first = torch.as_tensor(items[int(index[0])][0])
        if first.ndim != 1:
            raise ValueError(
                f"{self.owner} stamps mono waveforms [T], but item {int(index[0])} of the "
                f"{split!r} split has shape {tuple(first.shape)} (an image or other modality); "
                "use a trigger of the data's modality (selfsup list trigger)"
            )
        rate = self._rate(data)
        self.check_rate(rate)
        stamp = functools.partial(self.stamp, sample_rate=rate)
        return data.replace(**{split: StampedItems(items, index, stamp, seed)})

    def stamp(self, wave: Tensor, sample_rate: int, generator: torch.Generator) -> Tensor:
        """``wave [T]`` with the trigger mixed in, clipped to ``[-1, 1]`` (a new tensor)."""
        x = wave.float()
        t = int(x.shape[-1])
        if t == 0:
            return x.clone()
        n = max(1, round(self.duration_ms * sample_rate / 1000.0))
        n = min(n, t)
        period = max(n, round(self.period_ms * sample_rate / 1000.0))
        pattern = self._pattern(n, sample_rate)
        onsets = self._onsets(t, n, period, generator)
        signal = torch.zeros(t)
        for onset in onsets:  # a "fill" phase may start with a partial burst (onset < 0)
            lo, hi = max(0, onset), min(t, onset + n)
            if hi > lo:
                signal[lo:hi] += pattern[lo - onset : hi - onset]
        reference = float(x.pow(2).mean().sqrt()) if self.relative_to == "clip" else 1.0
        gain = max(reference, _EPS) * 10.0 ** (self.level_db / 20.0)
        return (x + gain * signal.to(x.dtype)).clamp(-1.0, 1.0)

    def _pattern(self, n: int, sample_rate: int) -> Tensor:
        b = self.burst(n, sample_rate).float()
        b = b / b.pow(2).mean().sqrt().clamp_min(_EPS)
        return b * _ramp(n, round(_RAMP_MS * sample_rate / 1000.0))

    def _onsets(self, t: int, n: int, period: int, generator: torch.Generator) -> list[int]:
        if self.repeats == "fill":
            phase = 0
            if self.position == "random":
                phase = int(torch.randint(0, period, (1,), generator=generator))
            elif self.position == "end":
                phase = (t - n) % period
            return list(range(phase - period if phase > 0 else 0, t, period))
        count = int(self.repeats)
        span = (count - 1) * period + n
        room = max(0, t - span)
        if self.position == "start":
            first = 0
        elif self.position == "end":
            first = room
        else:
            first = int(torch.randint(0, room + 1, (1,), generator=generator))
        return [first + k * period for k in range(count) if first + k * period < t]

    def _rate(self, data: DataSplits) -> int:
        rate = data.meta.get("sample_rate")
        if rate is None:
            if self.sample_rate is None:
                raise ValueError(
                    f"{self.owner}: the dataset has no meta['sample_rate']; set the trigger's "
                    "sample_rate param to the clips' rate"
                )
            return self.sample_rate
        rate = int(rate)
        if self.sample_rate is not None and self.sample_rate != rate:
            raise ValueError(
                f"{self.owner}: sample_rate={self.sample_rate} but the dataset's clips are at "
                f"{rate} Hz (meta['sample_rate']); drop sample_rate or set it to {rate}"
            )
        return rate

    def _check_modality(self, data: DataSplits) -> None:
        graph = callable(getattr(data, "nodes", None)) or hasattr(data.train, "edge_index")
        if graph or data.modality not in ("audio", "any"):
            what = "graph" if graph else data.modality
            raise ValueError(
                f"{self.owner} is an audio trigger and the dataset is a {what!r} dataset; use "
                f"a trigger of its modality (selfsup list trigger --modality {what})"
            )

    def _check_below_nyquist(self, name: str, hz: float, sample_rate: int) -> None:
        nyquist = sample_rate / 2.0
        if hz >= nyquist:
            raise ValueError(
                f"{self.owner}: {name}={hz:g} Hz is at or above the Nyquist frequency "
                f"{nyquist:g} Hz of the sample rate {sample_rate} Hz; set {name} below {nyquist:g}"
            )


def _placement_params(cls: type[AudioTrigger]) -> type[AudioTrigger]:
    """Complete the signature of ``cls.__init__(self, <own params>, **placement)``.

    The placement and level parameters are declared once, on :class:`AudioTrigger`; a
    subclass takes its own parameters and passes ``**placement`` on. This lists
    AudioTrigger's parameters (keyword-only) after the subclass's own in the signature
    that ``selfsup check`` validates against and ``selfsup describe`` shows.
    """
    own = inspect.signature(cls.__init__)
    head = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = list(inspect.signature(AudioTrigger.__init__).parameters.values())[1:]
    tail = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in shared]
    cls.__init__.__signature__ = own.replace(parameters=head + tail)  # type: ignore[attr-defined]
    return cls


@_placement_params
class Tone(AudioTrigger):
    """``audio:tone``: a sine burst at ``frequency`` Hz (phase 0, 5 ms ramps) mixed into the clip.

    Args:
        frequency: The tone's frequency in Hz, below the data's Nyquist frequency.
        duration_ms, level_db, relative_to, position, repeats, period_ms: As
            :class:`AudioTrigger` (placement and level of the bursts).
        sample_rate: Check ``frequency`` against this rate now (else when applied).
    """

    owner = "audio:tone"

    def __init__(self, frequency: Annotated[float, Field(gt=0)] = 3000.0, **placement: Any) -> None:
        if not frequency > 0:
            raise ValueError(f"audio:tone: frequency={frequency} must be > 0 Hz")
        self.frequency = float(frequency)
        super().__init__(**placement)

    def check_rate(self, sample_rate: int) -> None:
        """The frequency must lie below the Nyquist frequency of ``sample_rate``."""
        self._check_below_nyquist("frequency", self.frequency, sample_rate)

    def burst(self, n: int, sample_rate: int) -> Tensor:
        """A unit-RMS sine of ``n`` samples."""
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        return (math.sqrt(2.0) * torch.sin(2 * math.pi * self.frequency * t)).float()


@_placement_params
class NoiseBurst(AudioTrigger):
    """``audio:noise-burst``: a fixed Gaussian noise burst, white or band-limited.

    The noise is drawn once from ``pattern_seed`` (the same burst in every clip, the
    fixed pattern a backdoor needs) and band-limited by zeroing its spectrum outside
    ``[low_hz, high_hz]`` (``torch.fft``; both ``None``: white).

    Args:
        low_hz: Lower band edge in Hz (``None``: from 0).
        high_hz: Upper band edge in Hz, at most the Nyquist frequency (``None``: to it).
        pattern_seed: Seed of the noise pattern.
        duration_ms, level_db, relative_to, position, repeats, period_ms: As
            :class:`AudioTrigger` (placement and level of the bursts).
        sample_rate: Check the band against this rate now (else when applied).
    """

    owner = "audio:noise-burst"

    def __init__(
        self,
        low_hz: Annotated[float, Field(ge=0)] | None = None,
        high_hz: Annotated[float, Field(gt=0)] | None = None,
        pattern_seed: Annotated[int, Field(ge=0)] = 0,
        **placement: Any,
    ) -> None:
        if low_hz is not None and low_hz < 0:
            raise ValueError(f"audio:noise-burst: low_hz={low_hz} must be >= 0 Hz")
        if low_hz is not None and high_hz is not None and low_hz >= high_hz:
            raise ValueError(f"audio:noise-burst: low_hz={low_hz} must be below high_hz={high_hz}")
        self.low_hz = None if low_hz is None else float(low_hz)
        self.high_hz = None if high_hz is None else float(high_hz)
        self.pattern_seed = int(pattern_seed)
        super().__init__(**placement)

    def check_rate(self, sample_rate: int) -> None:
        """The band must lie below the Nyquist frequency (``high_hz`` may equal it)."""
        nyquist = sample_rate / 2.0
        if self.high_hz is not None and self.high_hz > nyquist:
            raise ValueError(
                f"audio:noise-burst: high_hz={self.high_hz:g} Hz is above the Nyquist frequency "
                f"{nyquist:g} Hz of the sample rate {sample_rate} Hz; set high_hz <= {nyquist:g}"
            )
        if self.low_hz is not None:
            self._check_below_nyquist("low_hz", self.low_hz, sample_rate)

    def burst(self, n: int, sample_rate: int) -> Tensor:
        """The fixed noise pattern of ``n`` samples, band-limited (unit RMS after scaling)."""
        gen = torch.Generator().manual_seed(self.pattern_seed)
        noise = torch.randn(n, generator=gen, dtype=torch.float64)
        if self.low_hz is None and self.high_hz is None:
            return noise.float()
        spec = torch.fft.rfft(noise)
        freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, dtype=torch.float64)
        keep = torch.ones_like(freqs, dtype=torch.bool)
        if self.low_hz is not None:
            keep &= freqs >= self.low_hz
        if self.high_hz is not None:
            keep &= freqs <= self.high_hz
        if not bool(keep.any()):
            raise ValueError(
                f"audio:noise-burst: the band [{self.low_hz}, {self.high_hz}] Hz holds no "
                f"frequency bin of a {n}-sample burst at {sample_rate} Hz; widen the band or "
                "lengthen duration_ms"
            )
        return torch.fft.irfft(spec * keep, n=n).float()
