"""Classify audio clips with YAMNet's 521 AudioSet classes, or with your own trained model.

    python main.py clip.wav                 # top AudioSet class
    python main.py clips/ --custom          # your classes, from models/
    python main.py clip.wav --top-k 5 --json

With --custom, a clip below its best class's thresholds (model.json "unknown") is "unknown",
shown with the best guess and its score.

Backends: TFLite (ai-edge-litert) when the TFLite models exist — models/classifier.tflite for
--custom, the cached YAMNet .tflite for AudioSet classes — and then TensorFlow is never imported;
TensorFlow otherwise. --backend tf|tflite forces one.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audio_util import AudioError, iter_loaded_audio, quiet_broken_pipe, walk_audio_files
from model_folder import ModelError, check_model_dir
from params import BACKENDS, DEFAULT_MODELS_DIR, SAMPLE_RATE, UNKNOWN_LABEL, YAMNET_OPTION_HELP
from backend import load_yamnet_and_model
from yamnet_classifier import YamnetError, top_classes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Classify audio files with YAMNet (AudioSet classes) or your custom model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help="audio files and/or folders of audio files")
    parser.add_argument("--custom", action="store_true", help="use your trained model instead of AudioSet classes")
    parser.add_argument("--models", type=Path, default=None,
                        help=f"folder of the trained model, with --custom (default: {DEFAULT_MODELS_DIR})")
    parser.add_argument("--top-k", type=int, default=1, help="how many classes to show per clip")
    parser.add_argument("--json", action="store_true", help="print one JSON object per clip per line")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help=YAMNET_OPTION_HELP)
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: TFLite when its models exist (fast start, no TensorFlow), else TensorFlow")
    return parser


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files as given, folders walked for audio; missing paths become errors, not aborts."""
    files, errors = [], []
    for path in paths:
        if path.is_dir():
            audio, _other = walk_audio_files(path)
            if not audio:
                errors.append((path, f"{path}: no audio files in this folder"))
            files += audio
        elif path.exists():
            files.append(path)
        else:
            errors.append((path, f"{path}: no such file or folder"))
    return files, errors


def warn_if_other_yamnet(meta: dict, yamnet, models_dir: Path) -> None:
    """A head only understands the embeddings of the YAMNet it was trained on."""
    trained = meta.get("yamnet", {})
    if trained.get("identity") and trained["identity"] != yamnet.identity:
        print(f"warning: the model in {models_dir} was trained on another YAMNet ({trained.get('handle')}); "
              f"results may be wrong: retrain, or pass --yamnet with that copy", file=sys.stderr)


def classify(waveform: np.ndarray, yamnet, custom, top_k: int) -> dict:
    """One clip -> {'label', 'confidence', 'top': [{'label', 'score'}]} from YAMNet, or from the
    custom head with also 'best_guess' and 'similarity' ('label' is "unknown" below the thresholds)."""
    if custom is not None:
        return custom.classify(custom.embed_clip(waveform, yamnet), top_k)
    scores, _embeddings = yamnet.run(waveform)
    ranked = top_classes(scores, yamnet.class_names, top_k)
    label, confidence = ranked[0]
    return {
        "label": label,
        "confidence": round(confidence, 6),
        "top": [{"label": name, "score": round(score, 6)} for name, score in ranked],
    }


def format_text(path: Path, result: dict) -> str:
    """Human-readable lines for one clip."""
    if result["label"] == UNKNOWN_LABEL:
        line = f"{path}: {UNKNOWN_LABEL} (best guess {result['best_guess']}, {result['confidence']:.1%}"
        line += "" if result["similarity"] is None else f", similarity {result['similarity']:.2f}"
        line += ")"
    else:
        line = f"{path}: {result['label']} ({result['confidence']:.1%})"
    if len(result["top"]) > 1:
        line += "".join(f"\n    {entry['label']}: {entry['score']:.1%}" for entry in result["top"])
    return line


@quiet_broken_pipe
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    if args.models is not None and not args.custom:
        parser.error("--models only applies with --custom")
    args.models = args.models or DEFAULT_MODELS_DIR
    try:
        if args.custom:
            check_model_dir(args.models)  # fail before paying for TensorFlow
        files, errors = expand_paths(args.paths)
        for _path, message in errors:
            print(f"error: {message}", file=sys.stderr)
        if not files:
            return 1
        yamnet, custom = load_yamnet_and_model(args.yamnet, args.models if args.custom else None, args.backend)
    except (ModelError, YamnetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if custom is not None:
        warn_if_other_yamnet(custom.meta, yamnet, args.models)

    return classify_files(files, len(errors), yamnet, custom, args)


def classify_files(files: list[Path], failed: int, yamnet, custom, args) -> int:
    """Classify and print each file; bad files are reported and skipped. Exit code 1 if any failed."""
    for path, waveform in iter_loaded_audio(files):
        if isinstance(waveform, AudioError):
            print(f"error: {waveform}", file=sys.stderr)
            failed += 1
            continue
        result = classify(waveform, yamnet, custom, args.top_k)
        if args.json:
            record = {"file": str(path), **result, "model": "custom" if custom else "yamnet",
                      "duration_s": round(len(waveform) / SAMPLE_RATE, 3)}
            print(json.dumps(record), flush=True)
        else:
            print(format_text(path, result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
