"""Train a classifier head on YAMNet embeddings from one sub-folder of clips per class.

    python train.py training/ models/

Writes classifier.keras, class_names.txt and model.json into the output folder.
"""

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

from dataset import (
    DatasetError,
    EmbeddingCache,
    check_classes,
    default_cache_dir,
    embed_files,
    frames_and_labels,
    scan_training_folder,
    split_by_file,
)
from model import CustomModel, ModelError, build_classifier_head, save_custom_model
from params import TRAINING, YAMNET, YAMNET_ENV_VAR
from yamnet_classifier import YamnetError, load_yamnet, resolve_yamnet_handle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train your own sound classes on YAMNet embeddings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("training_dir", type=Path, help="folder with one sub-folder of audio clips per class")
    parser.add_argument("output_dir", type=Path, help="where to write the trained model")
    parser.add_argument("--epochs", type=int, default=TRAINING.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=TRAINING.batch_size, help="frames per training batch")
    parser.add_argument("--val-split", type=float, default=TRAINING.val_split,
                        help="fraction of each class's files held out for validation (0 disables)")
    parser.add_argument("--seed", type=int, default=TRAINING.seed, help="seed for the split and the weights")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None,
                        help=f"YAMNet SavedModel folder or TF Hub URL (default: ${YAMNET_ENV_VAR} or models/yamnet)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: ~/.cache/audio2mqtt/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
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
    correct = sum(int(np.argmax(model.clip_probabilities(embeddings[path])) == label) for path, label in scored)
    return correct / len(scored)


def train(args) -> int:
    files_by_class, notes = scan_training_folder(args.training_dir)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    class_names = list(files_by_class)
    print(f"{len(class_names)} classes: " + ", ".join(f"{name} ({len(files)})" for name, files in files_by_class.items()))

    yamnet = load_yamnet(resolve_yamnet_handle(args.yamnet))
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir or default_cache_dir(), yamnet.identity)
    all_files = [path for files in files_by_class.values() for path in files]
    result = embed_files(all_files, yamnet, cache, progress=not args.quiet)
    print(f"embeddings: {result.computed} computed, {result.from_cache} from cache, {len(result.failed)} failed")
    for path, reason in result.failed:
        print(f"skipped {reason}", file=sys.stderr)
    usable = {name: [p for p in files if p in result.embeddings] for name, files in files_by_class.items()}
    check_classes(args.training_dir, usable)

    train_items, val_items = split_by_file(usable, args.val_split, args.seed)
    x_train, y_train = frames_and_labels(train_items, result.embeddings)
    x_val, y_val = frames_and_labels(val_items, result.embeddings)
    print(f"training on {len(train_items)} files ({len(x_train)} frames), validating on {len(val_items)} files ({len(x_val)} frames)")

    import keras

    keras.utils.set_random_seed(args.seed)
    head = build_classifier_head(len(class_names))
    history = head.fit(
        x_train, y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(x_val, y_val) if len(x_val) else None,
        callbacks=[] if args.quiet else [keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: print(format_epoch(epoch, args.epochs, logs), flush=True))],
        verbose=0,
    )
    model = CustomModel(head=head, class_names=class_names, meta={})
    train_frame_accuracy = float(head.evaluate(x_train, y_train, verbose=0)[1])
    train_clip = clip_accuracy(model, train_items, result.embeddings)
    val_clip = clip_accuracy(model, val_items, result.embeddings)
    val_frame_accuracy = float(head.evaluate(x_val, y_val, verbose=0)[1]) if len(x_val) else None
    print(f"final training accuracy: {train_frame_accuracy:.1%} of frames, {train_clip:.1%} of clips")
    if val_clip is None:
        print("validation: none (--val-split 0)")
    else:
        print(f"validation accuracy: {val_clip:.1%} of {len(val_items)} held-out clips ({val_frame_accuracy:.1%} of frames)")

    meta = {
        "class_names": class_names,
        "yamnet": {"handle": yamnet.handle, "identity": yamnet.identity},
        "audio": {
            "sample_rate": YAMNET.sample_rate,
            "patch_window_seconds": YAMNET.patch_window_seconds,
            "patch_hop_seconds": YAMNET.patch_hop_seconds,
            "embedding_size": YAMNET.embedding_size,
        },
        "head": {"hidden_units": TRAINING.hidden_units, "output": "logits"},
        "inference": "mean embedding over patches -> head -> softmax",
        "training": {
            "training_dir": str(args.training_dir),
            "files_per_class": {name: len(files) for name, files in usable.items()},
            "train_files": len(train_items),
            "val_files": len(val_items),
            "train_frames": int(len(x_train)),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "val_split": args.val_split,
            "seed": args.seed,
            "learning_rate": TRAINING.learning_rate,
            "final_loss": float(history.history["loss"][-1]),
            "train_frame_accuracy": train_frame_accuracy,
            "train_clip_accuracy": train_clip,
            "val_clip_accuracy": val_clip,
            "val_frame_accuracy": val_frame_accuracy,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    save_custom_model(args.output_dir, head, class_names, meta)
    print(f"model written to {args.output_dir}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if not 0 <= args.val_split < 1:
        parser.error("--val-split must be in [0, 1)")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"output {args.output_dir} exists and is not a folder")
    try:
        return train(args)
    except (DatasetError, YamnetError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
