"""YAMNet and trained heads as TFLite models, run with ai-edge-litert: no TensorFlow at run time.

Exporting needs TensorFlow (imported lazily inside the export functions); running does not.
Every .tflite file has a JSON sidecar beside it (`yamnet.tflite` -> `yamnet.tflite.json`) with
the class names, the identity of the YAMNet SavedModel it came from and the sha256 of the
.tflite bytes, so a LiteYamnet reports the same `identity` as the TF Yamnet (the embedding
cache and model.json key on it) and a stale sidecar is caught.

Signatures of an exported YAMNet (all with a dynamic leading dimension):
    waveform: waveform (n,) 16 kHz float32 -> scores (patches, 521), embeddings (patches, 1024)
    features: waveform (n,)                -> patches (patches, 96, 64) log-mel patches
    patches:  patches (p, 96, 64)          -> scores (p, 521), embeddings (p, 1024)
`features` + `patches` are the same graph cut at the convolution stack's input; `embed_many`
uses them to run the network once over the patches of many clips.
Signatures of an exported pipeline (a trained head, optionally with YAMNet in front):
    waveform: waveform (n,)               -> probabilities (patches, C), embeddings (patches, 1024)
    head:     embeddings (k, 1024)        -> probabilities (k, C)  (softmax of the head's logits)
"""

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from atomic_write import atomic_output, write_text_atomic
from audio_util import first_line, pad_to_length
from model_folder import ModelError
from params import EMBEDDING_SIZE, MODEL_JSON_FILENAME, PIPELINE_TFLITE_FILENAME, YAMNET
from yamnet_classifier import YamnetError, quiet_native_stderr

SIDECAR_SUFFIX = ".json"                 # yamnet.tflite -> yamnet.tflite.json
YAMNET_TFLITE_FILENAME = "yamnet.tflite"
FORMAT_VERSION = 1                       # bump when signatures or the sidecar change meaning
# Both cores: XNNPACK splits each convolution across threads (1.6x on a 60 s clip on 2 cores).
DEFAULT_NUM_THREADS = os.cpu_count() or 1
# Patches per call of the `patches` signature in embed_many: big enough to amortise the call,
# small enough that the activations stay in cache (measured: 16..128 are within noise).
PATCH_BATCH = 64


class TfliteError(YamnetError, ModelError):
    """A TFLite model that is missing, damaged or stale; the message says what to do.

    It is both a YamnetError and a ModelError, so main.py's existing handlers report it."""


# --- Export (TensorFlow) ------------------------------------------------------------------------

