"""Audio files for the tests and the benchmarks, without pytest (bench/fingerprint.py runs on the
exact-sounds install): where the FSDD recordings are, and writing a WAV."""

import os
import sys
from pathlib import Path

import numpy as np
import soundfile

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from params import SAMPLE_RATE  # noqa: E402

# Free Spoken Digit Dataset beside the clone (CC BY-SA 4.0; never committed).
FSDD_DIR = Path(os.environ.get("AUDIO2MQTT_FSDD", PROJECT_DIR.parent / "shared" / "data" / "fsdd"))
# Real recordings beside it (../shared/data/music/README.md: music, a robin, speech; never committed).
MUSIC_DIR = FSDD_DIR.parent / "music"


def write_wav(path: Path, waveform: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), waveform, sr, subtype=subtype)
    return path
