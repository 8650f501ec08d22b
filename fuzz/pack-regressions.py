#!/usr/bin/env python3
"""Packs a fuzz target's corpus into fuzz/regressions/TARGET.inputs, which
the normal test suite replays (crates/weir-agent/tests/fuzz_regressions.rs).

    fuzz/pack-regressions.py TARGET [CORPUS_DIR]

CORPUS_DIR defaults to fuzz/corpus/TARGET; minimise it first (cargo fuzz
cmin TARGET, or the target's binary with -merge=1 NEW_DIR CORPUS_DIR). The
file is each input as a 4-byte little-endian length and its bytes, in name
order, so the same corpus packs to the same file. An input that crashed a
target goes, as it is, into fuzz/regressions/TARGET/.
"""
import os
import struct
import sys

target = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "corpus", target)
out = os.path.join(here, "regressions", f"{target}.inputs")
os.makedirs(os.path.dirname(out), exist_ok=True)
names = sorted(os.listdir(corpus))
with open(out, "wb") as packed:
    for name in names:
        with open(os.path.join(corpus, name), "rb") as f:
            data = f.read()
        packed.write(struct.pack("<I", len(data)) + data)
print(f"{out}: {len(names)} inputs")
