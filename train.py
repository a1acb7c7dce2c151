"""Train a classifier head on YAMNet embeddings from one sub-folder of clips per class.

    python train.py training/ models/

Every clip is judged once by cross-validation (a model that never saw it, background held out by
recording), the report printed and stored, then the final model is trained on everything (training.py
holds the recipe). Writes classifier.keras, classifier.tflite (YAMNet + head, for a fast start),
class_names.txt, model.json and prototypes.npz into the output folder, with the report drawn as
confusion.png and training_curve.png beside them.
"""

import argparse
import datetime
import errno
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from audio_util import first_line, quiet_broken_pipe
from dataset import DatasetError
from model import (
    ModelError,
    choose_unknown_thresholds,
    nearest_same_class_similarities,
    pick_prototypes,
    save_custom_model,
)
from params import (
    BACKGROUND_CLASS,
    CLIP,
    CONFUSION_PNG,
    LISTEN,
    STREAM,
    TRAINING,
    TRAINING_CURVE_PNG,
    YAMNET,
    YAMNET_OPTION_HELP,
)
import stream_training
import training
from training import TrainingConfig
from yamnet_classifier import YamnetError, load_yamnet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train your own sound classes on YAMNet embeddings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("training_dir", type=Path, help="folder with one sub-folder of audio clips per class")
    parser.add_argument("output_dir", type=Path, help="where to write the trained model")
    parser.add_argument("--negatives", type=Path, action="append", default=[], metavar="DIR",
                        help=f"background recordings of any length (a kitchen, a TV evening, an hour of game music) "
                             f"besides training_dir/{BACKGROUND_CLASS}/; repeatable")
    parser.add_argument("--cv", type=int, default=TRAINING.folds, metavar="K",
                        help="cross-validation folds: every clip and every background recording is judged once by a "
                             "model trained on the others; the report and the operating point come from them")
    parser.add_argument("--group-by", metavar="REGEX", default=None,
                        help=r"keep clips whose names share a group on one side of every fold, "
                             r"e.g. '_([a-z]+)_' for the speaker in 7_jackson_32.wav")
    parser.add_argument("--max-false-per-hour", type=float, default=STREAM.max_false_per_hour, metavar="X",
                        help="with background recordings: choose each class's threshold and windows so that the "
                             "listener raises at most this many false alarms per hour of such background")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default {TRAINING.epochs}; {STREAM.epochs} from {STREAM.many_frames} "
                             f"training frames on, about 25 min of background)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"frames per training batch (default {TRAINING.batch_size}; {STREAM.batch_size} from "
                             f"{STREAM.many_frames} training frames on)")
    parser.add_argument("--seed", type=int, default=TRAINING.seed, help="seed for the folds and the weights")
    parser.add_argument("--views", type=int, default=CLIP.views,
                        help="time-shifted copies of each clip to embed (1: the clip as is)")
    parser.add_argument("--level-dbfs", type=float, default=CLIP.level_dbfs, metavar="DBFS",
                        help=f"scale every clip (and live window) to this RMS level before YAMNet, e.g. "
                             f"{CLIP.suggested_level_dbfs:g} (off by default: on real recordings it lost to plain clips)")
    parser.add_argument("--no-level", action="store_true", help="keep each clip's own level (the default)")
    parser.add_argument("--no-balance", action="store_true",
                        help="no class weights (default: each class weighs as much as the others in training)")
    parser.add_argument("--no-refit", action="store_true",
                        help="keep the first fold's model (trained without 1/K of the files) instead of training the "
                             "final model on all of them")
    parser.add_argument("--splice-copies", type=int, default=STREAM.splice_copies, metavar="N",
                        help="with background: also train on each sound clip spliced N times into the background "
                             "(0: off)")
    parser.add_argument("--no-hard-negatives", action="store_true",
                        help="with background recordings: no second fit on the background the first fit scored high")
    parser.add_argument("--no-operating-point", action="store_true",
                        help=f"store no threshold and windows: listen.py then uses {LISTEN.threshold} and "
                             f"{LISTEN.min_frames} window(s)")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="also train on N pitch-shifted (±3 semitones), time-shifted copies of each training clip "
                             "(measured: +1.7 points with all clips, none with 20 per class; slower)")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help=YAMNET_OPTION_HELP)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: ~/.cache/audio2mqtt/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    parser.add_argument("--no-tflite", action="store_true",
                        help="skip writing classifier.tflite (main.py then starts with TensorFlow, ~10x slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    for gone, hint in (("--val-split", "train.py now judges every clip by cross-validation: --cv K"),
                       ("--no-streams", "background/ clips are always clips; for no splicing, hard negatives or "
                                        "operating point: --splice-copies 0 --no-hard-negatives --no-operating-point")):
        parser.add_argument(gone, nargs="?", const=True, default=None, help=argparse.SUPPRESS,
                            dest=gone.strip("-").replace("-", "_") + "_gone")
        parser.set_defaults(**{f"{gone.strip('-').replace('-', '_')}_hint": hint})
    return parser


