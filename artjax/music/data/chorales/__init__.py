"""Bach chorales (music21's corpus) as a TFDS builder and parsed arrays."""

from artjax.music.data.chorales.chorales_builder import Builder, split_of

__all__ = ["Builder", "split_of"]
