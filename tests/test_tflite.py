"""TFLite export and runners: real YAMNet exported once per session, compared with TensorFlow on
real FSDD recordings and generated sounds."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_DIR, noise, tone

from audio_util import load_audio_16k_mono
from model import CustomModel, ModelError, build_classifier_head
from model_folder import read_model_json
from params import SAMPLE_RATE, YAMNET
from yamnet_classifier import YamnetError

import tflite_backend
from tflite_backend import (
    LiteHead,
    LitePipeline,
    LiteYamnet,
    TfliteError,
    cached_yamnet_tflite_path,
    export_pipeline_tflite,
    export_yamnet_tflite,
    lite_yamnet_for,
    load_model_pipeline,
    sidecar_path,
)

CLASS_NAMES = ["speech", "tone", "noise"]


@pytest.fixture(scope="session")
def clips(fsdd_dir):
    """Real and generated clips of awkward lengths: 0.3 s .. 60 s, 8 kHz files resampled."""
    speech = [load_audio_16k_mono(fsdd_dir / name) for name in
              ("0_george_0.wav", "3_jackson_12.wav", "7_theo_30.wav", "9_lucas_5.wav")]
    long_speech = np.concatenate([load_audio_16k_mono(path) for path in sorted(fsdd_dir.glob("5_*.wav"))[:20]])
    sixty_seconds = np.resize(long_speech, 60 * SAMPLE_RATE).astype(np.float32)  # ~7 s of speech, repeated
    return {
        **{f"speech{i}": clip for i, clip in enumerate(speech)},
        "tone_2s": tone(440.0, 2.0),
        "noise_0.3s": noise(0.3),  # shorter than one patch: padded
        "tone_odd": tone(1000.0, (YAMNET.patch_input_samples + 1) / SAMPLE_RATE),  # one sample past one patch
        "speech_60s": sixty_seconds,
    }


@pytest.fixture(scope="session")
def keras_head(yamnet, clips):
    """A head trained for a few epochs on speech/tone/noise, so its probabilities are not flat."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = [], []
    for name, clip in clips.items():
        embeddings = yamnet.run(clip[: 3 * SAMPLE_RATE])[1]
        label = 0 if name.startswith("speech") else 1 if name.startswith("tone") else 2
        x.append(embeddings)
        y += [label] * len(embeddings)
    head = build_classifier_head(len(CLASS_NAMES))
    head.fit(np.concatenate(x), np.array(y), epochs=5, verbose=0)
    return head


@pytest.fixture(scope="session")
def exported(yamnet, keras_head, tmp_path_factory):
    """The three kinds of .tflite file, built once: base YAMNet, pipeline, head alone."""
    folder = tmp_path_factory.mktemp("tflite")
    meta = {"class_names": CLASS_NAMES, "yamnet": {"handle": yamnet.handle, "identity": yamnet.identity},
            "created": "2026-11-24T07:00:00+00:00"}
    return {
        "yamnet": export_yamnet_tflite(yamnet, folder / "yamnet.tflite"),
        "pipeline": export_pipeline_tflite(yamnet, keras_head, folder / "classifier.tflite", CLASS_NAMES, meta),
        "head": export_pipeline_tflite(None, keras_head, folder / "head.tflite", CLASS_NAMES, meta),
    }


@pytest.fixture(scope="session")
def lite_yamnet(exported):
    return LiteYamnet(exported["yamnet"])


def assert_embeddings_close(embeddings, tf_embeddings, name):
    """TFLite's float32 FFT differs from TensorFlow's in the last bits; on pure tones the log of
    near-empty mel bands amplifies that to ~4e-4 of the embeddings' scale (measured)."""
    scale = max(1.0, float(np.abs(tf_embeddings).max()))
    assert np.abs(embeddings - tf_embeddings).max() <= 1e-3 * scale, name


def test_lite_yamnet_keeps_identity_handle_and_class_names(yamnet, lite_yamnet):
    assert lite_yamnet.identity == yamnet.identity
    assert lite_yamnet.handle == yamnet.handle
    assert lite_yamnet.class_names == yamnet.class_names
    assert lite_yamnet._features is not None, "the export should have cut the graph into features + patches"