def config_from(args) -> TrainingConfig:
    """The training config of the command line (epochs and batch size as the data needs them, unless given)."""
    return TrainingConfig(
        views=args.views, level_dbfs=None if args.no_level else args.level_dbfs, epochs=args.epochs,
        batch_size=args.batch_size, balance=not args.no_balance, refit=not args.no_refit, folds=args.cv,
        group_by=args.group_by, seed=args.seed, augment=args.augment, splice_copies=args.splice_copies,
        hard_negatives=not args.no_hard_negatives, operating_point=not args.no_operating_point,
        max_false_per_hour=args.max_false_per_hour)


def format_epoch(epoch: int, epochs: int, logs: dict) -> str:
    """One line per epoch."""
    line = f"epoch {epoch + 1:3d}/{epochs}  loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.3f}"
    if "val_accuracy" in logs:
        line += f"  val_loss {logs['val_loss']:.4f}  val_accuracy {logs['val_accuracy']:.3f}"
    return line


def clip_meta(config: TrainingConfig) -> dict:
    return {"views": config.views, "level_dbfs": config.level_dbfs}


def describe(data, facts: dict) -> str:
    """'2 classes: doorbell (20 clips), background (20 clips, 2 recordings, 31.2 min)'."""
    parts = []
    for index, name in enumerate(data.class_names):
        clips = facts["files_per_class"][name]
        text = f"{clips} clips"
        if index == data.background_index and facts["recordings"]:
            recorded = sum(s.seconds for s in data.streams if s.is_recording)
            text += f", {len(facts['recordings'])} recording(s), {recorded / 60:.1f} min"
        parts.append(f"{name} ({text})")
    return f"{len(data.class_names)} classes: " + ", ".join(parts)


