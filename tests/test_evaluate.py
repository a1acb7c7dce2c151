"""evaluate.py and metrics.py: the metric maths without TensorFlow, and one end-to-end run on a tiny
trained model, where train.py, evaluate.py --cv and evaluate.py test/ judge alike."""

import json
import shutil

import numpy as np
import pytest

from conftest import tone, write_wav
from params import CLIP

import evaluate
import metrics


# --- pure maths (milliseconds) -----------------------------------------------------------------------

def test_confusion_matrix_rows_are_truth_columns_predictions():
    matrix = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 3], [0, 1], 2)


def test_precision_recall_f1_by_hand():
    # true:      a a a a b b c
    # predicted: a a a b b c c
    matrix = metrics.confusion_matrix([0, 0, 0, 0, 1, 1, 2], [0, 0, 0, 1, 1, 2, 2], 3)
    a, b, c = metrics.per_class_metrics(matrix)
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 0.75, 4)
    assert a["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert (c["precision"], c["recall"]) == (0.5, 1.0)
    assert c["f1"] == pytest.approx(2 / 3)


def test_undefined_ratios_are_none_not_zero():
    # class 2 has no test clips and is never predicted; class 1 has clips but is never predicted
    matrix = metrics.confusion_matrix([0, 1], [0, 0], 3)
    rows = metrics.per_class_metrics(matrix)
    assert rows[1]["precision"] is None and rows[1]["recall"] == 0.0 and rows[1]["f1"] is None
    assert rows[2] == {"precision": None, "recall": None, "f1": None, "support": 0}


def test_report_leads_with_balanced_accuracy():
    report = metrics.build_report(["dog", "cat"], [0, 0, 1, 1], [0, 1, 1, 1], files=["d1", "d2", "c1", "c2"])
    assert report["accuracy"] == 0.75 and report["clips"] == 4 and report["balanced_accuracy"] == 0.75
    assert report["labels"] == ["dog", "cat"]
    assert report["confusion"] == [[1, 1], [0, 2]]
    assert report["per_class"]["dog"]["recall"] == 0.5 and report["per_class"]["cat"]["precision"] == pytest.approx(2 / 3)
    assert report["macro"]["recall"] == pytest.approx(0.75)
    assert report["errors"] == [{"file": "d2", "true": "dog", "predicted": "cat"}]
    json.dumps(report)  # plain data all the way down
    text = metrics.format_report(report)
    assert text.startswith("balanced accuracy: 75.0%") and "75.0% of the clips right" in text
    assert text.splitlines()[-1].split() == ["cat", "0", "2"]
    # 90 background clips right and 1 of 10 doorbells: 91 % of clips, but half the classes fail
    report = metrics.build_report(["doorbell", "background"], [0] * 10 + [1] * 90, [0] + [1] * 99)
    assert report["accuracy"] == pytest.approx(0.91) and report["balanced_accuracy"] == pytest.approx(0.55)
    assert metrics.format_report(report).splitlines()[2].split()[:2] == ["class", "recall"]
    # background given only as recordings: no clips, so the figure is the doorbell's recall alone
    text = metrics.format_report(metrics.build_report(["doorbell", "background"], [0, 0], [0, 1]))
    assert text.splitlines()[:2] == ["balanced accuracy: 50.0% (the mean of each class's recall), 2 clips; 50.0% of "
                                     "the clips right", "no clips of background: the balanced accuracy is over the "
                                     "other classes"]


def test_confusion_png_shows_every_count_zeros_too(tmp_path, monkeypatch):
    import matplotlib.axes

    written = []
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, **kw: written.append(s))
    report = metrics.build_report(["doorbell", "background"], [0, 0, 1], [0, 0, 1])
    metrics.plot_confusion(report, tmp_path / "confusion.png")
    assert sorted(written) == [0, 0, 1, 2] and (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_test_classes_are_refused():
    files = {"dog": ["d.wav"], "horse": ["h.wav"]}
    with pytest.raises(evaluate.EvaluationError, match="'horse'"):
        evaluate.match_test_folder(files, ["dog", "cat"])
    assert evaluate.match_test_folder({"cat": ["c.wav"]}, ["dog", "cat"]) == [("c.wav", 1)]


def test_clip_settings_from_model_json():
    from model import ModelError, clip_settings

    assert clip_settings({}) == (1, None)
    assert clip_settings({"clip": {"views": 4, "level_dbfs": -20.0}}) == (4, -20.0)
    with pytest.raises(ModelError):
        clip_settings({"clip": {"views": 0}})


@pytest.mark.parametrize("argv,message", [([], "give the model folder"), (["--cv", "1"], "at least 2 folds"),
                                          (["m", "--group-by", "x"], "only applies with --cv")])
def test_evaluate_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        evaluate.main([str(tmp_path), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_missing_model_dir_is_one_line_error(tmp_path, capsys):
    (tmp_path / "test" / "a").mkdir(parents=True)
    assert evaluate.main([str(tmp_path / "test"), str(tmp_path / "nomodel")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no trained model") and "\n" not in err


# --- end to end (real YAMNet, a head trained here) -------------------------------------------------------

def test_end_to_end_on_a_tiny_model(tmp_path, fsdd_dir, yamnet, capsys):
    import train

    train_dir, test_dir, model_dir = tmp_path / "train", tmp_path / "test", tmp_path / "model"
    for digit, name in [(0, "zero"), (1, "one")]:
        (train_dir / name).mkdir(parents=True)
        (test_dir / name).mkdir(parents=True)
        for n in range(6):
            shutil.copy(fsdd_dir / f"{digit}_jackson_{n}.wav", train_dir / name / f"{n}.wav")
        for n in range(40, 44):
            shutil.copy(fsdd_dir / f"{digit}_jackson_{n}.wav", test_dir / name / f"{n}.wav")
    for n in range(6):
        write_wav(train_dir / "tone" / f"{n}.wav", tone(500 + 200 * n, 1.0))
    for n in range(4):
        write_wav(test_dir / "tone" / f"{n}.wav", tone(650 + 200 * n, 1.5))
    cache = tmp_path / "cache"
    assert train.main([str(train_dir), str(model_dir), "--epochs", "30", "--cv", "3",
                       "--quiet", "--cache-dir", str(cache), "--yamnet", yamnet.handle, "--no-tflite"]) == 0
    capsys.readouterr()
    trained = json.loads((model_dir / "model.json").read_text())["training"]["cross_validation"]
    trained_png = (model_dir / "confusion.png").read_bytes()  # train.py's, from its cross-validation

    out = tmp_path / "report"
    code = evaluate.main([str(test_dir), str(model_dir), "--json", "--out", str(out), "--cache-dir", str(cache)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)  # exactly one JSON object on stdout
    assert report["labels"] == ["one", "tone", "zero"]
    assert report["clips"] == 12 and report["balanced_accuracy"] >= 0.75
    assert np.array(report["confusion"]).sum() == 12
    assert report["per_class"]["tone"]["recall"] == 1.0  # easy: a tone is never a spoken digit
    assert report["accuracy"] >= 0.75  # same speaker, two digits and tones
    png = out / "confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (model_dir / "confusion.png").read_bytes() == trained_png  # --out: the model folder is left alone

    # text report, PNG beside the model by default
    assert evaluate.main([str(test_dir), str(model_dir), "--cache-dir", str(cache)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("balanced accuracy") and "confusion matrix" in text and "precision" in text
    assert (model_dir / "confusion.png").is_file()

    # clips are embedded as model.json's "clip" says (train.py's default: several views, own level)
    assert report["clip"] == {"views": CLIP.views, "level_dbfs": CLIP.level_dbfs}
    meta_path = model_dir / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["clip"] = {"views": 1, "level_dbfs": None}
    meta_path.write_text(json.dumps(meta))
    assert evaluate.main([str(test_dir), str(model_dir), "--json", "--cache-dir", str(cache)]) == 0
    plain_report = json.loads(capsys.readouterr().out)
    assert plain_report["clip"] == {"views": 1, "level_dbfs": None} and plain_report["clips"] == 12

    # no test set: cross-validation over the training folder, as train.py did it: the same figure
    assert evaluate.main([str(train_dir), str(model_dir), "--cv", "3", "--json", "--cache-dir", str(cache),
                          "--out", str(out)]) == 0
    cv_report = json.loads(capsys.readouterr().out)
    assert cv_report["folds"] == 3 and len(cv_report["fold_balanced_accuracies"]) == 3
    assert cv_report["clips"] == 18 and np.array(cv_report["confusion"]).sum() == 18
    assert cv_report["config"]["epochs"] == 30 and cv_report["labels"] == trained["report"]["labels"]
    assert cv_report["confusion"] == trained["report"]["confusion"]
    assert cv_report["balanced_accuracy"] == pytest.approx(trained["report"]["balanced_accuracy"])
    assert evaluate.main([str(train_dir), "--cv", "2", "--json", "--cache-dir", str(cache)]) == 0  # train.py's defaults
    cv_report = json.loads(capsys.readouterr().out)
    assert cv_report["folds"] == 2 and cv_report["per_class"]["tone"]["recall"] == 1.0 and "confusion_png" not in cv_report
    assert evaluate.main([str(train_dir), str(model_dir), "--cv", "3", "--group-by", "^([0-9])"]) == 0
    text = capsys.readouterr().out
    assert text.count("cross-validation fold") == 3 and (model_dir / "confusion.png").is_file()

    # a test class the model does not know is refused with one line
    shutil.copytree(test_dir / "tone", test_dir / "siren")
    assert evaluate.main([str(test_dir), str(model_dir), "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err.strip()
    assert "'siren'" in err and "\n" not in err
