"""Modality-free self-supervised objectives."""
