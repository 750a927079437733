"""The spec records of the kinds this plugin opens: triggers, attacks, detectors.

Other plugins contribute components of these kinds without importing this module:
``ComponentSpec(kind="trigger", ...)`` is converted to :class:`TriggerSpec` when both
plugins are installed (the fields below all have defaults).

Example:
    >>> TriggerSpec(name="ctrl", build="selfsup_security.triggers:CTRL").kind
    'trigger'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selfsup.specs import ComponentSpec

__all__ = ["AttackSpec", "DetectorSpec", "TriggerSpec"]


@dataclass(frozen=True)
class TriggerSpec(ComponentSpec):
    """A backdoor trigger for one modality: ``build(**params) -> Trigger``.

    Attributes:
        knowledge: What the attacker needs: ``"data-only"`` (poisons unlabelled data
            and never sees the encoder; every trigger here).
    """

    kind: str = field(default="trigger", kw_only=True)
    knowledge: Literal["data-only"] = field(default="data-only", kw_only=True)


@dataclass(frozen=True)
class AttackSpec(ComponentSpec):
    """An adversarial attack on an encoder (with or without a downstream head).

    Attributes:
        knowledge: ``"white-box"`` (gradients of the encoder) or ``"black-box"``.
        downstream: ``"probe"`` (attacks encoder + the clean probe, as torchattacks
            attacks a classifier) or ``"agnostic"`` (never sees a downstream task).
    """

    kind: str = field(default="attack", kw_only=True)
    knowledge: Literal["white-box", "black-box"] = field(default="white-box", kw_only=True)
    downstream: Literal["probe", "agnostic"] = field(default="probe", kw_only=True)


@dataclass(frozen=True)
class DetectorSpec(ComponentSpec):
    """A detector: of adversarial inputs, of poisoned training samples, or of encoders.

    Attributes:
        scope: ``"input"`` (scores test inputs: adversarial or not), ``"sample"``
            (scores the pretraining set: poisoned or not).
    """

    kind: str = field(default="detector", kw_only=True)
    scope: Literal["input", "sample"] = field(default="input", kw_only=True)
