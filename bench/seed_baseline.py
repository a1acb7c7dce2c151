"""The seed's plain pipeline, for bench/bench.py to time from process start: import TensorFlow,
hub.load the bundled YAMNet, Keras load_model of a trained head, classify one clip.

    python bench/seed_baseline.py clip.wav --models models/

Phase times go to stderr; the label to stdout.
"""

import argparse
import sys
import time
from pathlib import Path

START = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from params import BUNDLED_YAMNET_DIR, CLASS_NAMES_FILENAME, CLASSIFIER_FILENAME, DEFAULT_MODELS_DIR  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The seed's TensorFlow pipeline on one clip (a benchmark baseline).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("clip", type=Path, help="audio file to classify")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR,
                        help=f"folder with {CLASSIFIER_FILENAME} and {CLASS_NAMES_FILENAME}")
    parser.add_argument("--yamnet", type=Path, default=BUNDLED_YAMNET_DIR, help="YAMNet SavedModel folder")
    args = parser.parse_args(argv)
    phases = {}

    def mark(name):
        phases[name] = time.perf_counter()

    import numpy as np
    import tensorflow as tf
    mark("import tensorflow")
    import tensorflow_hub as hub
    yamnet = hub.load(str(args.yamnet))
    mark("hub.load")
    import keras
    head = keras.models.load_model(args.models / CLASSIFIER_FILENAME, compile=False)
    from class_map import read_class_names
    class_names = read_class_names(args.models / CLASS_NAMES_FILENAME)
    mark("keras load_model")
    from audio_util import load_audio_16k_mono
    waveform = load_audio_16k_mono(args.clip)
    mark("load audio")
    _scores, embeddings, _log_mel = yamnet(waveform)
    logits = head.predict(tf.reduce_mean(embeddings, axis=0, keepdims=True), verbose=0)
    probabilities = tf.nn.softmax(logits)[0].numpy()
    best = int(np.argmax(probabilities))
    mark("predict")
    print(f"{args.clip}: {class_names[best]} ({probabilities[best]:.1%})")
    previous = START
    for name, when in phases.items():
        print(f"{name}: {when - previous:.2f} s", file=sys.stderr)
        previous = when
    return 0


if __name__ == "__main__":
    sys.exit(main())
