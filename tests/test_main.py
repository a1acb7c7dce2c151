"""main.py with base YAMNet: real clips, padding, JSON, batches with bad files, bad handles."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import main as classify_cli
from conftest import PROJECT_DIR, noise, tone, write_wav
from params import YAMNET_ENV_VAR

TONE_LIKE = {"Dial tone", "Telephone", "Sine wave", "Busy signal", "Beep, bleep", "Tuning fork", "Hum"}


def run_json(argv, capsys):
    code = classify_cli.main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_real_speech_tone_and_silence_get_sensible_classes(yamnet, fsdd_dir, tmp_path, capsys):
    speech = fsdd_dir / "3_jackson_0.wav"
    beep = write_wav(tmp_path / "tone.wav", tone(440, 2.0))
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16000, np.float32))
    code, records, err = run_json([str(speech), str(beep), str(silence), "--top-k", "5"], capsys)
    assert code == 0, err
    by_file = {r["file"]: r for r in records}
    assert by_file[str(speech)]["label"] == "Speech" and by_file[str(speech)]["confidence"] > 0.5
    assert by_file[str(beep)]["label"] in TONE_LIKE
    assert by_file[str(silence)]["label"] == "Silence"
    for record in records:
        assert record["model"] == "yamnet"
        scores = [entry["score"] for entry in record["top"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert record["top"][0] == {"label": record["label"], "score": record["confidence"]}


def test_clip_shorter_than_one_patch_is_padded(yamnet, tmp_path, capsys):
    short = write_wav(tmp_path / "short.wav", tone(440, 0.05, sr=8000), sr=8000)
    code, records, _ = run_json([str(short)], capsys)
    assert code == 0 and records[0]["duration_s"] == 0.05 and records[0]["label"]


def test_text_output(yamnet, fsdd_dir, capsys):
    clip = fsdd_dir / "0_lucas_0.wav"
    assert classify_cli.main([str(clip)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{clip}: Speech (") and line.endswith("%)")


def test_batch_reports_bad_files_and_classifies_the_rest(yamnet, tmp_path, capsys):
    folder = tmp_path / "clips"
    write_wav(folder / "a.wav", noise(1.0))
    (folder / "broken.wav").write_text("nope")
    (folder / "empty.flac").write_bytes(b"")
    (folder / "readme.txt").write_text("ignored: not audio by extension")
    code, records, err = run_json([str(folder), str(tmp_path / "missing.wav")], capsys)
    assert code == 1
    assert [r["file"] for r in records] == [str(folder / "a.wav")]
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "broken.wav: not a readable audio file" in err and "empty.flac: file is empty" in err
    assert "missing.wav: no such file" in err


def test_missing_custom_model_is_one_line(tmp_path, capsys):
    assert classify_cli.main([str(tmp_path / "x.wav"), "--custom", "--models", str(tmp_path / "nomodel")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no trained model in") and "python train.py" in err and err.count("\n") == 1


def test_bad_yamnet_handle_flag_and_env(tmp_path, capsys, monkeypatch):
    clip = write_wav(tmp_path / "a.wav", noise(0.5))
    assert classify_cli.main([str(clip), "--yamnet", str(tmp_path / "nowhere")]) == 1
    assert "YAMNet not found at" in capsys.readouterr().err
    monkeypatch.setenv(YAMNET_ENV_VAR, str(tmp_path))  # a folder, but not a SavedModel
    assert classify_cli.main([str(clip)]) == 1
    assert "not a TensorFlow SavedModel" in capsys.readouterr().err


def test_env_variable_selects_another_yamnet_copy(yamnet, tmp_path, capsys, monkeypatch):
    import shutil

    copy = tmp_path / "yamnet_copy"
    shutil.copytree(PROJECT_DIR / "models" / "yamnet", copy)
    monkeypatch.setenv(YAMNET_ENV_VAR, str(copy))
    clip = write_wav(tmp_path / "s.wav", np.zeros(16000, np.float32))
    code, records, _ = run_json([str(clip)], capsys)
    assert code == 0 and records[0]["label"] == "Silence"
    from yamnet_classifier import load_yamnet

    assert load_yamnet(str(copy)).identity == yamnet.identity  # same weights, same cache key


def test_usage_errors(capsys):
    for argv, message in ((["a.wav", "--top-k", "0"], "--top-k"), (["a.wav", "--models", "m"], "--models only")):
        with pytest.raises(SystemExit) as info:
            classify_cli.main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_cli_process_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    result = subprocess.run([sys.executable, "main.py", str(bad), "--custom", "--models", str(tmp_path)],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: no trained model")


def test_reader_closing_the_pipe_early_is_not_a_traceback(fsdd_dir):
    clips = [str(fsdd_dir / f"0_george_{n}.wav") for n in range(40)]
    process = subprocess.Popen([sys.executable, "main.py", *clips], cwd=PROJECT_DIR,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith(clips[0])
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in stderr


def test_first_start_builds_the_tflite_yamnet_and_later_starts_skip_tensorflow(fsdd_dir, tmp_path):
    """A fresh machine: the first start runs TensorFlow and caches YAMNet as .tflite; the next
    start answers the same without importing TensorFlow (it fails to import here)."""
    clip = str(fsdd_dir / "4_nicolas_3.wav")
    blocker = tmp_path / "no_tf"
    (blocker / "tensorflow").mkdir(parents=True)
    (blocker / "tensorflow" / "__init__.py").write_text("raise ImportError('tensorflow must not be imported')")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run(extra_env, *flags):
        return subprocess.run([sys.executable, "main.py", clip, "--json", *flags], cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=300, env={**env, **extra_env})

    blocked = run({"PYTHONPATH": str(blocker)}, "--backend", "tflite")
    assert blocked.returncode == 1 and blocked.stderr.startswith("error: ") and "Traceback" not in blocked.stderr
    first = run({})
    assert first.returncode == 0 and "built a TFLite copy of YAMNet" in first.stderr, first.stderr
    second = run({"PYTHONPATH": str(blocker)})
    assert second.returncode == 0 and second.stderr == "", second.stderr
    first_answer, second_answer = json.loads(first.stdout), json.loads(second.stdout)
    assert first_answer["label"] == second_answer["label"] == "Speech"
    assert abs(first_answer["confidence"] - second_answer["confidence"]) <= 1e-3


def test_without_the_tflite_runtime_auto_falls_back_to_tensorflow(fsdd_dir, tmp_path):
    blocker = tmp_path / "no_litert"
    (blocker / "ai_edge_litert").mkdir(parents=True)
    (blocker / "ai_edge_litert" / "__init__.py").write_text("raise ImportError('No module named ai_edge_litert')")
    env = {**os.environ, "PYTHONPATH": str(blocker), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    clip = str(fsdd_dir / "2_theo_7.wav")

    def run(*flags):
        return subprocess.run([sys.executable, "main.py", clip, "--json", *flags], cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=300, env=env)

    auto = run()
    assert auto.returncode == 0 and json.loads(auto.stdout)["label"] == "Speech", auto.stderr
    assert "Traceback" not in auto.stderr
    # a copy it could not run is not built (that cost every start ~15 s, and said "once")
    assert "TFLite copy" not in auto.stderr and not list((tmp_path / "cache").rglob("*.tflite"))
    forced = run("--backend", "tflite")
    assert forced.returncode == 1 and forced.stderr.startswith("error: ") and "ai-edge-litert" in forced.stderr
    assert forced.stderr.count("\n") == 1
