"""archcheck: a linter and calculator for convolutional network architectures."""

__version__ = "0.1.0"
