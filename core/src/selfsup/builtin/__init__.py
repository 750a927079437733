"""The core plugin: modality-free objectives, evaluators, views and the default routine."""
