"""Classical Chinese poetry: the character vocabulary and form templates (text.py) and the
measures of generated poems (metrics.py: n-gram baselines, form, rhyme, tones, copying)."""
