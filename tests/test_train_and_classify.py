"""End to end, in-process: train.py on FSDD digit folders, then main.py --custom on held-out clips.

Real YAMNet (session fixture), real recordings; the model is trained once per module.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import main as classify_cli
import train as train_cli
from conftest import PROJECT_DIR, noise, tone, write_wav
from params import (
    CLASS_NAMES_FILENAME,
    CLASSIFIER_FILENAME,
    CLIP,
    CONFUSION_PNG,
    MODEL_JSON_FILENAME,
    PIPELINE_TFLITE_FILENAME,
    PROTOTYPES_FILENAME,
    TRAINING_CURVE_PNG,
)

DIGITS = {"zero": 0, "one": 1, "seven": 7}
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
TRAIN_TAKES = range(0, 5)      # 5 takes x 6 speakers = 30 clips per class
HELD_OUT_TAKES = range(40, 42)  # never seen in training


def copy_digits(fsdd_dir, root, takes):
    for name, digit in DIGITS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for speaker in SPEAKERS:
            for take in takes:
                shutil.copy(fsdd_dir / f"{digit}_{speaker}_{take}.wav", root / name)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fsdd_dir, yamnet):
    """A 3-class digit model trained through the CLI; returns (training dir, model dir, cache dir, stdout)."""
    base = tmp_path_factory.mktemp("e2e")
    training = copy_digits(fsdd_dir, base / "training", TRAIN_TAKES)
    (training / "zero" / "notes.txt").write_text("not audio")
    models, cache = base / "models", base / "cache"
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = train_cli.main([str(training), str(models), "--epochs", "30", "--cache-dir", str(cache), "--quiet"])
    assert code == 0, out.getvalue()
    return training, models, cache, out.getvalue()


def test_train_writes_a_self_describing_model(trained):
    training, models, _cache, stdout = trained
    assert (models / CLASSIFIER_FILENAME).is_file()
    assert (models / CLASS_NAMES_FILENAME).read_text().split() == ["one", "seven", "zero"]
    meta = json.loads((models / MODEL_JSON_FILENAME).read_text())
    assert meta["class_names"] == ["one", "seven", "zero"]
    assert meta["audio"]["sample_rate"] == 16000 and meta["audio"]["embedding_size"] == 1024
    assert meta["yamnet"]["identity"].startswith("sha256:")
    assert meta["training"]["files_per_class"] == {"one": 30, "seven": 30, "zero": 30}
    config = meta["training"]["config"]
    assert config["folds"] == 5 and config["refit"] is True and config["epochs"] == 30 and config["views"] == CLIP.views
    assert meta["clip"] == {"views": CLIP.views, "level_dbfs": CLIP.level_dbfs}
    assert set(meta["unknown"]["probability"]) == set(meta["unknown"]["similarity"]) == {"one", "seven", "zero"}
    assert all(0 < v < 1 for kind in ("probability", "similarity") for v in meta["unknown"][kind].values())
    cv = meta["training"]["cross_validation"]
    assert cv["report"]["clips"] == 90 and len(cv["fold_balanced_accuracies"]) == 5  # every clip judged once
    assert cv["report"]["balanced_accuracy"] > 0.5 and cv["report"]["labels"] == ["one", "seven", "zero"]
    assert "cross-validation fold 5/5" in stdout and "balanced accuracy:" in stdout
    assert "confusion matrix" in stdout and "final model: all 90 clips" in stdout
    for name in (PROTOTYPES_FILENAME, CONFUSION_PNG, TRAINING_CURVE_PNG, PIPELINE_TFLITE_FILENAME):
        assert (models / name).stat().st_size > 1000, name
    assert (models / CONFUSION_PNG).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in models.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_sounds_unlike_any_class_are_unknown_but_new_takes_are_not(trained, fsdd_dir, tmp_path, capsys):
    _training, models, _cache, _ = trained
    rng = np.random.default_rng(3)
    strangers = {
        "tone.wav": tone(880, 2.0),
        "hiss.wav": noise(1.5, seed=5),
        "chime.wav": np.sign(tone(523, 1.0)) * 0.3,
        "hum.wav": (tone(50, 2.0) + tone(100, 2.0, amplitude=0.2)),
        "clicks.wav": (rng.random(16000) > 0.999).astype(np.float32) * 0.8,
    }
    paths = [str(write_wav(tmp_path / name, clip)) for name, clip in strangers.items()]
    held_out = copy_digits(fsdd_dir, tmp_path / "held_out", HELD_OUT_TAKES)
    capsys.readouterr()
    assert classify_cli.main([*paths, str(held_out), "--custom", "--models", str(models), "--json"]) == 0
    records = {r["file"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    for path in paths:
        record = records.pop(path)
        assert record["label"] == "unknown", record
        assert record["best_guess"] in DIGITS and record["similarity"] < 0.8 and record["top"][0]["label"] == record["best_guess"]
    known = [r["label"] != "unknown" for r in records.values()]
    assert sum(known) >= 0.75 * len(known), f"only {sum(known)}/{len(known)} held-out takes known"


def test_unknown_text_output_shows_the_best_guess(trained, tmp_path, capsys):
    _training, models, _cache, _ = trained
    clip = write_wav(tmp_path / "tone.wav", tone(1200, 1.0))
    assert classify_cli.main([str(clip), "--custom", "--models", str(models)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{clip}: unknown (best guess ") and ", similarity 0." in line


@pytest.mark.parametrize("damage,message", [
    (lambda m: (m / PROTOTYPES_FILENAME).write_bytes(b"junk"), "cannot read"),
    (lambda m: json_edit(m, unknown=["x"]), '"unknown" must be an object'),
    (lambda m: json_edit(m, unknown={"similarity": {"one": "high"}}), "must map class names to numbers"),
    (lambda m: json_edit(m, clip={"views": 0}), 'invalid "clip"'),
], ids=["prototypes", "unknown-type", "unknown-value", "clip"])
def test_damaged_model_parts_are_one_line_errors(trained, fsdd_dir, tmp_path, capsys, damage, message):
    _training, models, _cache, _ = trained
    damaged = tmp_path / "models"
    shutil.copytree(models, damaged)
    damage(damaged)
    assert classify_cli.main([str(fsdd_dir / "1_theo_44.wav"), "--custom", "--models", str(damaged)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def json_edit(models, **changes):
    meta = json.loads((models / MODEL_JSON_FILENAME).read_text())
    meta.update(changes)
    (models / MODEL_JSON_FILENAME).write_text(json.dumps(meta))


def test_custom_model_classifies_held_out_clips_well_above_chance(trained, fsdd_dir, tmp_path, capsys):
    _training, models, _cache, _ = trained
    held_out = copy_digits(fsdd_dir, tmp_path / "held_out", HELD_OUT_TAKES)
    capsys.readouterr()
    assert classify_cli.main([str(held_out), "--custom", "--models", str(models), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 36
    correct = sum(r["best_guess"] == r["file"].split("/")[-2] for r in records)
    print(f"held-out accuracy {correct}/36")
    assert correct / len(records) >= 0.6, f"{correct}/36 correct (chance is 12/36)"
    for record in records:
        assert 0 <= record["confidence"] <= 1 and record["model"] == "custom"
        assert record["top"][0]["label"] == record["best_guess"] and record["label"] in (record["best_guess"], "unknown")


def test_fast_path_never_imports_tensorflow_and_agrees_with_it(trained, fsdd_dir, tmp_path):
    """main.py --custom on classifier.tflite, in a process where `import tensorflow` fails."""
    _training, models, _cache, _ = trained
    blocker = tmp_path / "no_tf"
    for name in ("tensorflow", "keras", "tensorflow_hub"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported on the fast path')")
    clips = [str(fsdd_dir / f"{digit}_theo_45.wav") for digit in DIGITS.values()] + [str(write_wav(tmp_path / "t.wav", tone(700, 1.0)))]

    def run(backend, env_extra):
        env = {**os.environ, **env_extra}
        done = subprocess.run([sys.executable, str(PROJECT_DIR / "main.py"), *clips, "--custom", "--models", str(models),
                               "--json", "--backend", backend], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr  # no native log lines either
        return [json.loads(line) for line in done.stdout.splitlines()]

    fast = run("auto", {"PYTHONPATH": str(blocker)})
    slow = run("tf", {})
    assert [r["label"] for r in fast] == [r["label"] for r in slow]
    for a, b in zip(fast, slow):
        assert abs(a["confidence"] - b["confidence"]) <= 1e-3 and abs(a["similarity"] - b["similarity"]) <= 1e-3


def test_no_tflite_removes_a_stale_export(trained, tmp_path, capsys):
    training, models, cache, _ = trained
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    assert train_cli.main([str(training), str(copy), "--epochs", "1", "--cache-dir", str(cache), "--quiet", "--no-tflite"]) == 0
    assert not (copy / PIPELINE_TFLITE_FILENAME).exists() and not (copy / (PIPELINE_TFLITE_FILENAME + ".json")).exists()
    assert classify_cli.main([str(training / "one"), "--custom", "--models", str(copy)]) == 0  # Keras head


def test_custom_text_output_names_class_and_percentage(trained, fsdd_dir, capsys):
    _training, models, _cache, _ = trained
    clip = fsdd_dir / "7_theo_45.wav"
    assert classify_cli.main([str(clip), "--custom", "--models", str(models), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{clip}: ") and lines[0].endswith("%)")
    assert len(lines) == 4 and {line.split(":")[0].strip() for line in lines[1:]} == {"one", "seven", "zero"}


def test_rerun_embeds_only_new_clips(trained, tmp_path, capsys):
    training, _models, cache, _ = trained
    copy = tmp_path / "training"
    shutil.copytree(training, copy)  # renamed paths, same content: all from the cache
    write_wav(copy / "zero" / "new_clip.wav", noise(0.5, seed=7))
    capsys.readouterr()
    assert train_cli.main([str(copy), str(tmp_path / "m"), "--epochs", "1", "--cache-dir", str(cache), "--quiet",
                          "--no-tflite"]) == 0
    assert "embeddings: 1 computed, 90 from cache, 0 failed" in capsys.readouterr().out


def test_bad_clip_in_training_set_is_skipped_and_reported(trained, tmp_path, capsys):
    training, _models, cache, _ = trained
    copy = tmp_path / "training"
    shutil.copytree(training, copy)
    (copy / "one" / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk")
    capsys.readouterr()
    assert train_cli.main([str(copy), str(tmp_path / "m"), "--epochs", "1", "--cache-dir", str(cache), "--quiet",
                          "--no-tflite"]) == 0
    captured = capsys.readouterr()
    assert "1 failed" in captured.out and "corrupt.wav" in captured.err


@pytest.mark.parametrize(
    "layout,message",
    [
        ({"doorbell": 3}, "only one class"),
        ({"doorbell": 3, "glass": 0}, "with no audio"),
        ({}, "no audio found"),
    ],
    ids=["one-class", "empty-class", "no-audio"],
)
def test_training_refusals_keep_the_old_model(trained, tmp_path, capsys, layout, message):
    _training, models, _cache, _ = trained
    existing = tmp_path / "models"
    shutil.copytree(models, existing)
    before = (existing / CLASSIFIER_FILENAME).read_bytes()
    training = tmp_path / "training"
    training.mkdir()
    for name, count in layout.items():
        (training / name).mkdir()
        for i in range(count):
            write_wav(training / name / f"{i}.wav", noise(0.5, seed=i))
    assert train_cli.main([str(training), str(existing), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert (existing / CLASSIFIER_FILENAME).read_bytes() == before


def test_training_set_that_becomes_one_class_after_bad_files_is_refused(yamnet, tmp_path, capsys):
    training = tmp_path / "training"
    write_wav(training / "good" / "a.wav", noise(0.5))
    (training / "bad").mkdir()
    (training / "bad" / "b.wav").write_text("not audio")
    assert train_cli.main([str(training), str(tmp_path / "m"), "--no-cache", "--quiet"]) == 1
    assert "with no audio" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--batch-size", "0"), ("--cv", "1"),
                                        ("--splice-copies", "-1")])
def test_bad_training_flags_are_usage_errors(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        train_cli.main([str(tmp_path), str(tmp_path / "m"), flag, value])
    assert info.value.code == 2 and flag in capsys.readouterr().err


@pytest.mark.parametrize("argv,hint", [(["--val-split", "0.2"], "--cv K"), (["--no-streams"], "--splice-copies 0")])
def test_removed_flags_say_what_replaced_them(tmp_path, capsys, argv, hint):
    with pytest.raises(SystemExit) as info:
        train_cli.main([str(tmp_path), str(tmp_path / "m"), *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "is gone" in err and hint in err


def test_no_refit_keeps_the_first_folds_model(trained, tmp_path, capsys):
    training, _models, cache, _ = trained
    assert train_cli.main([str(training), str(tmp_path / "m"), "--no-refit", "--cv", "3", "--epochs", "5",
                           "--cache-dir", str(cache), "--quiet", "--no-tflite"]) == 0
    assert "the first fold's (--no-refit)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "m" / MODEL_JSON_FILENAME).read_text())
    assert meta["training"]["config"]["refit"] is False and meta["training"]["frames"] == {}


def test_model_trained_on_another_yamnet_warns(trained, fsdd_dir, tmp_path, capsys):
    _training, models, _cache, _ = trained
    other = tmp_path / "models"
    shutil.copytree(models, other)
    meta = json.loads((other / MODEL_JSON_FILENAME).read_text())
    meta["yamnet"]["identity"] = "sha256:0000000000000000"
    (other / MODEL_JSON_FILENAME).write_text(json.dumps(meta))
    assert classify_cli.main([str(fsdd_dir / "1_theo_44.wav"), "--custom", "--models", str(other)]) == 0
    assert "trained on another YAMNet" in capsys.readouterr().err
    assert classify_cli.main([str(fsdd_dir / "1_theo_44.wav"), "--custom", "--models", str(models)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_cross_validation_by_speaker_reports_folds_and_stores_them(trained, tmp_path, capsys):
    training, _models, cache, _ = trained
    capsys.readouterr()
    assert train_cli.main([str(training), str(tmp_path / "m"), "--cv", "3", "--group-by", r"_([a-z]+)_",
                           "--epochs", "20", "--cache-dir", str(cache), "--quiet", "--no-tflite"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("cross-validation fold")] == [
        "cross-validation fold 1/3", "cross-validation fold 2/3", "cross-validation fold 3/3"]
    assert "confusion matrix" in out
    cv = json.loads((tmp_path / "m" / MODEL_JSON_FILENAME).read_text())["training"]["cross_validation"]
    assert cv["folds"] == 3 and len(cv["fold_balanced_accuracies"]) == 3 and cv["group_by"] == r"_([a-z]+)_"
    assert sum(sum(row) for row in cv["report"]["confusion"]) == 90  # every clip tested exactly once
    assert cv["mean_balanced_accuracy"] > 0.4, cv  # unseen speakers; chance is 1/3


@pytest.mark.parametrize("argv,message", [(["--cv", "1"], "at least 2 folds"),
                                          (["--cv", "3", "--group-by", "("], "not a valid regular expression")])
def test_cross_validation_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        train_cli.main([str(tmp_path), str(tmp_path / "m"), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("a file, not a folder")
    assert train_cli.main([str(tmp_path), str(tmp_path / "afile" / "models"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "not a folder" in err and err.count("\n") == 1


def test_model_folder_with_mixed_parts_is_refused(trained, tmp_path, capsys):
    _training, models, _cache, _ = trained
    mixed = tmp_path / "models"
    shutil.copytree(models, mixed)
    (mixed / CLASS_NAMES_FILENAME).write_text("seven\none\nzero\n")  # same count, other order
    assert classify_cli.main([str(mixed / CLASSIFIER_FILENAME), "--custom", "--models", str(mixed)]) == 1
    assert "list different classes" in capsys.readouterr().err


def test_augment_adds_pitch_shifted_copies_and_caches_them(trained, tmp_path, capsys):
    training, _models, cache, _ = trained
    capsys.readouterr()
    argv = [str(training), str(tmp_path / "m"), "--epochs", "2", "--cache-dir", str(cache), "--quiet", "--no-tflite", "--augment", "2"]
    assert train_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "augmented copies (2 per clip): 90 computed, 0 from cache" in out
    meta = json.loads((tmp_path / "m" / MODEL_JSON_FILENAME).read_text())
    assert meta["training"]["config"]["augment"] == 2
    plain_frames = meta["training"]["frames"]["clip_frames"]
    assert train_cli.main(argv) == 0
    assert "augmented copies (2 per clip): 0 computed, 90 from cache" in capsys.readouterr().out  # second run
    assert train_cli.main(argv[:-2]) == 0
    capsys.readouterr()
    unaugmented = json.loads((tmp_path / "m" / MODEL_JSON_FILENAME).read_text())["training"]["frames"]["clip_frames"]
    assert plain_frames > unaugmented  # copies add training frames (never held-out ones)
