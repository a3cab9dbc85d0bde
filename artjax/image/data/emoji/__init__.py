"""TFDS builder for the emoji drawn twice (Google Noto and Twitter Twemoji, 64x64 RGBA)."""

from artjax.image.data.emoji.emoji_builder import (CATEGORIES, LICENSES, STYLES, VERSION, Builder,
                                                   categories_of, split_of)

__all__ = ["Builder", "CATEGORIES", "LICENSES", "STYLES", "VERSION", "categories_of", "split_of"]
