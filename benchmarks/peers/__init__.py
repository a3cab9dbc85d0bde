"""PyTorch peers of artjax's models and steps, measured side by side in one run (the `bench`
extra installs torch; nothing in artjax imports them)."""