def test_lite_yamnet_matches_tensorflow(yamnet, lite_yamnet, clips):
    for name, clip in clips.items():
        tf_scores, tf_embeddings = yamnet.run(clip)
        scores, embeddings = lite_yamnet.run(clip)
        assert scores.shape == tf_scores.shape and embeddings.shape == tf_embeddings.shape, name
        assert np.abs(scores - tf_scores).max() <= 1e-3, name
        assert_embeddings_close(embeddings, tf_embeddings, name)


def test_dynamic_lengths_give_yamnet_patch_counts(lite_yamnet, clips):
    # 0.3 s -> 1 patch (padded); 15601 samples -> 2; 60 s -> 1 + ceil((960000 - 15600) / 7680) = 124.
    assert len(lite_yamnet.run(clips["noise_0.3s"])[1]) == 1
    assert len(lite_yamnet.run(clips["tone_odd"])[1]) == 2
    assert len(lite_yamnet.run(clips["speech_60s"])[1]) == 124


def test_embed_many_equals_one_clip_at_a_time(lite_yamnet, clips):
    waveforms = list(clips.values()) + [clips["noise_0.3s"]]  # a repeat, and lengths in any order
    batched = lite_yamnet.embed_many(waveforms, patch_batch=7)  # batches that cut through clips
    assert len(batched) == len(waveforms)
    for waveform, embeddings in zip(waveforms, batched):
        alone = lite_yamnet.run(waveform)[1]
        assert embeddings.shape == alone.shape
        assert np.abs(embeddings - alone).max() <= 1e-4
    assert lite_yamnet.embed_many([]) == []


def test_pipeline_matches_keras_head_on_tensorflow_embeddings(yamnet, keras_head, exported, clips):
    custom = CustomModel(head=keras_head, class_names=CLASS_NAMES, meta={})
    pipeline = LitePipeline(exported["pipeline"])
    assert pipeline.class_names == CLASS_NAMES and pipeline.yamnet_identity == yamnet.identity
    for name, clip in clips.items():
        tf_embeddings = yamnet.run(clip)[1]
        probabilities, embeddings = pipeline.run(clip)
        assert np.abs(probabilities - custom.frame_probabilities(tf_embeddings)).max() <= 1e-3, name
        assert_embeddings_close(embeddings, tf_embeddings, name)
        clip_answer = pipeline.clip_probabilities(embeddings)
        assert np.abs(clip_answer - custom.clip_probabilities(tf_embeddings)).max() <= 1e-3, name
        assert pipeline.predict_clip(embeddings) == custom.predict_clip(tf_embeddings), name
    assert pipeline.predict_clip(pipeline.run(clips["tone_2s"])[1]) == CLASS_NAMES.index("tone")


def test_model_folder_pipeline_must_match_model_json(yamnet, exported, tmp_path):
    shutil.copy(exported["pipeline"], tmp_path / "classifier.tflite")
    shutil.copy(sidecar_path(exported["pipeline"]), tmp_path / "classifier.tflite.json")
    meta = {"class_names": CLASS_NAMES, "yamnet": {"handle": yamnet.handle, "identity": yamnet.identity},
            "created": "2026-11-24T07:00:00+00:00"}
    (tmp_path / "model.json").write_text(json.dumps({**meta, "unknown": {"similarity": {"tone": 0.5}}}))
    pipeline = load_model_pipeline(tmp_path, read_model_json(tmp_path))  # hand-edited thresholds are fine
    assert pipeline.class_names == CLASS_NAMES and pipeline.identity == yamnet.identity
    for stale in ({"class_names": ["dog", "cat", "bird"]}, {"created": "2026-11-25T07:00:00+00:00"}):
        (tmp_path / "model.json").write_text(json.dumps({**meta, **stale}))
        with pytest.raises(TfliteError, match="another training"):
            load_model_pipeline(tmp_path, read_model_json(tmp_path))
    with pytest.raises(TfliteError, match="model.json is missing"):  # not "another training"
        load_model_pipeline(tmp_path, {})


