"""TFDS builder for scikit-learn's 8x8 handwritten digits (offline, no TensorFlow)."""

from artjax.image.data.digits.digits_builder import Builder, SPLIT_SIZES

__all__ = ["Builder", "SPLIT_SIZES"]
