"""How a model is judged on clips, the same in train.py's report, evaluate.py and evaluate.py --cv:
per-class recall first, balanced accuracy (their mean) as the one figure, then precision, F1 and the
confusion matrix. Pure numpy; matplotlib only for the picture.

Why balanced accuracy leads: plain accuracy counts clips, so 100 background clips right and 10 of
your doorbell wrong reads 91 %. The mean of the per-class recalls reads 50 % for that model.
"""

from pathlib import Path

import numpy as np


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


def balanced_accuracy(report: dict) -> float | None:
    """Mean recall over the classes with test clips (None: no clips)."""
    recalls = [m["recall"] for m in report["per_class"].values() if m["support"]]
    return float(np.mean(recalls)) if recalls else None


def build_report(labels: list[str], true: list[int], predicted: list[int], files=None) -> dict:
    """The evaluation as plain data: balanced_accuracy, accuracy, per_class {label: metrics},
    confusion, labels, macro averages over classes with test clips, and (with `files`) the
    misclassified clips."""
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
    report["balanced_accuracy"] = balanced_accuracy(report)
    if files is not None:
        report["errors"] = [{"file": str(f), "true": labels[t], "predicted": labels[p]}
                            for f, t, p in zip(files, true, predicted) if t != p]
    return report


REPORT_KEYS = ("balanced_accuracy", "accuracy", "per_class", "confusion", "labels", "clips", "macro")


def _pct(value) -> str:
    return "     -" if value is None else f"{100 * value:5.1f}%"


def format_report(report: dict) -> str:
    """Human-readable text: balanced accuracy, per-class recall (then precision, F1), the confusion matrix."""
    labels = report["labels"]
    width = max([5] + [len(label) for label in labels])
    lines = [f"balanced accuracy: {_pct(report['balanced_accuracy']).strip()} (the mean of each class's recall), "
             f"{report['clips']} clips; {_pct(report['accuracy']).strip()} of the clips right", ""]
    absent = [label for label in labels if not report["per_class"][label]["support"]]
    if absent:  # e.g. background given only as recordings: judged by false alarms per hour, not here
        lines.insert(1, f"no clips of {', '.join(absent)}: the balanced accuracy is over the other classes")
    lines.append(f"{'class':{width}s}     recall  precision      F1  clips")
    for label in labels:
        m = report["per_class"][label]
        lines.append(f"{label:{width}s}     {_pct(m['recall'])}     {_pct(m['precision'])}  {_pct(m['f1'])}  {m['support']:5d}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    cell = max([4] + [len(str(v)) for row in report["confusion"] for v in row])
    short = [label[:cell] for label in labels]
    lines.append(" " * width + "  " + " ".join(f"{s:>{cell}s}" for s in short))
    for label, row in zip(labels, report["confusion"]):
        lines.append(f"{label:{width}s}  " + " ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def plot_confusion(report: dict, path: Path) -> None:
    """Draw the confusion matrix (every count, zeros too; rows normalised to colour) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    from atomic_write import atomic_output

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
        balanced = report.get("balanced_accuracy")
        ax.set_title(f"balanced accuracy {100 * balanced:.1f}% ({report['clips']} clips)" if balanced is not None
                     else "no clips")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