def train(args) -> int:
    warn = lambda text: print(text, file=sys.stderr)  # noqa: E731
    prepared = training.prepare(args.training_dir, args.negatives, config_from(args), args.yamnet, args.cache_dir,
                                use_cache=not args.no_cache, warn=warn, progress=not args.quiet)
    data, facts, config, recipe, yamnet = (prepared.data, prepared.facts, prepared.config, prepared.recipe,
                                           prepared.yamnet)
    print(describe(data, facts))
    print(f"embeddings: {facts['computed']} computed, {facts['from_cache']} from cache, {facts['failed']} failed")
    if "augmented" in facts:
        print(f"augmented copies ({config.augment} per clip): {facts['augmented']['computed']} computed, "
              f"{facts['augmented']['from_cache']} from cache")
    for note in facts["notes"]:
        warn(f"note: {note}")
    if data.background_index is None:
        warn(f"note: no {BACKGROUND_CLASS}/ class: the model names one of your sounds for everything it hears; "
             f"listen.py will use threshold {LISTEN.threshold} and {LISTEN.min_frames} window(s)")
    elif not training.enough_background(data):
        warn(f"note: {data.background_seconds / 60:.1f} min of background is too little to count false alarms on "
             f"(an operating point needs {STREAM.min_background_minutes:g} min or more; an hour of what the microphone "
             f"usually hears is better): listen.py will use threshold {LISTEN.threshold} and {LISTEN.min_frames} "
             f"window(s)")

    print(f"\ncross-validation, {config.folds} folds (each clip and each background recording judged by a model "
          f"that never saw it{', grouped by ' + config.group_by if config.group_by else ''}):")
    cv = training.cross_validate(data, recipe, log=print, keep_first=not config.refit)
    report = cv.report
    if report:
        print("\n" + training.format_cross_validation(cv))
    points = []
    if config.operating_point and data.background_index is not None and training.enough_background(data):
        points = stream_training.choose_operating_points(cv.calibration, data.class_names, data.background_index,
                                                         config.max_false_per_hour)
    means = data.clip_means() if data.clips else None
    unknown = choose_unknown_thresholds(data.class_names, training.right_answers(data, cv),
                                        similarities_by_class(data, means))
    if config.refit:
        print(f"\nfinal model: all {len(data.clips)} clips"
              + (f" and {data.background_seconds / 60:.1f} min of background" if data.streams else ""))
        model, _history, counts = training.fit_model(
            data, list(range(len(data.clips))), list(range(len(data.streams))),
            replace(recipe, fit=training.head_fitter(config, data.class_names, on_epoch=None if args.quiet else (
                lambda epoch, logs: print(format_epoch(epoch, config.epochs, logs), flush=True)))),
            np.random.default_rng([config.seed, config.folds]))
        print(f"  {counts['clip_frames']} clip frames, {counts['background_windows']} background windows, "
              f"{counts['spliced_windows']} spliced windows, {counts['hard_negatives']} hard negatives"
              + (f", {counts['false_alarm_frames']} false-alarm frames (x{STREAM.false_alarm_copies + 1})"
                 if counts["false_alarm_frames"] else ""))
    else:
        print("\nfinal model: the first fold's (--no-refit)")
        model, counts = cv.first_model, {}
    print_unknown_thresholds(unknown)
    if points:
        print(f"operating point (listen.py uses it by default; <= {config.max_false_per_hour:g} false alarm(s)/h asked):")
        for point in points:
            print(stream_training.format_operating_point(point, config.max_false_per_hour))

    meta = {
        **model_meta(yamnet, data.class_names, unknown, config),
        "training": {
            "config": config.as_dict(),
            "training_dir": str(args.training_dir),
            "files_per_class": facts["files_per_class"],
            "background_recordings": facts["recordings"],
            "background_minutes": round(data.background_seconds / 60, 2),
            "frames": counts,
            "learning_rate": TRAINING.learning_rate,
            "cross_validation": cv.summary(config.folds, config.group_by),
        },
    }
    if points:
        meta.update(thresholds={p.label: round(p.threshold, 6) for p in points},
                    min_frames={p.label: p.min_frames for p in points},
                    operating_points={p.label: p.as_dict() for p in points})
    write_model(args, yamnet.handle, model.head, data.class_names, means, meta, training.mean_history(cv.histories),
                report, config.seed)
    return 0


def model_meta(yamnet, class_names: list[str], unknown: dict, config: TrainingConfig) -> dict:
    """The parts of model.json every training writes: what the model is and how it hears."""
    return {
        "class_names": class_names,
        "yamnet": {"handle": yamnet.handle, "identity": yamnet.identity},
        "audio": {
            "sample_rate": YAMNET.sample_rate,
            "patch_window_seconds": YAMNET.patch_window_seconds,
            "patch_hop_seconds": YAMNET.patch_hop_seconds,
            "embedding_size": YAMNET.embedding_size,
        },
        "clip": clip_meta(config),
        "head": {"hidden_units": TRAINING.hidden_units, "output": "logits"},
        "inference": "each clip embedded as in \"clip\"; mean embedding over patches -> head -> softmax; "
                     "\"unknown\" below the class's probability or similarity threshold",
        "unknown": {**unknown, "similarity_to": "closest training clip of the class (cosine of mean embeddings)"},
    }


def write_model(args, handle: str, head, class_names: list[str], means: tuple, meta: dict, curve: dict,
                report: dict | None, seed: int) -> None:
    """The model folder (see model.save_custom_model) with its prototypes, training curve and confusion matrix."""
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    prototypes = pick_prototypes(*means, seed)
    save_custom_model(args.output_dir, head, class_names, meta, prototypes,
                      export_tflite=None if args.no_tflite else lambda out: export_pipeline(handle, head, out, meta))
    plot_training_curve(curve, args.output_dir / TRAINING_CURVE_PNG)
    if report:
        from metrics import plot_confusion

        plot_confusion(report, args.output_dir / CONFUSION_PNG)
    else:  # one from an earlier training would describe another model
        (args.output_dir / CONFUSION_PNG).unlink(missing_ok=True)
    print(f"model written to {args.output_dir}")


