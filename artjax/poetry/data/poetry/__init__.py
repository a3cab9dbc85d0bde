"""Classical Chinese poems (the chinese-poetry collection) as a TFDS builder."""

from artjax.poetry.data.poetry.poetry_builder import FORMS, VERSE_END, Builder, detect_form, find_sources, split_of, verses

__all__ = ["FORMS", "VERSE_END", "Builder", "detect_form", "find_sources", "split_of", "verses"]
