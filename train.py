"""Train a classifier head on YAMNet embeddings from one sub-folder of clips per class.

    python train.py training/ models/

Writes classifier.keras, classifier.tflite (YAMNet + head, for a fast start), class_names.txt,
model.json and prototypes.npz into the output folder, with the validation report drawn as
confusion.png and training_curve.png beside them.
"""

import argparse
import datetime
import errno
import os
import re
import sys
from pathlib import Path

import numpy as np

from dataset import (
    DatasetError,
    EmbeddingCache,
    cross_validation_folds,
    default_cache_dir,
    embed_classes,
    embed_files,
    frames_and_labels,
    ignored_note,
    scan_and_report,
    split_by_file,
)
from audio_util import first_line
from model import (
    CustomModel,
    ModelError,
    build_classifier_head,
    choose_unknown_thresholds,
    nearest_same_class_similarities,
    pick_prototypes,
    save_custom_model,
)
from params import BACKGROUND_CLASS, CLIP, CONFUSION_PNG, LISTEN, STREAM, TRAINING, TRAINING_CURVE_PNG, YAMNET, YAMNET_ENV_VAR
from yamnet_classifier import YamnetError, load_yamnet, resolve_yamnet_handle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train your own sound classes on YAMNet embeddings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("training_dir", type=Path, help="folder with one sub-folder of audio clips per class")
    parser.add_argument("output_dir", type=Path, help="where to write the trained model")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default {TRAINING.epochs}; {STREAM.epochs} with background recordings)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"frames per training batch (default {TRAINING.batch_size}; {STREAM.batch_size} with "
                             f"background recordings)")
    parser.add_argument("--negatives", type=Path, action="append", default=[], metavar="DIR",
                        help=f"background recordings of any length (a kitchen, a TV evening, an hour of game music) "
                             f"besides training_dir/{BACKGROUND_CLASS}/; repeatable")
    parser.add_argument("--max-false-per-hour", type=float, default=STREAM.max_false_per_hour, metavar="X",
                        help="with background recordings: choose each class's threshold and windows so that the "
                             "listener raises at most this many false alarms per hour of such background")
    parser.add_argument("--no-streams", action="store_true",
                        help=f"treat {BACKGROUND_CLASS}/ as clips like any class: no splicing, no operating point")
    parser.add_argument("--val-split", type=float, default=TRAINING.val_split,
                        help="fraction of each class's files held out for validation (0 disables)")
    parser.add_argument("--no-refit", action="store_true",
                        help="keep the model trained without the validation files (default: after validating, "
                             "train the final model on all files)")
    parser.add_argument("--seed", type=int, default=TRAINING.seed, help="seed for the split and the weights")
    parser.add_argument("--views", type=int, default=CLIP.views,
                        help="time-shifted copies of each clip to embed (1: the clip as is)")
    parser.add_argument("--level-dbfs", type=float, default=CLIP.level_dbfs,
                        help="scale every clip to this RMS level before YAMNet")
    parser.add_argument("--no-level", action="store_true", help="keep each clip's own level")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="also train on N pitch-shifted (±3 semitones), time-shifted copies of each training clip "
                             "(measured: +1.7 points with all clips, none with 20 per class; slower)")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None,
                        help=f"YAMNet SavedModel folder or TF Hub URL (default: ${YAMNET_ENV_VAR} or models/yamnet)")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="also estimate accuracy by K-fold cross-validation by file (0: off)")
    parser.add_argument("--group-by", metavar="REGEX", default=None,
                        help=r"with --cv: keep files whose names share a group on one side of every fold, "
                             r"e.g. '_([a-z]+)_' for the speaker in 7_jackson_32.wav")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: ~/.cache/audio2mqtt/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    parser.add_argument("--no-tflite", action="store_true",
                        help="skip writing classifier.tflite (main.py then starts with TensorFlow, ~10x slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    return parser


def format_epoch(epoch: int, epochs: int, logs: dict) -> str:
    """One line per epoch (Keras's own progress bars flood logs)."""
    line = f"epoch {epoch + 1:3d}/{epochs}  loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.3f}"
    if "val_accuracy" in logs:
        line += f"  val_loss {logs['val_loss']:.4f}  val_accuracy {logs['val_accuracy']:.3f}"
    return line


def clip_accuracy(model: CustomModel, items, embeddings: dict) -> float | None:
    """Accuracy per file, as main.py --custom classifies (mean embedding -> head -> argmax)."""
    scored = [(path, label) for path, label in items if path in embeddings]
    if not scored:
        return None
    correct = sum(model.predict_clip(embeddings[path]) == label for path, label in scored)
    return correct / len(scored)


def fit_head(args, num_classes: int, x, y, validation=None, print_epochs: bool = False, class_weight=None):
    """A fresh head trained on frames x (n, 1024) with labels y (n,); returns (head, Keras history)."""
    from yamnet_classifier import import_tensorflow

    import_tensorflow()  # first, so its start-up chatter is silenced
    import keras

    keras.utils.set_random_seed(args.seed)
    head = build_classifier_head(num_classes)
    history = head.fit(
        x, y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation,
        class_weight=class_weight,
        callbacks=[keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: print(format_epoch(epoch, args.epochs, logs), flush=True))]
        if print_epochs else [],
        verbose=0,
    )
    return head, history


