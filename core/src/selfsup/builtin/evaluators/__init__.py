"""Modality-free evaluators."""
