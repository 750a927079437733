"""Helpers for writing evaluators (public): embed a split, split and check labels.

Every core evaluator is built from these, so a plugin's evaluator follows the same
protocol (selection on validation data, a seeded stratified carve-out of ``train``
when there is no ``val``, labels checked against :attr:`DataSplits.task`).

Example:
    >>> import torch
    >>> from selfsup.evaluation import stratified_split
    >>> fit, held = stratified_split(torch.tensor([0, 0, 1, 1, 0, 1]), 0.5, seed=0)
    >>> len(fit) + len(held)
    6
"""

from __future__ import annotations

from selfsup.builtin.evaluators._features import (
    LabelledSplits,
    accuracy,
    check_finite,
    check_labels,
    cpu_threads_for,
    embed_split,
    first_embedded,
    has_split,
    item_labels,
    labelled_splits,
    require_labelled,
    standardize,
    stratified_split,
    subsample,
)

__all__ = [
    "LabelledSplits",
    "accuracy",
    "check_finite",
    "check_labels",
    "cpu_threads_for",
    "embed_split",
    "first_embedded",
    "has_split",
    "item_labels",
    "labelled_splits",
    "require_labelled",
    "standardize",
    "stratified_split",
    "subsample",
]
