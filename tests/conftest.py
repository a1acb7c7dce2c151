"""Shared fixtures: real YAMNet loaded once per session, real FSDD recordings, generated sounds; the
test lanes (markers tf, mqtt, slow; see pytest.ini) and a cache folder of the session's own."""

import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_files import FSDD_DIR, PROJECT_DIR, write_wav  # noqa: F401 (tests import them from here)
from params import SAMPLE_RATE


# What puts a test in a lane, read from the fixtures it uses (directly or through other fixtures) and
# from its own source: YAMNet means TensorFlow; a broker means Mosquitto. Both take seconds.
TF_FIXTURES = {"yamnet"}
# In a test's own code (not its parameters): CLIs that load YAMNet, here or in a subprocess.
TF_SOURCE = ('"main.py"', '"train.py"', '"evaluate.py"', '"--classes"', '"--custom"')
MQTT_FIXTURES = {"broker", "tls_broker"}
MQTT_SOURCE = "Broker("
# Tests without TensorFlow or a broker that still take seconds (subprocesses, restarts, real waits).
SLOW_TESTS = {"test_a_command_input_is_restarted_when_it_exits_or_stalls_and_ends_with_the_listener",
              "test_a_microphone_that_goes_away_is_waited_for_and_heard_again",
              "test_the_exact_sounds_install_works_without_tensorflow_and_yamnet_says_what_to_install"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        try:
            source = inspect.getsource(item.function)
        except (OSError, TypeError):
            source = ""
        source = source[source.find("def "):]  # the body, not the parameters in its decorators
        needs_tf = bool(fixtures & TF_FIXTURES) or any(script in source for script in TF_SOURCE)
        needs_mqtt = bool(fixtures & MQTT_FIXTURES) or MQTT_SOURCE in source
        if needs_tf:
            item.add_marker(pytest.mark.tf)
        if needs_mqtt:
            item.add_marker(pytest.mark.mqtt)
        if needs_tf or needs_mqtt or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def tensorflow_only_in_the_tf_lane(request, private_cache):
    """A test that runs TensorFlow must be marked tf, or `-m "not tf"` lies: one that imports it here, or
    whose subprocess built YAMNet's .tflite (only TensorFlow can) in the session's cache."""
    had_tensorflow, had_copies = "tensorflow" in sys.modules, set(private_cache.rglob("*.tflite"))
    yield
    if request.node.get_closest_marker("tf") is not None:
        return
    if not had_tensorflow and "tensorflow" in sys.modules or set(private_cache.rglob("*.tflite")) - had_copies:
        pytest.fail(f"{request.node.name} ran TensorFlow but is not in the tf lane: give it the yamnet fixture")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """$XDG_CACHE_HOME under the session's temporary folder: embeddings and YAMNet's .tflite are built here,
    never in the user's ~/.cache (subprocesses inherit it)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


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
