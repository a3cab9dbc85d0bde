"""Model registry. Models know nothing of files, flags or training."""

from artjax.image.models.gan import GAN_MODELS, build_gan, frozen_parts

__all__ = ["GAN_MODELS", "build_gan", "frozen_parts"]
