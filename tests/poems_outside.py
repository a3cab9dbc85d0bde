"""Reads a poetry export with jax and numpy only (no artjax): python -I poems_outside.py DIR SEED FORM DECODING NUM."""
import sys, numpy as np
from jax import export
d, seed, form, decoding, num = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
sampler = export.deserialize(open(f"{d}/sampler.jaxexport", "rb").read())
t = np.load(f"{d}/poetry.npz")
tables = [t[f"{form}/{decoding}/{k}"] for k in ("tone", "template_ok", "rhyme_pos", "groups", "group_ok", "no_repeat")]
prompt = np.tile(np.int32([1, 5 + list(t["forms"]).index(form), 4]), (num, 1))
tokens = np.asarray(sampler.call(np.int32(seed), prompt, *tables))
chars, c0 = t["chars"], int(t["char0"])
for row in tokens:
    end = list(row).index(2) if 2 in row else len(row)
    print("".join(chars[i - c0] for i in row[:end] if i >= c0))
assert not any(m.startswith("artjax") for m in sys.modules)