def training_frames(items, embeddings: dict, augmented: dict | None = None):
    """Frames and labels of the training items, plus their augmented copies' frames if any."""
    x, y = frames_and_labels(items, embeddings)
    if augmented:
        x_aug, y_aug = frames_and_labels(items, augmented)
        x, y = np.concatenate([x, x_aug]), np.concatenate([y, y_aug])
    return x, y


def cross_validate(args, files_by_class: dict, embeddings: dict, class_names: list[str], quiet: bool = False,
                   augmented: dict | None = None) -> dict:
    """K-fold by file (or by --group-by group): train on K-1 folds, classify the held-out clips as
    main.py --custom does; print each fold and the pooled report (unless quiet). Returns a summary
    for model.json. `args` needs cv, group_by, seed, epochs and batch_size."""
    from evaluate import build_report, format_report

    folds = cross_validation_folds(files_by_class, args.cv, args.seed, args.group_by)
    true, predicted, files, fold_accuracies = [], [], [], []
    for number, (train_items, test_items) in enumerate(folds, 1):
        missing = sorted(set(class_names) - {class_names[label] for _path, label in train_items})
        if missing and not quiet:  # all of a class's files in one group: this fold can't predict it
            print(f"warning: cross-validation fold {number} has no training clips of {', '.join(map(repr, missing))} "
                  f"(all in the held-out group); its score says little about them", file=sys.stderr)
        x, y = training_frames(train_items, embeddings, augmented)
        head, _history = fit_head(args, len(class_names), x, y)
        model = CustomModel(head=head, class_names=class_names, meta={})
        fold_true = [label for _path, label in test_items]
        fold_predicted = [model.predict_clip(embeddings[path]) for path, _label in test_items]
        accuracy = float(np.mean(np.equal(fold_true, fold_predicted)))
        fold_accuracies.append(accuracy)
        if not quiet:
            print(f"cross-validation fold {number}/{args.cv}: {accuracy:.1%} of {len(test_items)} clips", flush=True)
        true += fold_true
        predicted += fold_predicted
        files += [path for path, _label in test_items]
    report = build_report(class_names, true, predicted, files)
    if not quiet:
        print(f"cross-validation ({args.cv} folds{', grouped by ' + args.group_by if args.group_by else ''}): "
              f"mean {np.mean(fold_accuracies):.1%} ± {np.std(fold_accuracies):.1%} per fold")
        print(format_report(report))
    return {"folds": args.cv, "group_by": args.group_by, "fold_accuracies": fold_accuracies,
            "mean_accuracy": float(np.mean(fold_accuracies)),
            "report": {k: report[k] for k in ("accuracy", "per_class", "confusion", "labels", "clips", "macro")}}


def clip_level(args) -> float | None:
    return None if args.no_level else args.level_dbfs


