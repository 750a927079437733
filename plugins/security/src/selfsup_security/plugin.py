"""Hook implementations of selfsup-security (lazy factories: nothing heavy is imported).

Opens three kinds of component, ``trigger``, ``attack`` and ``detector``, so that the
audio, medical or any third-party plugin contributes its own (a tone trigger, a 3-D
patch) with ``register_components`` without importing this plugin; registers the
image and graph triggers, the attacks and detectors, the poisoning transform and the
security evaluators.
"""

from __future__ import annotations

from collections.abc import Callable

from selfsup import ComponentSpec, EvaluatorSpec, KindSpec, TransformSpec, hookimpl

from selfsup_security.records import AttackSpec, DetectorSpec, TriggerSpec

_P = "selfsup_security"


@hookimpl
def register_kinds(register: Callable[[KindSpec], None]) -> None:
    """Open the trigger, attack and detector kinds."""
    register(
        KindSpec(
            name="trigger",
            record=TriggerSpec,
            description="Backdoor triggers stamped on items of one modality (security:poison).",
        )
    )
    register(
        KindSpec(
            name="attack",
            record=AttackSpec,
            description="Adversarial attacks on encoders, with or without a downstream probe.",
        )
    )
    register(
        KindSpec(
            name="detector",
            record=DetectorSpec,
            description="Detectors of adversarial inputs or of poisoned training samples.",
        )
    )


@hookimpl
def register_components(register: Callable[[ComponentSpec], None]) -> None:
    """Register the triggers, attacks and detectors."""
    for spec in (
        TriggerSpec(
            name="ctrl",
            modality="image",
            build=f"{_P}.triggers.image:CTRL",
            description="CTRL: a magnitude at two high frequencies of the block DCT of U and V.",
        ),
        TriggerSpec(
            name="patch",
            modality="image",
            build=f"{_P}.triggers.image:Patch",
            description="A small fixed patch pasted at a (random or fixed) position.",
        ),
        TriggerSpec(
            name="node-features",
            modality="graph",
            build=f"{_P}.triggers.graph:NodeFeatures",
            description="A fixed pattern written into chosen feature columns of nodes.",
        ),
        AttackSpec(
            name="fgsm",
            build=f"{_P}.attacks.gradient:FGSM",
            description="Fast gradient sign method through encoder + probe (L-inf).",
        ),
        AttackSpec(
            name="pgd",
            build=f"{_P}.attacks.gradient:PGD",
            description="Projected gradient descent through encoder + probe (L-inf or L2).",
        ),
        AttackSpec(
            name="cw",
            build=f"{_P}.attacks.gradient:CarliniWagner",
            description="Carlini-Wagner L2 attack through encoder + probe.",
        ),
        AttackSpec(
            name="universal",
            downstream="agnostic",
            build=f"{_P}.attacks.universal:UniversalPerturbation",
            description="One perturbation that maximises embedding deviation (AdvEncoder-style).",
        ),
        DetectorSpec(
            name="beyond",
            build=f"{_P}.detectors.beyond:BEYOND",
            description="BEYOND: an input against its augmented neighbours in the SSL encoder.",
        ),
        DetectorSpec(
            name="spectral",
            scope="sample",
            build=f"{_P}.detectors.spectral:SpectralSignatures",
            description="Spectral signatures: outlier score along each class's top direction.",
        ),
    ):
        register(spec)


@hookimpl
def register_transforms(register: Callable[[TransformSpec], None]) -> None:
    """Register the poisoning transform."""
    register(
        TransformSpec(
            name="poison",
            build=f"{_P}.transforms:Poison",
            description="Stamp a trigger on target-class items of the pretraining split.",
            tags=("backdoor",),
        )
    )


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the security evaluators."""
    for name, ref, description in (
        (
            "backdoor",
            "evaluators.backdoor:Backdoor",
            "Clean accuracy and attack success rate of a trigger through a clean probe.",
        ),
        (
            "robustness",
            "evaluators.robustness:Robustness",
            "Robust accuracy of encoder + clean probe under attacks at stated budgets.",
        ),
        (
            "adversarial-detection",
            "evaluators.detection:AdversarialDetection",
            "AUROC and TPR at 5% FPR of a detector against an attack.",
        ),
        (
            "poison-detection",
            "evaluators.detection:PoisonDetection",
            "AUROC of a detector at finding the poisoned items of the pretraining split.",
        ),
    ):
        register(EvaluatorSpec(name=name, build=f"{_P}.{ref}", description=description))
