"""What a detector is: per-item scores, higher meaning more likely adversarial or poisoned.

Two scopes (:attr:`selfsup_security.records.DetectorSpec.scope`):

* ``"input"`` (:class:`InputDetector`): scores test inputs given the defended model
  (the SSL encoder + the clean probe, a :class:`~selfsup_security.probe.ProbedEncoder`)
  and the arm's view maker; ``security:adversarial-detection`` asks it about clean
  inputs and adversarial ones.
* ``"sample"`` (:class:`SampleDetector`): scores the items of the pretraining set from
  their frozen embeddings; ``security:poison-detection`` compares the scores with the
  ``poisoned`` flags the poisoning transform set.

Example:
    >>> import torch
    >>> out = DetectorScores(torch.tensor([0.1, 0.9]), {"part": torch.tensor([1.0, 2.0])})
    >>> out.named()["part"].tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["DetectorScores", "InputDetector", "SampleDetector"]


@dataclass(frozen=True)
class DetectorScores:
    """A detector's scores of a batch of items (higher: more likely positive).

    Attributes:
        score: ``[N]`` the detector's main score, the one thresholded or ranked.
        components: Named ``[N]`` partial scores (the parts the main score combines),
            reported beside it so that each part's contribution is visible.
    """

    score: Tensor
    components: dict[str, Tensor] = field(default_factory=dict)

    def named(self) -> dict[str, Tensor]:
        """Every component by name (the main score is not repeated)."""
        return dict(self.components)


class _Described:
    def describe(self) -> dict[str, Any]:
        """Plain-data parameters of the detector, for the threat-model record."""
        out: dict[str, Any] = {"detector": type(self).__name__}
        out.update({k: v for k, v in vars(self).items() if isinstance(v, str | int | float | bool)})
        return out


class InputDetector(_Described):
    """Base of input detectors: ``score(model, x, views, seed) -> DetectorScores``."""

    scope = "input"

    def score(self, model: Any, x: Tensor, views: Any, seed: int) -> DetectorScores:
        """Score the inputs ``x`` (``[B, ...]`` in ``[0, 1]``, on the model's device).

        Args:
            model: The defended classifier: an encoder (``model.encoder``) with its clean
                linear probe (``model.head``), in eval mode.
            x: The inputs.
            views: The arm's view maker (``views(batch) -> list of views``).
            seed: Seeds every random draw of the detector (augmentations).
        """
        raise NotImplementedError


class SampleDetector(_Described):
    """Base of sample detectors: ``score(features, groups) -> DetectorScores``.

    Attributes:
        labels: Which grouping the detector wants from the evaluator: ``"split"`` (the
            split's labels), ``"probe"`` (a clean probe's predictions) or ``"none"``.
    """

    scope = "sample"
    labels: str = "split"

    def score(self, features: Tensor, groups: Tensor | None) -> DetectorScores:
        """Score every item from its embedding ``features[i]`` and group ``groups[i]``."""
        raise NotImplementedError
