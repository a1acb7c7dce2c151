"""Measure a trained model on labelled test clips (one sub-folder per class, like training/).

    python evaluate.py test_dir/ models/
    python evaluate.py test_dir/ models/ --json
    python evaluate.py test_dir/ models/ --out reports/
    python evaluate.py training/ --cv 5 --group-by '_([a-z]+)_'   # no test set: K-fold by file
    python evaluate.py --stream recording.wav --labels recording.txt models/   # as listen.py would

Each clip is classified as `main.py --custom` does (mean embedding -> head -> argmax) and the
report (metrics.py, the same as train.py's) leads with balanced accuracy, the mean of the classes'
recall, then per-class recall/precision/F1 and a confusion matrix (rows: true class, columns:
predicted, in the model's class order), printed as text and drawn to confusion.png in --out or the
model folder.

Test folders whose name is not one of the model's classes are refused before anything is
computed: the model can never predict them, so every clip would count as an error and the
report would mix two questions (wrong class vs. unknown class). Rename or remove the folder.
Model classes without a test folder are fine: their row is empty and they can still be predicted.

A model whose model.json has "clip": {"level_dbfs": -20.0, "views": 4} is evaluated the way it
was trained: each clip scaled to that RMS level and embedded as that many time-shifted views
(augment.normalize_rms, augment.time_shifted_views) before the mean embedding goes to the head.
Models without the key are evaluated as main.py --custom classifies today (the clip as it is).

With --cv K there is no separate test set: the folder is cross-validated exactly as train.py does it
(training.cross_validate: clips by file or --group-by group, background by recording), with the
training config of the model given (or train.py's defaults): the same folds give the same figure.

With --stream the recording is played through listen.py's own loop (windows, thresholds,
hysteresis) and scored against labels made by ear in Audacity (a label track exported as text:
start<TAB>end<TAB>label): recall, false alarms per hour of the audio outside the labels, onset
latency, DCASE event-based F1 (sed_eval) and PSDS (sed_scores_eval), and stream.png with the score
over time, the labelled spans, the threshold and the events (see stream_eval.py).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from audio_util import quiet_broken_pipe
from metrics import build_report, format_report, plot_confusion
from model_folder import ModelError, check_model_dir, read_model_json
from params import BACKENDS, CONFUSION_PNG, LISTEN, SAMPLE_RATE, UNKNOWN_LABEL, YAMNET_OPTION_HELP

STREAM_PNG = "stream.png"


class EvaluationError(Exception):
    """Test data that cannot be evaluated against this model; the message says what to do."""


# --- test folder -------------------------------------------------------------------------------------

def match_test_folder(files_by_class: dict[str, list[Path]], class_names: list[str]):
    """[(path, class index)] for every test clip; refuses class folders the model does not know."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in files_by_class if name not in index]
    if unknown:
        raise EvaluationError(
            f"test folder(s) {', '.join(repr(n) for n in unknown)} are not classes of the model "
            f"({', '.join(class_names)}); rename them to a model class or remove them"
        )
    return [(path, index[name]) for name, files in files_by_class.items() for path in files]


def scan_test_folder(root: Path) -> dict[str, list[Path]]:
    """{class folder name: audio files}; like training folders but one class is enough."""
    from audio_util import walk_audio_files

    if not root.is_dir():
        raise EvaluationError(f"test folder {root} does not exist: make one sub-folder per class with clips in it")
    files_by_class = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio, _other = walk_audio_files(folder)
        if audio:
            files_by_class[folder.name] = audio
    if not files_by_class:
        raise EvaluationError(f"no audio in class sub-folders of {root}: put test clips in {root}/<class name>/")
    return files_by_class


# --- CLI ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate a trained model on test clips in one sub-folder per class.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("test_dir", type=Path, help="folder with one sub-folder of audio clips per class")
    parser.add_argument("models_dir", type=Path, nargs="?", default=None,
                        help="folder of the trained model (written by train.py); optional with --cv")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for {CONFUSION_PNG} (default: the model folder)")
    parser.add_argument("--stream", type=Path, metavar="RECORDING",
                        help="score a long recording as listen.py would; needs --labels and the model folder only")
    parser.add_argument("--labels", type=Path, metavar="LABELS_TXT",
                        help="with --stream: Audacity labels (start<TAB>end<TAB>label) of the sounds in it")
    parser.add_argument("--threshold", action="append", default=[], metavar="[LABEL=]P",
                        help="with --stream: score a window must reach, as listen.py's --threshold (repeatable)")
    parser.add_argument("--min-frames", type=int, default=None,
                        help=f"with --stream: windows at/above threshold to start an event, as listen.py "
                             f"(default: the model's operating point, else {LISTEN.min_frames})")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="with --stream: auto (TFLite when its models exist), tf or tflite")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="cross-validate test_dir as train.py does: K models, each trained with the model's "
                             "recipe (or train.py's defaults) on K-1 parts and judged on the rest")
    parser.add_argument("--negatives", type=Path, action="append", default=[], metavar="DIR",
                        help="with --cv: background recordings besides test_dir/background/, as train.py --negatives")
    parser.add_argument("--group-by", metavar="REGEX", default=None,
                        help=r"with --cv: keep files whose names share a group on one side of every fold, "
                             r"e.g. '_([a-z]+)_' for the speaker in 7_jackson_32.wav")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help=YAMNET_OPTION_HELP)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: ~/.cache/audio2mqtt/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    return parser


