"""YAMNet as a frozen feature extractor and AudioSet classifier (the TensorFlow-bound part).

TensorFlow is imported inside `load_yamnet`, so importing this module is cheap.
"""

import contextlib
import functools
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_util import first_line, pad_to_length
from class_map import ClassMapError, load_yamnet_class_names
from params import BUNDLED_YAMNET_DIR, YAMNET, YAMNET_ENV_VAR


class YamnetError(Exception):
    """YAMNet could not be found or loaded; the message says what to do."""


def resolve_yamnet_handle(cli_value: str | None = None) -> str:
    """--yamnet beats $AUDIO2MQTT_YAMNET beats the bundled models/yamnet."""
    return cli_value or os.environ.get(YAMNET_ENV_VAR) or str(BUNDLED_YAMNET_DIR)


def _is_url(handle: str) -> bool:
    return "://" in handle


def model_identity(handle: str) -> str:
    """A short string that changes when the model's weights change: the cache keys embeddings by it."""
    if _is_url(handle):
        return "url:" + handle
    digest = hashlib.sha256()
    root = Path(handle)
    for path in sorted(root.glob("saved_model.pb")) + sorted(root.glob("variables/*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


@dataclass
class Yamnet:
    """A loaded YAMNet: `run` maps a 16 kHz waveform to per-patch scores and embeddings."""

    handle: str
    identity: str
    class_names: list[str]
    _model: object

    def run(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """waveform (n,) float32 16 kHz -> scores (patches, 521), embeddings (patches, 1024).

        Clips shorter than one 0.96 s patch are zero-padded to one patch.
        """
        waveform = pad_to_length(np.asarray(waveform, dtype=np.float32), YAMNET.patch_window_samples)
        scores, embeddings, _log_mel = self._model(waveform)
        return scores.numpy(), embeddings.numpy()


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide what C++ code (TensorFlow, the TFLite converter and runtime) writes straight to fd 2.

    Some of it comes before absl's logging starts, so no setting reaches it. Python exceptions
    still surface. TF_CPP_MIN_LOG_LEVEL=0 shows everything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        yield
        return
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)


FULL_INSTALL_HINT = "pip install -r requirements.txt (the exact-sounds install leaves TensorFlow out)"


def import_tensorflow():
    """Import TensorFlow with its start-up chatter (CUDA probes, oneDNN notes) silenced."""
    if sys.modules.get("tensorflow") is not None:
        return sys.modules["tensorflow"]
    try:
        with quiet_native_stderr():
            import tensorflow as tf
    except ImportError as e:
        raise YamnetError(f"YAMNet needs TensorFlow, which is not installed ({first_line(e)}): {FULL_INSTALL_HINT}") from e
    tf.get_logger().setLevel("ERROR")
    return tf


def check_yamnet_handle(handle: str) -> None:
    """Fail in milliseconds when a local YAMNet folder is missing or is not a SavedModel."""
    if _is_url(handle):
        return
    if not Path(handle).is_dir():
        raise YamnetError(
            f"YAMNet not found at {handle}: pass --yamnet PATH_OR_URL or set {YAMNET_ENV_VAR}"
            f" (the project ships it in {BUNDLED_YAMNET_DIR})"
        )
    if not (Path(handle) / "saved_model.pb").is_file():
        raise YamnetError(f"{handle} is not a TensorFlow SavedModel folder (no saved_model.pb)")


@functools.lru_cache(maxsize=4)
def load_yamnet(handle: str) -> Yamnet:
    """Load YAMNet from a local SavedModel folder or a TF Hub URL (once per process)."""
    check_yamnet_handle(handle)
    import_tensorflow()
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise YamnetError(f"YAMNet needs tensorflow-hub, which is not installed ({first_line(e)}): {FULL_INSTALL_HINT}") from e

    try:
        model = hub.load(handle)
    except Exception as e:  # hub raises many types (OSError, ValueError, URLError, ...): report, don't hide
        hint = " (no internet? use the bundled models/yamnet)" if _is_url(handle) else ""
        raise YamnetError(f"cannot load YAMNet from {handle}: {first_line(e)}{hint}") from e
    if not hasattr(model, "class_map_path"):
        raise YamnetError(f"{handle} does not look like YAMNet (it has no class map)")
    try:
        class_names = load_yamnet_class_names(model.class_map_path().numpy().decode())
    except ClassMapError as e:
        raise YamnetError(str(e)) from e
    return Yamnet(handle=handle, identity=model_identity(handle), class_names=class_names, _model=model)


def top_classes(scores: np.ndarray, class_names: list[str], k: int = 1) -> list[tuple[str, float]]:
    """Mean score over patches, best k classes first: [(name, score in 0..1)]."""
    mean_scores = scores.mean(axis=0)
    best = np.argsort(mean_scores)[::-1][:k]
    return [(class_names[i], float(mean_scores[i])) for i in best]