def background_recordings(args, files_by_class: dict) -> list[Path]:
    """The background recordings for stream training: training_dir/background/ and every --negatives
    folder, each file once (a folder given twice would count its hours twice)."""
    from audio_util import walk_audio_files

    paths = list(files_by_class.get(BACKGROUND_CLASS, []))
    for folder in args.negatives:
        if not folder.is_dir():
            raise DatasetError(f"--negatives {folder} is not a folder of background recordings")
        audio, other = walk_audio_files(folder)
        if not audio:
            raise DatasetError(f"no audio in {folder}: --negatives needs a folder of background recordings")
        if other:
            print(f"note: {ignored_note(folder, other)}", file=sys.stderr)
        paths += audio
    unique = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def train(args) -> int:
    files_by_class = scan_and_report(args.training_dir, background_elsewhere=bool(args.negatives))  # before YAMNet loads
    recordings = [] if args.no_streams else background_recordings(args, files_by_class)
    streams = bool(recordings)
    defaults = STREAM if streams else TRAINING
    args.epochs = args.epochs or defaults.epochs
    args.batch_size = args.batch_size or defaults.batch_size
    class_names = list(files_by_class)
    print(f"{len(class_names)} classes: " + ", ".join(f"{name} ({len(files)})" for name, files in files_by_class.items()))
    if streams:
        return train_streams(args, files_by_class, recordings)
    if BACKGROUND_CLASS not in files_by_class:
        print(f"note: no background recordings ({args.training_dir / BACKGROUND_CLASS}/ or --negatives), so no "
              f"operating point: listen.py will use threshold {LISTEN.threshold} and {LISTEN.min_frames} window(s), "
              f"and may cry wolf on sounds it never heard", file=sys.stderr)

    handle = resolve_yamnet_handle(args.yamnet)
    yamnet = embedding_yamnet(handle)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir or default_cache_dir(), yamnet.identity)
    usable, result = embed_classes(args.training_dir, files_by_class, yamnet, cache, progress=not args.quiet,
                                   views=args.views, level_dbfs=clip_level(args))
    print(f"embeddings: {result.computed} computed, {result.from_cache} from cache, {len(result.failed)} failed")
    embeddings = result.embeddings

    augmented = None
    if args.augment:
        usable_files = [path for files in usable.values() for path in files]
        copies = embed_files(usable_files, yamnet, cache, progress=not args.quiet, level_dbfs=clip_level(args),
                             augment_copies=args.augment, seed=args.seed)
        augmented = copies.embeddings
        print(f"augmented copies ({args.augment} per clip): {copies.computed} clips computed, {copies.from_cache} from cache")

    train_items, val_items = split_by_file(usable, args.val_split, args.seed)
    x_train, y_train = training_frames(train_items, embeddings, augmented)
    x_val, y_val = frames_and_labels(val_items, embeddings)
    print(f"training on {len(train_items)} files ({len(x_train)} frames), validating on {len(val_items)} files ({len(x_val)} frames)")

    cv_summary = cross_validate(args, usable, embeddings, class_names, augmented=augmented) if args.cv else None

    head, history = fit_head(args, len(class_names), x_train, y_train, (x_val, y_val) if len(x_val) else None,
                             print_epochs=not args.quiet)
    model = CustomModel(head=head, class_names=class_names, meta={})
    train_frame_accuracy = float(head.evaluate(x_train, y_train, verbose=0)[1])
    train_clip = clip_accuracy(model, train_items, embeddings)
    print(f"final training accuracy: {train_frame_accuracy:.1%} of frames, {train_clip:.1%} of clips")
    validation = validate(args, model, val_items, embeddings, history)

    all_items = train_items + val_items
    unknown = choose_unknown_thresholds(class_names, validation["probabilities"],
                                        similarities_by_class(all_items, embeddings, class_names))
    refit = bool(val_items) and not args.no_refit
    if refit:
        x_all, y_all = training_frames(all_items, embeddings, augmented)
        print(f"final model: training again on all {len(all_items)} files ({len(x_all)} frames)")
        head, _history = fit_head(args, len(class_names), x_all, y_all)
    print_unknown_thresholds(unknown)

    meta = {
        **model_meta(args, yamnet, class_names, unknown),
        "training": {
            "training_dir": str(args.training_dir),
            "files_per_class": {name: len(files) for name, files in usable.items()},
            "train_files": len(train_items),
            "val_files": len(val_items),
            "train_frames": int(len(x_train)),
            "refit_on_all_files": refit,
            "augment_copies": args.augment,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "val_split": args.val_split,
            "seed": args.seed,
            "learning_rate": TRAINING.learning_rate,
            "final_loss": float(history.history["loss"][-1]),
            "train_frame_accuracy": train_frame_accuracy,
            "train_clip_accuracy": train_clip,
            "val_clip_accuracy": validation["accuracy"],
            "validation_report": validation["report"],
            "cross_validation": cv_summary,
        },
    }
    write_model(args, handle, head, class_names, meta, all_items, embeddings, history, validation["report"])
    return 0


