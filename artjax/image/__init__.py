"""Images: reading and writing photographs and masks, colour spaces, feature-network losses
and the style-transfer optimisation (pure JAX; no files in the compiled parts)."""
