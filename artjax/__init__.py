"""artjax: a JAX toolkit for AI-assisted art."""

__version__ = "0.1.0"


class ConfigError(ValueError):
  """A problem with the user's config, data or workdir, found before compiling."""