def model_meta(args, yamnet, class_names: list[str], unknown: dict) -> dict:
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
        "clip": {"views": args.views, "level_dbfs": clip_level(args)},
        "head": {"hidden_units": TRAINING.hidden_units, "output": "logits"},
        "inference": "each clip embedded as in \"clip\"; mean embedding over patches -> head -> softmax; "
                     "\"unknown\" below the class's probability or similarity threshold",
        "unknown": {**unknown, "similarity_to": "closest training clip of the class (cosine of mean embeddings)"},
    }


def write_model(args, handle: str, head, class_names: list[str], meta: dict, clip_items, embeddings: dict, history,
                report: dict | None) -> None:
    """The model folder (see model.save_custom_model) with its prototypes, training curve and confusion matrix."""
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    mean_embeddings = np.stack([embeddings[path].mean(axis=0) for path, _label in clip_items])
    prototypes = pick_prototypes(mean_embeddings, np.array([label for _path, label in clip_items]), args.seed)
    save_custom_model(args.output_dir, head, class_names, meta, prototypes,
                      export_tflite=None if args.no_tflite else lambda out: export_pipeline(handle, head, out, meta))
    plot_training_curve(history.history, args.output_dir / TRAINING_CURVE_PNG)
    if report:
        from evaluate import plot_confusion

        plot_confusion(report, args.output_dir / CONFUSION_PNG)
    else:  # one from an earlier training would describe another model
        (args.output_dir / CONFUSION_PNG).unlink(missing_ok=True)
    print(f"model written to {args.output_dir}")


def load_recordings(paths: list[Path]) -> tuple[list[np.ndarray], list[Path]]:
    """The readable background recordings (16 kHz mono) and their paths; unreadable ones are listed and skipped."""
    from audio_util import iter_loaded_audio

    waveforms, kept = [], []
    for path, waveform in iter_loaded_audio(paths):
        if isinstance(waveform, Exception):
            print(f"skipped background recording {waveform}", file=sys.stderr)
        elif len(waveform):
            waveforms.append(waveform)
            kept.append(path)
    return waveforms, kept


def stream_fit(args, class_names: list[str]):
    """`fit(x, y) -> (model, history)` for stream_training: a fresh head with balanced class weights."""
    from stream_training import balanced_weights

    def fit(x, y):
        head, history = fit_head(args, len(class_names), x, y, class_weight=balanced_weights(y, len(class_names)))
        return CustomModel(head=head, class_names=class_names, meta={}), history
    return fit