def evaluate(args) -> dict:
    """Classify every test clip; returns the report (see `build_report`)."""
    from class_map import ClassMapError, read_class_names
    from dataset import EmbeddingCache, default_cache_dir, embed_files
    from model import clip_settings, load_custom_model
    from params import CLASS_NAMES_FILENAME
    from yamnet_classifier import load_yamnet, resolve_yamnet_handle

    check_model_dir(args.models_dir)  # before TensorFlow: a wrong path fails in milliseconds
    try:
        class_names = read_class_names(args.models_dir / CLASS_NAMES_FILENAME)
    except ClassMapError as e:
        raise EvaluationError(str(e)) from e
    items = match_test_folder(scan_test_folder(args.test_dir), class_names)

    model = load_custom_model(args.models_dir)
    views, level_dbfs = clip_settings(model.meta)
    yamnet = load_yamnet(resolve_yamnet_handle(args.yamnet))
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir or default_cache_dir(), yamnet.identity)
    result = embed_files([path for path, _ in items], yamnet, cache, progress=not args.json,
                         views=views, level_dbfs=level_dbfs)
    for path, reason in result.failed:
        print(f"skipped {reason}", file=sys.stderr)
    scored = [(path, label) for path, label in items if path in result.embeddings]
    if not scored:
        raise EvaluationError(f"no readable test clips in {args.test_dir}")
    answers = [model.classify(result.embeddings[path]) for path, _ in scored]
    predicted = [model.class_names.index(answer["best_guess"]) for answer in answers]
    report = build_report(model.class_names, [label for _, label in scored], predicted,
                          files=[path for path, _ in scored])
    # Accuracy is of the best guess; how often main.py --custom would have said "unknown" instead:
    report["unknown"] = sum(answer["label"] == UNKNOWN_LABEL for answer in answers)
    report["model"] = str(args.models_dir)
    report["clip"] = {"views": views, "level_dbfs": level_dbfs}
    report["test_dir"] = str(args.test_dir)
    report["skipped"] = [{"file": str(path), "reason": reason} for path, reason in result.failed]
    return report


def cross_validate_folder(args) -> dict:
    """--cv: the recipe of the model given (its model.json "training" config), or train.py's defaults,
    cross-validated on one folder exactly as train.py does (training.prepare, training.cross_validate):
    the same folds, the same meaning of background/, the same report. Returns the report with the
    fold scores."""
    from dataclasses import replace

    import training

    meta = {}
    if args.models_dir is not None:
        check_model_dir(args.models_dir)
        meta = read_model_json(args.models_dir)
    trained = meta.get("training") or {}
    config = training.TrainingConfig.from_dict(trained.get("config"))
    config = replace(config, folds=args.cv, group_by=args.group_by or config.group_by)
    warn = lambda text: print(text, file=sys.stderr)  # noqa: E731
    elsewhere = [path for path in trained.get("background_recordings", [])
                 if not Path(path).resolve().is_relative_to(args.test_dir.resolve())]
    if elsewhere and not args.negatives:
        warn(f"note: {args.models_dir} was trained with {len(elsewhere)} background recording(s) from outside "
             f"{args.test_dir} (--negatives); without them the figure is not the one train.py printed")
    prepared = training.prepare(args.test_dir, args.negatives, config, args.yamnet, args.cache_dir,
                                use_cache=not args.no_cache, warn=warn, progress=not args.json)
    cv = training.cross_validate(prepared.data, prepared.recipe, log=(lambda _text: None) if args.json else print)
    if cv.report is None:
        raise EvaluationError(f"no clips to cross-validate in {args.test_dir}")
    if not args.json:
        print("\n" + training.format_cross_validation(cv))
    summary = cv.summary(prepared.config.folds, prepared.config.group_by)
    return {**summary["report"], "fold_balanced_accuracies": summary["fold_balanced_accuracies"],
            "mean_fold_balanced_accuracy": summary["mean_balanced_accuracy"], "folds": prepared.config.folds,
            "group_by": prepared.config.group_by, "config": prepared.config.as_dict(), "test_dir": str(args.test_dir),
            "skipped": [{"file": path, "reason": reason} for path, reason in prepared.facts["skipped"]]}


