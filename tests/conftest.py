"""Shared fixtures: real YAMNet loaded once per session, real FSDD recordings, generated sounds."""

from pathlib import Path

import numpy as np
import pytest

from audio_files import FSDD_DIR, PROJECT_DIR, write_wav  # noqa: F401 (tests import them from here)
from params import SAMPLE_RATE


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    if not (FSDD_DIR / "0_george_0.wav").is_file():
        pytest.fail(f"FSDD recordings not found at {FSDD_DIR}: put ../shared beside the clone or set AUDIO2MQTT_FSDD")
    return FSDD_DIR


@pytest.fixture(scope="session")
def yamnet():
    """The bundled YAMNet, loaded once; main()/train() calls in the same process reuse it."""
    from yamnet_classifier import load_yamnet, resolve_yamnet_handle

    return load_yamnet(resolve_yamnet_handle(None))


def tone(freq_hz: float, seconds: float, sr: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32."""
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(seconds: float, sr: int = SAMPLE_RATE, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """White noise, float32, reproducible."""
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * sr))).clip(-1, 1).astype(np.float32)