def train_streams(args, files_by_class: dict, recording_paths: list[Path]) -> int:
    """Stream training (stream_training.py): the sound classes' clips, also spliced into the background
    recordings; an operating point per class chosen by cross-fitting; the final head on everything."""
    import stream_training
    from evaluate import build_report, format_report

    ignored = [flag for flag, given in (("--augment", args.augment), ("--no-refit", args.no_refit),
                                        ("--val-split", args.val_split != TRAINING.val_split)) if given]
    if ignored:
        print(f"note: {', '.join(ignored)} not used: with background recordings the clips are judged by "
              f"cross-fitting folds (--cv K) and the final model trains on everything", file=sys.stderr)
    # dataset.check_classes (scan_and_report) has refused a folder with only background/
    sound_classes = {name: files for name, files in files_by_class.items() if name != BACKGROUND_CLASS}
    class_names = list(sound_classes) + [BACKGROUND_CLASS]
    background = len(class_names) - 1
    folds = args.cv or STREAM.folds
    handle = resolve_yamnet_handle(args.yamnet)
    yamnet = embedding_yamnet(handle)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir or default_cache_dir(), yamnet.identity)
    usable, result = embed_classes(args.training_dir, sound_classes, yamnet, cache, progress=not args.quiet,
                                   views=args.views, level_dbfs=clip_level(args), background_elsewhere=True)
    embeddings = result.embeddings
    print(f"embeddings: {result.computed} computed, {result.from_cache} from cache, {len(result.failed)} failed")
    recordings, recording_paths = load_recordings(recording_paths)
    if not recordings:
        raise DatasetError("no readable background recordings: put some in "
                           f"{args.training_dir / BACKGROUND_CLASS}/ or pass --negatives DIR")
    minutes = sum(len(r) for r in recordings) / YAMNET.sample_rate / 60
    print(f"background: {len(recordings)} recording(s), {minutes:.1f} min")
    if minutes < 5:
        print(f"note: {minutes:.1f} min of background is little to promise a false-alarm rate on; "
              f"an hour of what the microphone usually hears works much better", file=sys.stderr)

    from audio_util import iter_loaded_audio

    clip_items = [(path, index) for index, files in enumerate(usable.values()) for path in files]
    waveforms = dict(iter_loaded_audio([path for path, _ in clip_items]))
    fold_of = {path: fold for fold, (_train, test) in
               enumerate(cross_validation_folds(usable, folds, args.seed, args.group_by)) for path, _ in test}
    parts, part_folds = stream_training.split_recordings(recordings, folds)
    data = stream_training.StreamData(
        class_names, [waveforms[p] for p, _ in clip_items], [label for _, label in clip_items],
        [embeddings[p] for p, _ in clip_items], [fold_of[p] for p, _ in clip_items], parts, part_folds,
        [str(p) for p, _ in clip_items])
    embed = stream_training.WindowEmbedder(yamnet, clip_level(args), cache)
    fit = stream_fit(args, class_names)

    print(f"choosing the operating point: {folds}-fold cross-fitting on clips and background "
          f"(<= {args.max_false_per_hour:g} false alarm(s) per hour)")
    calibration = stream_training.cross_fit(fit, data, embed, folds, args.seed)
    points = stream_training.choose_operating_points(calibration, class_names, background, args.max_false_per_hour)

    tested = sorted(calibration.clip_probabilities)
    report = None
    if tested:
        predicted = [int(np.argmax(calibration.clip_probabilities[i])) for i in tested]
        report = build_report(class_names, [data.clip_labels[i] for i in tested], predicted,
                              [data.names[i] for i in tested])
        print(f"\nclips held out by the cross-fitting folds ({len(tested)}), classified as main.py --custom does:")
        print(format_report(report))
        report = {key: report[key] for key in ("accuracy", "per_class", "confusion", "labels", "clips", "macro")}
    right = {}
    for i in tested:
        guess = int(np.argmax(calibration.clip_probabilities[i]))
        if guess == data.clip_labels[i]:
            right.setdefault(class_names[guess], []).append(float(calibration.clip_probabilities[i][guess]))
    unknown = choose_unknown_thresholds(class_names, right, similarities_by_class(clip_items, embeddings, class_names))

    print(f"final model: all {len(clip_items)} clips and {minutes:.1f} min of background")
    model, history, counts = stream_training.train_detector(
        fit, data, list(range(len(clip_items))), list(range(len(parts))), embed, np.random.default_rng([args.seed, folds]))
    print(f"  {counts['clip_frames']} clip frames, {counts['spliced_windows']} spliced windows, "
          f"{counts['background_windows']} background windows, {counts['hard_negatives']} hard negatives")
    print_unknown_thresholds(unknown)
    print(f"operating point (listen.py uses it by default; <= {args.max_false_per_hour:g} false alarm(s)/h asked):")
    for point in points:
        print(stream_training.format_operating_point(point, args.max_false_per_hour))

    meta = {
        **model_meta(args, yamnet, class_names, unknown),
        "thresholds": {p.label: round(p.threshold, 6) for p in points},
        "min_frames": {p.label: p.min_frames for p in points},
        "operating_points": {p.label: p.as_dict() for p in points},
        "training": {
            "training_dir": str(args.training_dir),
            "files_per_class": {name: len(files) for name, files in usable.items()},
            "background_recordings": [str(p) for p in recording_paths],
            "background_minutes": round(minutes, 2),
            "max_false_per_hour": args.max_false_per_hour,
            "folds": folds,
            "group_by": args.group_by,
            "frames": counts,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "learning_rate": TRAINING.learning_rate,
            "final_loss": float(history.history["loss"][-1]),
            "cross_fit_clip_accuracy": report["accuracy"] if report else None,
            "validation_report": report,
        },
    }
    write_model(args, handle, model.head, class_names, meta, clip_items, embeddings, history, report)
    return 0