def evaluate_stream(args) -> dict:
    """--stream: the recording through listen.py's loop with the model, scored against its labels;
    writes stream.png. Returns stream_eval.stream_report plus the file names."""
    import stream_eval
    from audio_util import AudioError, load_audio_16k_mono
    from detection import parse_min_frames, parse_thresholds
    from backend import load_yamnet_and_model

    references = stream_eval.read_audacity_labels(args.labels)
    check_model_dir(args.models_dir)
    try:
        waveform = load_audio_16k_mono(args.stream)
    except AudioError as e:
        raise EvaluationError(str(e)) from e
    duration_s = len(waveform) / SAMPLE_RATE
    for start, _end, name in references:
        if start >= duration_s:
            raise EvaluationError(f"{args.labels}: label {name!r} at {start:g} s starts after {args.stream.name} ends "
                                  f"({duration_s:.1f} s): the labels of another recording?")
    yamnet, model = load_yamnet_and_model(args.yamnet, args.models_dir, args.backend)
    labels = model.class_names
    thresholds = parse_thresholds(args.threshold, labels, model.meta.get("thresholds"))
    min_frames = parse_min_frames(args.min_frames, labels, model.meta.get("min_frames"))
    run = stream_eval.score_stream(
        waveform, lambda windows: np.stack([model.window_probabilities(w, yamnet) for w in windows]),
        labels, thresholds, min_frames)
    report = stream_eval.stream_report(run, references, labels, thresholds)
    png = (args.out or args.models_dir) / STREAM_PNG
    stream_eval.plot_stream(png, run.times_s, run.scores, labels, references, thresholds, run.events,
                            title=args.stream.name, min_frames=min_frames)
    report.update(recording=str(args.stream), labels_file=str(args.labels), model=str(args.models_dir),
                  min_frames=min_frames, stream_png=str(png))
    return report


@quiet_broken_pipe
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stream is not None:
        return main_stream(parser, args)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    if args.cv == 1 or args.cv < 0:
        parser.error("--cv needs at least 2 folds (0 turns it off)")
    if args.group_by is not None and not args.cv:
        parser.error("--group-by only applies with --cv")
    if args.group_by is not None:
        import training

        if training.group_by_error(args.group_by):
            parser.error(training.group_by_error(args.group_by))
    if args.negatives and not args.cv:
        parser.error("--negatives only applies with --cv")
    if args.models_dir is None and not args.cv:
        parser.error("give the model folder: python evaluate.py test_dir/ models/ (or use --cv K)")
    from dataset import DatasetError
    from yamnet_classifier import YamnetError

    try:
        report = cross_validate_folder(args) if args.cv else evaluate(args)
        png_folder = args.out or args.models_dir
        if png_folder is not None:
            png = png_folder / CONFUSION_PNG
            plot_confusion(report, png)
            report["confusion_png"] = str(png)
    except (EvaluationError, ModelError, YamnetError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. --out on a read-only disk
        print(f"error: cannot write {CONFUSION_PNG}: {e.strerror or e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        if not args.cv:  # cross_validate printed its report already
            print(format_report(report))
        if report.get("unknown"):
            print(f"\n{report['unknown']} of {report['clips']} clips are below their class's thresholds: "
                  f"main.py --custom answers \"unknown\" for them (the table scores its best guesses)")
        if report["skipped"]:
            print(f"\n{len(report['skipped'])} unreadable clip(s) skipped (listed above)")
        if "confusion_png" in report:
            print(f"\nconfusion matrix drawn to {report['confusion_png']}")
    return 1 if report["skipped"] else 0


def main_stream(parser, args) -> int:
    """evaluate.py --stream RECORDING --labels LABELS MODELS_DIR."""
    if args.models_dir is not None:
        parser.error("with --stream give only the model folder: evaluate.py --stream rec.wav --labels rec.txt models/")
    args.models_dir = args.test_dir
    if args.labels is None:
        parser.error("--stream needs --labels LABELS_TXT (an Audacity label track exported as text)")
    if args.cv:
        parser.error("--cv and --stream are separate evaluations")
    if args.min_frames is not None and args.min_frames < 1:
        parser.error("--min-frames must be at least 1")
    import stream_eval
    from detection import DetectionError
    from yamnet_classifier import YamnetError

    try:
        report = evaluate_stream(args)
    except (EvaluationError, ModelError, YamnetError, DetectionError, stream_eval.LabelsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write {STREAM_PNG}: {e.strerror or e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(stream_eval.format_stream_report(report))
        print(f"\nscores over time drawn to {report['stream_png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