def yamnet_graph(tf, hub_model):
    """YAMNet's frozen graph and its tensors by name: (wrapped function, {"waveform", "patches", "scores",
    "embeddings"}), "patches" being the log-mel patches at the input of its first convolution; None when
    the graph does not look as expected. Prune it to cut the network where a caller needs."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def whole(waveform):
        scores, embeddings, _log_mel = hub_model(waveform)
        return scores, embeddings

    frozen = convert_variables_to_constants_v2(whole.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    nodes = {node.name: node for node in graph_def.node}
    first_conv = next((node for node in graph_def.node if node.op == "Conv2D"), None)
    if first_conv is None:
        return None
    # YAMNet reshapes the (patches, frames, bands) log-mel patches to images just before layer 1.
    to_image = nodes.get(first_conv.input[0].split(":")[0])
    if to_image is None or to_image.op != "Reshape":
        return None
    patches_name = to_image.input[0] if ":" in to_image.input[0] else to_image.input[0] + ":0"
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    scores, embeddings = (graph.as_graph_element(t.name) for t in frozen.outputs)
    return wrapped, {"waveform": graph.as_graph_element(frozen.inputs[0].name),
                     "patches": graph.as_graph_element(patches_name), "scores": scores, "embeddings": embeddings}


def _frozen_yamnet_graphs(tf, hub_model):
    """Cut YAMNet's frozen graph at the input of its first convolution.

    Returns (features, network) concrete functions: waveform -> log-mel patches and
    patches -> (scores, embeddings); or None when the graph does not look as expected.
    """
    cut = yamnet_graph(tf, hub_model)
    if cut is None:
        return None
    wrapped, tensors = cut
    features = wrapped.prune(feeds=[tensors["waveform"]], fetches=[tensors["patches"]])
    network = wrapped.prune(feeds=[tensors["patches"]], fetches=[tensors["scores"], tensors["embeddings"]])
    return features, network


def _convert(tf, signatures: dict) -> bytes:
    """{signature key: tf.function with an input_signature} -> one .tflite flatbuffer of builtin
    ops only (no Flex delegate needed).

    Variables are folded into constants first: the converter would otherwise keep Keras 3
    variables as uninitialised TFLite resource variables (the head would output garbage)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    def constant_function(key, function):
        concrete = function.get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete)

        def call(tensor):  # every signature here takes one tensor; outputs keep their names
            return tf.nest.pack_sequence_as(concrete.structured_outputs, frozen(tensor))

        call.__name__ = key  # the converter keys signatures by the function's graph name
        return tf.function(call, input_signature=function.input_signature)

    holder, concrete_functions = tf.Module(), []
    for key, function in signatures.items():
        wrapped = constant_function(key, function)
        setattr(holder, key, wrapped)
        concrete_functions.append(wrapped.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions(concrete_functions, holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    from tensorflow.lite.python.convert_phase import ConverterError

    try:
        with quiet_native_stderr():  # the converter logs every step of MLIR to fd 2
            return converter.convert()
    except ConverterError as e:
        raise TfliteError(f"the TFLite converter failed: {first_line(e)}") from e


def _write_with_sidecar(out_path, flatbuffer: bytes, meta: dict) -> Path:
    """Write the .tflite, then its sidecar (with the .tflite's sha256), each atomically."""
    out_path = Path(out_path)
    with atomic_output(out_path) as tmp:
        tmp.write_bytes(flatbuffer)
    meta = {"format_version": FORMAT_VERSION, "tflite_sha256": hashlib.sha256(flatbuffer).hexdigest(), **meta}
    write_text_atomic(sidecar_path(out_path), json.dumps(meta, indent=2) + "\n")
    return out_path


def export_yamnet_tflite(yamnet, out_path) -> Path:
    """Write a loaded TF `yamnet_classifier.Yamnet` as a .tflite (signatures: waveform, and
    features + patches when the graph can be cut) plus its sidecar. ~15 MB; ~10-20 s on 2 cores."""
    from yamnet_classifier import import_tensorflow

    tf = import_tensorflow()
    hub_model = yamnet._model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def waveform(waveform):
        scores, embeddings, _log_mel = hub_model(waveform)
        return {"scores": scores, "embeddings": embeddings}

    signatures = {"waveform": waveform}
    split = _frozen_yamnet_graphs(tf, hub_model)
    if split is not None:
        features_graph, network_graph = split
        # The patch shape (frames, mel bands) as YAMNet makes it, read off one patch of silence.
        patch_shape = tuple(features_graph(tf.zeros([YAMNET.patch_input_samples]))[0].shape[1:])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
        def features(waveform):
            return {"patches": features_graph(waveform)[0]}

        @tf.function(input_signature=[tf.TensorSpec([None, *patch_shape], tf.float32, name="patches")])
        def patches(patches):
            scores, embeddings = network_graph(patches)
            return {"scores": scores, "embeddings": embeddings}

        signatures.update(features=features, patches=patches)
    return _write_with_sidecar(out_path, _convert(tf, signatures), {
        "kind": "yamnet",
        "yamnet": {"handle": yamnet.handle, "identity": yamnet.identity},
        "class_names": list(yamnet.class_names),
        "sample_rate": YAMNET.sample_rate,
    })


def export_pipeline_tflite(yamnet, keras_head, out_path, class_names: list[str], meta: dict | None = None) -> Path:
    """Write a trained head as a .tflite with signatures `waveform` (YAMNet + head: per-patch
    probabilities and embeddings) and `head` (embeddings -> probabilities), plus its sidecar.

    With yamnet=None only the head is written (~2 MB instead of ~15 MB; a single signature,
    which the converter names `serving_default`). `meta` (e.g. model.json's dict) is kept in the
    sidecar under "model"; its "yamnet" entry gives a head-only file its YAMNet identity.
    """
    from yamnet_classifier import import_tensorflow

    tf = import_tensorflow()
    outputs = keras_head.output_shape[-1]
    if outputs != len(class_names):
        raise ModelError(f"the head has {outputs} outputs but {len(class_names)} class names were given")

    @tf.function(input_signature=[tf.TensorSpec([None, EMBEDDING_SIZE], tf.float32, name="embeddings")])
    def head(embeddings):
        return {"probabilities": tf.nn.softmax(keras_head(embeddings, training=False))}

    signatures = {"head": head}
    if yamnet is not None:
        hub_model = yamnet._model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
        def waveform(waveform):
            _scores, embeddings, _log_mel = hub_model(waveform)
            return {"probabilities": tf.nn.softmax(keras_head(embeddings, training=False)), "embeddings": embeddings}

        signatures["waveform"] = waveform
    yamnet_meta = {"handle": yamnet.handle, "identity": yamnet.identity} if yamnet is not None \
        else (meta or {}).get("yamnet", {})
    return _write_with_sidecar(out_path, _convert(tf, signatures), {
        "kind": "pipeline" if yamnet is not None else "head",
        "yamnet": yamnet_meta,
        "class_names": list(class_names),
        "model": meta or {},
    })


# --- Running (no TensorFlow) --------------------------------------------------------------------

def sidecar_path(tflite_path) -> Path:
    """The JSON beside a .tflite: `name.tflite` -> `name.tflite.json`."""
    tflite_path = Path(tflite_path)
    return tflite_path.with_name(tflite_path.name + SIDECAR_SUFFIX)


def _interpreter_class():
    """ai-edge-litert's Interpreter; TfliteError when the runtime is not installed (or will not import)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        from yamnet_classifier import FULL_INSTALL_HINT

        raise TfliteError(f"the TFLite backend needs ai-edge-litert, which is not installed: {FULL_INSTALL_HINT}") from e
    return Interpreter


def has_runtime() -> bool:
    """Whether ai-edge-litert imports: without it a .tflite cannot run, so none is worth building."""
    try:
        _interpreter_class()
    except TfliteError:
        return False
    return True


def _open_model(path, kind: str, remedy: str, num_threads: int):
    """(interpreter, sidecar dict) of a .tflite that exists, matches its sidecar and loads.

    `kind` names the model in messages, `remedy` says how to make it again."""
    Interpreter = _interpreter_class()

    path = Path(path)
    if not path.is_file():
        raise TfliteError(f"{kind} not found at {path}: {remedy}")
    try:
        meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfliteError(f"{path} has no {sidecar_path(path).name} beside it: {remedy}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TfliteError(f"{sidecar_path(path)} is not readable JSON ({first_line(e)}): {remedy}") from e
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise TfliteError(f"{sidecar_path(path)} is from another version of audio2mqtt: {remedy}")
    try:
        flatbuffer = path.read_bytes()
    except OSError as e:
        raise TfliteError(f"cannot read {path} ({e.strerror or e}): {remedy}") from e
    if hashlib.sha256(flatbuffer).hexdigest() != meta.get("tflite_sha256"):
        raise TfliteError(f"{path} does not match {sidecar_path(path).name} (damaged or replaced): {remedy}")
    try:
        with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:  # the flatbuffer parser's own words, first line only
        raise TfliteError(f"cannot load {path}: {first_line(e)}; {remedy}") from e
    return interpreter, meta


class LiteYamnet:
    """YAMNet from a .tflite: the surface of yamnet_classifier.Yamnet (handle, identity,
    class_names, run) plus `embed_many`. One instance is not safe to share between threads."""

    def __init__(self, path, num_threads: int = DEFAULT_NUM_THREADS):
        remedy = "rebuild it with tflite_backend.export_yamnet_tflite (python train.py rebuilds the cached one)"
        self.path = Path(path)
        interpreter, meta = _open_model(path, "YAMNet TFLite model", remedy, num_threads)
        if meta.get("kind") != "yamnet":
            raise TfliteError(f"{path} is a {meta.get('kind')!r} model, not YAMNet: {remedy}")
        try:
            self.handle = meta["yamnet"]["handle"]
            self.identity = meta["yamnet"]["identity"]
            self.class_names = meta["class_names"]
        except (KeyError, TypeError) as e:
            raise TfliteError(f"{sidecar_path(path)} lacks {e}: {remedy}") from e
        signatures = interpreter.get_signature_list()
        self._waveform = interpreter.get_signature_runner("waveform")
        split = "features" in signatures and "patches" in signatures
        self._features = interpreter.get_signature_runner("features") if split else None
        self._patches = interpreter.get_signature_runner("patches") if split else None

    def run(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """waveform (n,) float32 16 kHz -> scores (patches, 521), embeddings (patches, 1024).

        Clips shorter than one 0.96 s patch are zero-padded to one patch, as Yamnet.run does."""
        waveform = pad_to_length(np.asarray(waveform, dtype=np.float32), YAMNET.patch_window_samples)
        outputs = self._waveform(waveform=waveform)
        return outputs["scores"], outputs["embeddings"]

    def embed_many(self, waveforms: list[np.ndarray], patch_batch: int = PATCH_BATCH) -> list[np.ndarray]:
        """Embeddings (patches_i, 1024) of each clip, equal to `run(clip)[1]`, computed faster:
        log-mel patches clip by clip, then the network over the patches of all clips in batches.

        (Concatenating the waveforms instead would need each clip's region padded to the next
        0.48 s hop, and the two patches straddling each boundary are wasted network work: 3
        patches computed per useful one on sub-second clips.)
        Pass tens of clips at a time: all their log-mel patches (24.6 kB each) are held at once."""
        if self._features is None:  # an export whose graph could not be cut
            return [self.run(waveform)[1] for waveform in waveforms]
        patch_sets = [
            self._features(waveform=pad_to_length(np.asarray(w, dtype=np.float32), YAMNET.patch_window_samples))["patches"]
            for w in waveforms
        ]
        if not patch_sets:
            return []
        patches = np.concatenate(patch_sets)
        embeddings = np.concatenate([self._patches(patches=patches[start:start + patch_batch])["embeddings"]
                                     for start in range(0, len(patches), patch_batch)])
        return np.split(embeddings, np.cumsum([len(p) for p in patch_sets])[:-1])


class LiteHead:
    """A trained head from a pipeline or head-only .tflite: the surface of model.CustomModel
    (class_names, meta, frame_probabilities, clip_probabilities, predict_clip), no TensorFlow."""

    remedy = "retrain with python train.py (it writes one beside classifier.keras unless --no-tflite)"

    def __init__(self, path, num_threads: int = DEFAULT_NUM_THREADS):
        self.path = Path(path)
        self._interpreter, sidecar = _open_model(path, "TFLite classifier", self.remedy, num_threads)
        if sidecar.get("kind") not in ("pipeline", "head"):
            raise TfliteError(f"{path} is a {sidecar.get('kind')!r} model, not a trained classifier: {self.remedy}")
        self.kind = sidecar["kind"]
        self.class_names = sidecar["class_names"]
        self.meta = sidecar.get("model", {})
        # The YAMNet whose embeddings the head was trained on: main.py's warn_if_other_yamnet
        # compares it, and a LitePipeline can stand in for the yamnet argument too.
        self.yamnet_identity = self.identity = sidecar.get("yamnet", {}).get("identity")
        self.handle = sidecar.get("yamnet", {}).get("handle")
        signatures = self._interpreter.get_signature_list()
        # A head-only file has one signature, which the converter names serving_default.
        self._head = self._interpreter.get_signature_runner("head" if "head" in signatures else next(iter(signatures)))

    def frame_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> probabilities (patches, num_classes)."""
        return self._head(embeddings=np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_SIZE))["probabilities"]

    def clip_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> class probabilities (num_classes,): the head on the
        MEAN embedding, softmax, exactly as model.CustomModel.clip_probabilities."""
        mean_embedding = np.asarray(embeddings, dtype=np.float32).mean(axis=0, keepdims=True)
        return self.frame_probabilities(mean_embedding)[0]

    def predict_clip(self, embeddings: np.ndarray) -> int:
        """Index of the most likely class for one clip."""
        return int(np.argmax(self.clip_probabilities(embeddings)))


class LitePipeline(LiteHead):
    """The whole trained pipeline from one .tflite: waveform -> per-patch probabilities and
    embeddings. The clip answer is `clip_probabilities(embeddings)`: the head on the mean
    embedding, which is not the mean of the per-patch probabilities."""

    def __init__(self, path, num_threads: int = DEFAULT_NUM_THREADS):
        super().__init__(path, num_threads)
        if self.kind != "pipeline":
            raise TfliteError(f"{path} holds only a head (no YAMNet inside): {self.remedy}")
        self._waveform = self._interpreter.get_signature_runner("waveform")

    def run(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """waveform (n,) float32 16 kHz -> probabilities (patches, num_classes), embeddings (patches, 1024)."""
        waveform = pad_to_length(np.asarray(waveform, dtype=np.float32), YAMNET.patch_window_samples)
        outputs = self._waveform(waveform=waveform)
        return outputs["probabilities"], outputs["embeddings"]


@functools.lru_cache(maxsize=4)
def load_lite_yamnet(path, num_threads: int = DEFAULT_NUM_THREADS) -> LiteYamnet:
    """A LiteYamnet from `path` (once per process); TfliteError with a one-line remedy otherwise."""
    return LiteYamnet(path, num_threads)


@functools.lru_cache(maxsize=4)
def load_lite_head(path, num_threads: int = DEFAULT_NUM_THREADS) -> LiteHead:
    """The head of a pipeline or head-only .tflite (once per process)."""
    return LiteHead(path, num_threads)


def load_model_pipeline(models_dir, meta: dict, num_threads: int = DEFAULT_NUM_THREADS) -> LitePipeline:
    """The classifier.tflite of a trained model folder, refused when it was exported from
    another training than the folder's model.json `meta` (e.g. a retraining that stopped half-way):
    their "created" timestamps and class names must match."""
    models_dir = Path(models_dir)
    path = models_dir / PIPELINE_TFLITE_FILENAME
    if not meta:
        raise TfliteError(f"{models_dir / MODEL_JSON_FILENAME} is missing, so {path.name} cannot be checked against "
                          f"its training: retrain with python train.py")
    pipeline = load_lite_pipeline(str(path), num_threads)
    # The training's timestamp identifies it; other keys (thresholds) may be edited by hand.
    if meta.get("created") != pipeline.meta.get("created") or pipeline.class_names != meta.get("class_names"):
        raise TfliteError(f"{path} comes from another training than {models_dir / MODEL_JSON_FILENAME}: "
                          f"retrain with python train.py")
    return pipeline


@functools.lru_cache(maxsize=4)
def load_lite_pipeline(path, num_threads: int = DEFAULT_NUM_THREADS) -> LitePipeline:
    """A LitePipeline from `path` (once per process)."""
    return LitePipeline(path, num_threads)


# --- The cached base YAMNet .tflite -------------------------------------------------------------

def default_tflite_cache_dir() -> Path:
    """$XDG_CACHE_HOME/audio2mqtt/tflite, or ~/.cache/audio2mqtt/tflite."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "audio2mqtt" / "tflite"


def cached_yamnet_tflite_path(identity: str, cache_dir=None) -> Path:
    """Where the .tflite of the YAMNet with this identity is cached: one folder per identity."""
    safe_identity = "".join(c if c.isalnum() else "_" for c in identity)[:80]
    return Path(cache_dir or default_tflite_cache_dir()) / safe_identity / YAMNET_TFLITE_FILENAME


def lite_yamnet_for(handle: str, cache_dir=None, build: bool = True,
                    num_threads: int = DEFAULT_NUM_THREADS) -> LiteYamnet:
    """The LiteYamnet of a YAMNet handle, from the cache; with build=True a missing one is
    exported first (TensorFlow import + hub.load + conversion, ~20 s once)."""
    from yamnet_classifier import check_yamnet_handle, load_yamnet, model_identity

    check_yamnet_handle(handle)  # a missing folder is the usual one-line YamnetError, before any hashing
    _interpreter_class()  # without the runtime a copy could not be run: never build one for nothing
    path = cached_yamnet_tflite_path(model_identity(handle), cache_dir)
    try:
        return load_lite_yamnet(str(path), num_threads)
    except TfliteError:
        if not build and not path.is_file():
            raise TfliteError(f"no YAMNet TFLite model cached at {path}: run python train.py once "
                              f"(it builds one), or use the TensorFlow backend") from None
        if not build:
            raise
    export_yamnet_tflite(load_yamnet(handle), path)  # missing or damaged: (re)build it
    return load_lite_yamnet(str(path), num_threads)