def embedding_yamnet(handle: str):
    """The TFLite YAMNet (fast, batched; built and cached by the first run) with the same identity
    as the SavedModel, so cached embeddings stay valid; TensorFlow's if the export is impossible."""
    from tflite_backend import TfliteError, lite_yamnet_for

    try:
        return lite_yamnet_for(handle)
    except TfliteError as e:
        reason = first_line(e)
    except YamnetError:  # no such YAMNet: TensorFlow would say the same
        raise
    except Exception as e:  # no ai-edge-litert, a converter failure, ...: TensorFlow still works
        reason = f"no TFLite YAMNet: {first_line(e)}"
    print(f"note: embedding with TensorFlow ({reason})", file=sys.stderr)
    return load_yamnet(handle)


def export_pipeline(handle: str, head, out_dir: Path, meta: dict) -> None:
    """classifier.tflite: YAMNet and the head as one TFLite model, for main.py's fast start."""
    from params import PIPELINE_TFLITE_FILENAME
    from tflite_backend import export_pipeline_tflite, sidecar_path

    path = out_dir / PIPELINE_TFLITE_FILENAME
    try:
        export_pipeline_tflite(load_yamnet(handle), head, path, meta["class_names"], meta)
    except YamnetError:
        raise
    except Exception as e:  # the converter's many errors: the Keras model still works, only slower to start
        path.unlink(missing_ok=True)  # an older export would describe another training
        sidecar_path(path).unlink(missing_ok=True)
        print(f"warning: could not write {path.name} ({first_line(e)}); main.py will start with TensorFlow",
              file=sys.stderr)


def validate(args, model: CustomModel, val_items, embeddings: dict, history) -> dict:
    """Classify the held-out files as main.py --custom does and print the report.
    Returns {'accuracy', 'report', 'probabilities': {class: [probability of each right answer]}}."""
    from evaluate import build_report, format_report

    if not val_items:
        print("validation: none (--val-split 0)" if args.val_split == 0
              else "validation: none (every class has a single file; add clips to validate)")
        return {"accuracy": None, "report": None, "probabilities": {}}
    true, predicted, probabilities = [], [], {}
    for path, label in val_items:
        clip = model.clip_probabilities(embeddings[path])
        guess = int(np.argmax(clip))
        true.append(label)
        predicted.append(guess)
        if guess == label:
            probabilities.setdefault(model.class_names[label], []).append(float(clip[guess]))
    report = build_report(model.class_names, true, predicted, [path for path, _ in val_items])
    print(f"\nvalidation on {len(val_items)} held-out files:")
    print(format_report(report))
    print()
    report = {key: report[key] for key in ("accuracy", "per_class", "confusion", "labels", "clips", "macro")}
    return {"accuracy": report["accuracy"], "report": report, "probabilities": probabilities}


def similarities_by_class(items, embeddings: dict, class_names: list[str]) -> dict[str, list[float]]:
    """{class: [each clip's similarity to the closest other clip of its class]}."""
    if not items:
        return {}
    mean_embeddings = np.stack([embeddings[path].mean(axis=0) for path, _label in items])
    labels = np.array([label for _path, label in items])
    similarities = nearest_same_class_similarities(mean_embeddings, labels)
    return {name: similarities[labels == i].tolist() for i, name in enumerate(class_names)}


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
    """Loss and accuracy per epoch (training frames, and validation frames when held out) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from atomic_write import atomic_output

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for ax, key, title in ((loss_ax, "loss", "loss (cross-entropy)"), (accuracy_ax, "accuracy", "accuracy of frames")):
            ax.plot(epochs, history[key], label="training")
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], label="validation")
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        accuracy_ax.set_ylim(0, 1.02)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if not args.max_false_per_hour > 0:
        parser.error("--max-false-per-hour must be more than 0")
    if args.no_streams and args.negatives:
        parser.error("--negatives needs stream training; drop --no-streams")
    if not 0 <= args.val_split < 1:
        parser.error("--val-split must be in [0, 1)")
    if args.views < 1:
        parser.error("--views must be at least 1")
    if args.augment < 0:
        parser.error("--augment must be 0 (off) or more copies")
    if args.cv == 1 or args.cv < 0:
        parser.error("--cv needs at least 2 folds (0 turns it off)")
    if args.group_by is not None:
        if not args.cv:
            parser.error("--group-by only applies with --cv")
        try:
            re.compile(args.group_by)
        except re.error as e:
            parser.error(f"--group-by is not a valid regular expression ({e})")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"output {args.output_dir} exists and is not a folder")
    try:
        check_writable(args.output_dir)  # before the work, not after it
        return train(args)
    except (DatasetError, YamnetError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
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
