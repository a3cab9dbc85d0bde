"""Symbolic music: the token encoding of piano-roll frames, and MIDI / WAV / PNG output."""
