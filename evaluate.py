"""Measure a trained model on labelled test clips (one sub-folder per class, like training/).

    python evaluate.py test_dir/ models/
    python evaluate.py test_dir/ models/ --json
    python evaluate.py test_dir/ models/ --out reports/

Each clip is classified as `main.py --custom` does (mean embedding -> head -> argmax) and the
report gives accuracy, per-class precision/recall/F1 and a confusion matrix (rows: true class,
columns: predicted), printed as text and drawn to confusion.png in --out or the model folder.

Test folders whose name is not one of the model's classes are refused before anything is
computed: the model can never predict them, so every clip would count as an error and the
report would mix two questions (wrong class vs. unknown class). Rename or remove the folder.
Model classes without a test folder are fine: their row is empty and they can still be predicted.

A model whose model.json has "clip": {"level_dbfs": -20.0, "views": 4} is evaluated the way it
was trained: each clip scaled to that RMS level and embedded as that many time-shifted views
(augment.normalize_rms, augment.time_shifted_views) before the mean embedding goes to the head.
Models without the key are evaluated as main.py --custom classifies today (the clip as it is).

The metric maths (`confusion_matrix`, `per_class_metrics`, `build_report`, `format_report`) is
pure Python/numpy and needs no TensorFlow.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from atomic_write import atomic_output
from params import YAMNET_ENV_VAR

CONFUSION_PNG = "confusion.png"


class EvaluationError(Exception):
    """Test data that cannot be evaluated against this model; the message says what to do."""


# --- pure metric maths -------------------------------------------------------------------------------

def confusion_matrix(true: list[int], predicted: list[int], num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class index, column = predicted index."""
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for t, p in zip(true, predicted):
        if not (0 <= t < num_classes and 0 <= p < num_classes):
            raise ValueError(f"label index out of range 0..{num_classes - 1}: true {t}, predicted {p}")
        matrix[t, p] += 1
    return matrix


def per_class_metrics(matrix: np.ndarray) -> list[dict]:
    """Per class (in matrix order): precision, recall, F1 and support (number of true clips).

    A ratio with a zero denominator (a class never predicted, or with no test clips) is None,
    not 0: "undefined" and "always wrong" are different answers.
    """
    matrix = np.asarray(matrix)
    rows = []
    for c in range(matrix.shape[0]):
        true_positive = int(matrix[c, c])
        predicted = int(matrix[:, c].sum())
        support = int(matrix[c, :].sum())
        precision = true_positive / predicted if predicted else None
        recall = true_positive / support if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows


def build_report(labels: list[str], true: list[int], predicted: list[int], files=None) -> dict:
    """The evaluation as plain data: accuracy, per_class {label: metrics}, confusion, labels,
    macro averages over classes with test clips, and (with `files`) the misclassified clips."""
    matrix = confusion_matrix(true, predicted, len(labels))
    metrics = per_class_metrics(matrix)
    total = int(matrix.sum())
    present = [m for m in metrics if m["support"]]

    def macro(key):
        values = [m[key] if m[key] is not None else 0.0 for m in present]
        return sum(values) / len(values) if values else None

    report = {
        "accuracy": float(np.trace(matrix) / total) if total else None,
        "clips": total,
        "labels": list(labels),
        "per_class": {label: m for label, m in zip(labels, metrics)},
        "macro": {"precision": macro("precision"), "recall": macro("recall"), "f1": macro("f1")},
        "confusion": matrix.tolist(),
    }
    if files is not None:
        report["errors"] = [{"file": str(f), "true": labels[t], "predicted": labels[p]}
                            for f, t, p in zip(files, true, predicted) if t != p]
    return report


def _pct(value) -> str:
    return "     -" if value is None else f"{100 * value:5.1f}%"


def format_report(report: dict) -> str:
    """Human-readable text: accuracy, a per-class table and the confusion matrix."""
    labels = report["labels"]
    width = max([5] + [len(label) for label in labels])
    lines = [f"accuracy: {_pct(report['accuracy']).strip()} of {report['clips']} clips", ""]
    lines.append(f"{'class':{width}s}  precision  recall      F1  support")
    for label in labels:
        m = report["per_class"][label]
        lines.append(f"{label:{width}s}     {_pct(m['precision'])}  {_pct(m['recall'])}  {_pct(m['f1'])}  {m['support']:7d}")
    macro = report["macro"]
    lines.append(f"{'macro':{width}s}     {_pct(macro['precision'])}  {_pct(macro['recall'])}  {_pct(macro['f1'])}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    cell = max([4] + [len(str(v)) for row in report["confusion"] for v in row])
    short = [label[:cell] for label in labels]
    lines.append(" " * width + "  " + " ".join(f"{s:>{cell}s}" for s in short))
    for label, row in zip(labels, report["confusion"]):
        lines.append(f"{label:{width}s}  " + " ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def plot_confusion(report: dict, path: Path) -> None:
    """Draw the confusion matrix (counts, rows normalised to colour) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    labels = report["labels"]
    matrix = np.array(report["confusion"], dtype=float)
    row_sums = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        accuracy = report["accuracy"]
        ax.set_title(f"accuracy {100 * accuracy:.1f}% of {report['clips']} clips" if accuracy is not None else "no clips")
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                            color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


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


# --- embeddings -------------------------------------------------------------------------------------

def clip_settings(meta: dict) -> tuple[int, float | None]:
    """(views, level_dbfs) a model was trained with, from model.json's "clip"; (1, None) if absent."""
    clip = meta.get("clip") or {}
    views = clip.get("views", 1)
    level = clip.get("level_dbfs")
    if not isinstance(views, int) or views < 1 or not (level is None or isinstance(level, (int, float))):
        raise EvaluationError(f"model.json has an invalid \"clip\" entry {clip!r}; retrain with python train.py")
    return views, level


# --- CLI ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate a trained model on test clips in one sub-folder per class.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("test_dir", type=Path, help="folder with one sub-folder of audio clips per class")
    parser.add_argument("models_dir", type=Path, help="folder of the trained model (written by train.py)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for {CONFUSION_PNG} (default: the model folder)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None,
                        help=f"YAMNet SavedModel folder or TF Hub URL (default: ${YAMNET_ENV_VAR} or models/yamnet)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache folder (default: ~/.cache/audio2mqtt/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    return parser


def evaluate(args) -> dict:
    """Classify every test clip; returns the report (see `build_report`)."""
    from class_map import ClassMapError, read_class_names
    from dataset import EmbeddingCache, default_cache_dir, embed_files
    from model import check_model_dir, load_custom_model
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
    predicted = [model.predict_clip(result.embeddings[path]) for path, _ in scored]
    report = build_report(model.class_names, [label for _, label in scored], predicted,
                          files=[path for path, _ in scored])
    report["model"] = str(args.models_dir)
    report["clip"] = {"views": views, "level_dbfs": level_dbfs}
    report["test_dir"] = str(args.test_dir)
    report["skipped"] = [{"file": str(path), "reason": reason} for path, reason in result.failed]
    return report


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    from model import ModelError
    from yamnet_classifier import YamnetError

    try:
        report = evaluate(args)
        png = (args.out or args.models_dir) / CONFUSION_PNG
        plot_confusion(report, png)
        report["confusion_png"] = str(png)
    except (EvaluationError, ModelError, YamnetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. --out on a read-only disk
        print(f"error: cannot write {CONFUSION_PNG}: {e.strerror or e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
        if report["skipped"]:
            print(f"\n{len(report['skipped'])} unreadable clip(s) skipped (listed above)")
        print(f"\nconfusion matrix drawn to {report['confusion_png']}")
    return 1 if report["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
