"""TFDS builder for a user's folder (or .zip) of pictures."""

from artjax.image.data.folder.folder_builder import Builder, Scan, scan

__all__ = ["Builder", "Scan", "scan"]