def test_head_alone_matches_keras(yamnet, keras_head, exported, clips):
    custom = CustomModel(head=keras_head, class_names=CLASS_NAMES, meta={})
    embeddings = yamnet.run(clips["speech0"])[1]
    for path in (exported["head"], exported["pipeline"]):  # a pipeline file also serves its head
        head = LiteHead(path)
        assert head.yamnet_identity == yamnet.identity
        assert np.abs(head.clip_probabilities(embeddings) - custom.clip_probabilities(embeddings)).max() <= 1e-4
        assert np.abs(head.frame_probabilities(embeddings) - custom.frame_probabilities(embeddings)).max() <= 1e-4
    assert 2e6 < exported["head"].stat().st_size < 3e6  # the weights are in the file, not left as variables
    with pytest.raises(TfliteError, match="only a head"):
        LitePipeline(exported["head"])
    with pytest.raises(TfliteError, match="not YAMNet"):
        LiteYamnet(exported["pipeline"])


def assert_one_line_error(path, match: str, loader=LiteYamnet):
    with pytest.raises(TfliteError, match=match) as caught:
        loader(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(caught.value, YamnetError) and isinstance(caught.value, ModelError)


def test_missing_or_damaged_files_give_one_line_errors(exported, tmp_path):
    assert_one_line_error(tmp_path / "nowhere.tflite", "not found")

    no_sidecar = tmp_path / "no_sidecar.tflite"
    shutil.copy(exported["yamnet"], no_sidecar)
    assert_one_line_error(no_sidecar, "no no_sidecar.tflite.json")

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(exported["yamnet"].read_bytes()[:100_000])
    shutil.copy(sidecar_path(exported["yamnet"]), sidecar_path(truncated))
    assert_one_line_error(truncated, "does not match")

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all" * 100)
    meta = json.loads(sidecar_path(exported["yamnet"]).read_text())
    meta["tflite_sha256"] = hashlib.sha256(garbage.read_bytes()).hexdigest()
    sidecar_path(garbage).write_text(json.dumps(meta))
    assert_one_line_error(garbage, "cannot load")
    assert_one_line_error(garbage, "cannot load", loader=LitePipeline)

    sidecar_path(no_sidecar).write_text("{broken")
    assert_one_line_error(no_sidecar, "not readable JSON")


def test_cached_yamnet_is_found_by_identity(yamnet, exported, tmp_path):
    with pytest.raises(TfliteError, match="no YAMNet TFLite model cached"):
        lite_yamnet_for(yamnet.handle, cache_dir=tmp_path, build=False)
    cached = cached_yamnet_tflite_path(yamnet.identity, tmp_path)
    cached.parent.mkdir(parents=True)
    shutil.copy(exported["yamnet"], cached)
    shutil.copy(sidecar_path(exported["yamnet"]), sidecar_path(cached))
    assert lite_yamnet_for(yamnet.handle, cache_dir=tmp_path, build=False).identity == yamnet.identity


def test_running_never_imports_tensorflow(exported, tmp_path):
    wav = tmp_path / "tone.wav"
    import soundfile

    soundfile.write(str(wav), tone(440.0, 1.0), SAMPLE_RATE)
    script = (
        "import sys, tflite_backend\n"
        "from audio_util import load_audio_16k_mono\n"
        f"pipeline = tflite_backend.load_lite_pipeline({str(exported['pipeline'])!r})\n"
        f"yamnet = tflite_backend.load_lite_yamnet({str(exported['yamnet'])!r})\n"
        f"waveform = load_audio_16k_mono({str(wav)!r})\n"
        "print(pipeline.class_names[pipeline.predict_clip(pipeline.run(waveform)[1])], len(yamnet.embed_many([waveform])))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tone", "1"]


def test_module_import_is_tensorflow_free():
    done = subprocess.run([sys.executable, "-c", "import sys, tflite_backend; print('tensorflow' in sys.modules)"],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert tflite_backend.DEFAULT_NUM_THREADS >= 1
