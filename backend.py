"""The backend choice in one place: YAMNet and a trained model from TensorFlow or from their TFLite
copies (`--backend auto|tf|tflite`), and the one YAMNet used to embed many clips.

Library layer: imports the model and TFLite modules, never a CLI; TensorFlow only when it is chosen.
"""

import os

from audio_util import first_line, to_stderr
from model import load_custom_model
from params import YAMNET_ENV_VAR
from tflite_backend import (
    LitePipeline,
    TfliteError,
    cached_yamnet_tflite_path,
    export_yamnet_tflite,
    has_runtime,
    lite_yamnet_for,
)
from yamnet_classifier import YamnetError, load_yamnet, model_identity, resolve_yamnet_handle


def yamnet_for_backend(handle: str, backend: str, warn=to_stderr):
    """YAMNet from its cached .tflite (tflite; auto when cached) or from TensorFlow (tf; auto otherwise).
    Under auto, a TensorFlow start also builds the cached .tflite, so the next start is fast."""
    if backend == "tf":
        return load_yamnet(handle)
    try:
        return lite_yamnet_for(handle, build=backend == "tflite")
    except TfliteError:
        if backend == "tflite":
            raise
    except ImportError as e:  # no ai-edge-litert, or (building it once) no TensorFlow
        if backend == "tflite":
            raise TfliteError(f"the TFLite backend needs ai-edge-litert, and TensorFlow once to build its YAMNet "
                              f"({first_line(e)}): pip install -r requirements.txt") from e
    yamnet = load_yamnet(handle)
    if not has_runtime():  # a copy could not run: building one would cost every start ~15 s for nothing
        return yamnet
    try:
        export_yamnet_tflite(yamnet, cached_yamnet_tflite_path(yamnet.identity))
        warn("note: built a TFLite copy of YAMNet (once): the next start is fast")
    except (TfliteError, ImportError, OSError) as e:  # the fast path is an optimisation: never fail the answer over it
        warn(f"note: could not build a TFLite copy of YAMNet ({first_line(e)}); using TensorFlow")
    return yamnet


def embedding_yamnet(handle: str, warn=print):
    """YAMNet for embedding many clips (train.py, evaluate.py --cv): the TFLite copy (fast, batched; built
    and cached by the first run) with the same identity as the SavedModel, so cached embeddings stay
    valid; TensorFlow's when the export is impossible (`warn` says why)."""
    try:
        return lite_yamnet_for(handle)
    except TfliteError as e:
        reason = first_line(e)
    except YamnetError:  # no such YAMNet: TensorFlow would say the same
        raise
    except (ImportError, OSError) as e:  # no ai-edge-litert, a cache that cannot be written: TensorFlow still works
        reason = f"no TFLite YAMNet: {first_line(e)}"
    warn(f"note: embedding with TensorFlow ({reason})")
    return load_yamnet(handle)


def load_yamnet_and_model(yamnet_option: str | None, models_dir=None, backend: str = "auto"):
    """(yamnet, custom model or None) for --yamnet, --models and --backend, as main.py, listen.py
    and evaluate.py load them: TFLite wherever its files exist under "auto". A model folder's
    classifier.tflite holds the YAMNet its head was trained on, and serves as YAMNet too unless
    --yamnet or $AUDIO2MQTT_YAMNET names another copy."""
    handle = resolve_yamnet_handle(yamnet_option)
    custom = None if models_dir is None else load_custom_model(models_dir, backend)
    pipeline = getattr(custom, "head", None)
    if isinstance(pipeline, LitePipeline):
        if yamnet_option is None and not os.environ.get(YAMNET_ENV_VAR) or model_identity(handle) == pipeline.identity:
            return pipeline, custom
    return yamnet_for_backend(handle, backend), custom