def export_pipeline(handle: str, head, out_dir: Path, meta: dict) -> None:
    """classifier.tflite: YAMNet and the head as one TFLite model, for main.py's fast start."""
    from params import PIPELINE_TFLITE_FILENAME
    from tflite_backend import TfliteError, export_pipeline_tflite, sidecar_path

    path = out_dir / PIPELINE_TFLITE_FILENAME
    try:
        export_pipeline_tflite(load_yamnet(handle), head, path, meta["class_names"], meta)
    except (TfliteError, ImportError, OSError) as e:  # the Keras model still works, only slower to start
        path.unlink(missing_ok=True)  # an older export would describe another training
        sidecar_path(path).unlink(missing_ok=True)
        print(f"warning: could not write {path.name} ({first_line(e)}); main.py will start with TensorFlow",
              file=sys.stderr)


def similarities_by_class(data, means: tuple | None) -> dict[str, list[float]]:
    """{class: each clip's similarity to the closest other clip of its class}; `means`: data.clip_means()."""
    if means is None:
        return {}
    mean_embeddings, labels = means
    similarities = nearest_same_class_similarities(mean_embeddings, labels)
    return {name: similarities[labels == i].tolist() for i, name in enumerate(data.class_names)}


def print_unknown_thresholds(unknown: dict) -> None:
    """Tell the user when main.py --custom will answer "unknown"."""
    names = sorted(set(unknown["probability"]) | set(unknown["similarity"]))
    if not names:
        print("unknown: no thresholds (no held-out clips to choose them on)")
        return
    print('main.py --custom answers "unknown" below these (probability, similarity to training clips):')
    for name in names:
        probability = unknown["probability"].get(name)
        similarity = unknown["similarity"].get(name)
        print(f"  {name}: " + ", ".join(["-" if probability is None else f"{probability:.2f}",
                                         "-" if similarity is None else f"{similarity:.2f}"]))


def plot_training_curve(history: dict, path: Path) -> None:
    """Loss and accuracy per epoch of the cross-validation folds (their mean) to a PNG: on the training
    frames, and on the held-out clips' frames whenever a fold held some out. Held-out loss climbing while
    training loss falls is the head learning your clips by heart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from atomic_write import atomic_output

    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for ax, key, title in ((loss_ax, "loss", "loss (cross-entropy)"), (accuracy_ax, "accuracy", "accuracy of frames")):
            for name, label in ((key, "training"), (f"val_{key}", "held-out clips")):
                if history.get(name):
                    ax.plot(np.arange(1, len(history[name]) + 1), history[name], label=label)
            ax.set_xlabel("epoch (mean over the cross-validation folds)")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        accuracy_ax.set_ylim(0, 1.02)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


@quiet_broken_pipe
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for gone in ("val_split", "no_streams"):
        if getattr(args, f"{gone}_gone") is not None:
            parser.error(f"--{gone.replace('_', '-')} is gone: {getattr(args, f'{gone}_hint')}")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if not args.max_false_per_hour > 0:
        parser.error("--max-false-per-hour must be more than 0")
    if args.views < 1:
        parser.error("--views must be at least 1")
    if args.augment < 0:
        parser.error("--augment must be 0 (off) or more copies")
    if args.splice_copies < 0:
        parser.error("--splice-copies must be 0 (off) or more")
    if args.cv < 2:
        parser.error("--cv needs at least 2 folds")
    if args.seed < 0:
        parser.error("--seed must be 0 or more")
    if args.group_by is not None and training.group_by_error(args.group_by):
        parser.error(training.group_by_error(args.group_by))
    if args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"output {args.output_dir} exists and is not a folder")
    try:
        check_writable(args.output_dir)  # before the work, not after it
        return train(args)
    except (DatasetError, YamnetError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout's reader went away, not the model folder: quiet_broken_pipe
        raise
    except OSError as e:
        print(f"error: cannot write {e.filename or args.output_dir}: {e.strerror or e}", file=sys.stderr)
        return 1


def check_writable(folder: Path) -> None:
    """Raise OSError unless `folder` could be created and written, without creating anything."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OSError(errno.ENOTDIR, "not a folder", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OSError(errno.EACCES, "permission denied", str(existing))


if __name__ == "__main__":
    sys.exit(main())
