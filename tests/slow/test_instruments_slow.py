"""FluidSynth with the General MIDI SoundFont (Debian's fluidsynth + fluid-soundfont-gm, which
`make test-slow` installs as root): real instruments per voice, loudness-normalised."""

import numpy as np
import pytest

from artjax.music import render


@pytest.mark.slow
def test_fluidsynth_renders_each_instrument_at_one_loudness(chorales):
  if not render.fluidsynth_available():
    pytest.skip("no fluidsynth + GM SoundFont (make test-slow installs them with apt-get as root)")
  roll = np.asarray(chorales.rolls("test")[0][:16])
  out = {}
  for name in ("choir", "violin,viola,cello,contrabass", "organ"):
    pcm, how = render.render_audio(roll, name)
    assert how == "fluidsynth" and pcm.shape[1] == 2 and pcm.shape[0] > 16 * 0.75 * render.SAMPLE_RATE
    rms = 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert abs(rms - render.TARGET_RMS_DBFS) < 0.5
    out[name] = pcm[:, 0]
  numpy_synth = render.normalise(render.synthesize(roll))
  n = min(len(v) for v in [*out.values(), numpy_synth])
  spectra = {k: np.abs(np.fft.rfft(v[:n])) for k, v in {**out, "numpy": numpy_synth}.items()}
  def corr(a, b):
    return float(np.corrcoef(np.log1p(spectra[a]), np.log1p(spectra[b]))[0, 1])
  # different instruments sound different (their spectra), and none is the numpy organ
  assert corr("choir", "organ") < 0.98 and corr("choir", "numpy") < 0.95 and corr("organ", "numpy") < 0.98
