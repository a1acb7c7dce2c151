"""Training a head on YAMNet embeddings: one recipe for clips and background recordings, judged by
cross-validation by source. train.py is its command line; evaluate.py --cv runs `cross_validate` too,
so both print the same figure.

The training set (`gather`):
- every clip of every class, background/ clips included, is an example of its class: the embeddings
  of its patches, levelled and time-shifted as `TrainingConfig` says (the seed's recipe with both off);
- background *recordings* (background/ files of STREAM.recording_seconds or more, and every
  --negatives file) add the listener's windows to the background class;
- options (`TrainingConfig`): class weights, clips spliced into the background, hard negatives;
- clips under background/false_alarms/ (what listen.py's "Not a <sound>" feedback moves there) are
  hard negatives from the start: they train STREAM.false_alarm_copies more times.

The folds (`assign_folds`): sound clips by file (or --group-by); background by recording, so that
held-out background is other audio. Background clips of one recording share a name up to a trailing
number (kitchen_bg0003.wav, kitchen_bg0004.wav) and are one *stream*, as a recording is one stream.
Each fold trains the final model's recipe on the other folds; its held-out clips give the clip report
(as main.py --custom classifies), its held-out streams the false alarms per hour at each threshold,
and its held-out clips spliced into them the recall: the operating point comes from those.

TF-free at import: Keras comes in through `fit` (model.fit_head), YAMNet through `embed`.
"""

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

import stream_training as st
from metrics import REPORT_KEYS, build_report
from params import BACKGROUND_CLASS, CLIP, EVIDENCE, SAMPLE_RATE, STREAM, TRAINING, YAMNET


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained; model.json stores it ("training": {"config": ...}) so evaluate.py
    --cv can judge the same recipe. Defaults are train.py's (each measured in bench/real.py)."""

    views: int = CLIP.views                    # time-shifted copies of a clip, for about this many embeddings
    level_dbfs: float | None = CLIP.level_dbfs  # every clip (and live window) levelled to this RMS; None: as recorded
    epochs: int | None = None                  # None: TRAINING's, or STREAM's for many frames (for_data)
    batch_size: int | None = None
    balance: bool = TRAINING.balance           # class weights n / (classes * n_c)
    refit: bool = True                         # final model on all data; False: the first fold's model
    folds: int = TRAINING.folds                # cross-validation folds (the report and the operating point)
    group_by: str | None = None                # regex: sound clips sharing a group stay on one side
    seed: int = TRAINING.seed
    augment: int = 0                           # pitch-shifted copies of each training clip
    splice_copies: int = STREAM.splice_copies  # each sound clip spliced this often into training background
    hard_negatives: bool = STREAM.hard_negatives
    operating_point: bool = True               # choose threshold and windows for the listener
    max_false_per_hour: float = STREAM.max_false_per_hour

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        """A config from model.json (keys this version does not know are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})


# --- the training set -----------------------------------------------------------------------------------

@dataclass
class Clip:
    path: Path
    label: int
    frames: np.ndarray             # (patches, 1024): how the config embeds clips
    fold: int = 0
    augmented: np.ndarray | None = None  # frames of pitch-shifted copies (TrainingConfig.augment)


@dataclass
class Stream:
    """Background heard as the listener hears it: a recording (or a stretch of one), or the background
    clips of one recording joined. `clips`: indices of those clips (their frames train as clips; the
    stream only judges false alarms)."""

    name: str
    waveform: np.ndarray
    fold: int = 0
    clips: tuple = ()
    recording: str = ""  # the recording it is (a file's stem) or was cut from: one recording, one fold

    def __post_init__(self):
        self.recording = self.recording or Path(self.name).stem

    @property
    def seconds(self) -> float:
        return len(self.waveform) / SAMPLE_RATE

    @property
    def is_recording(self) -> bool:
        return not self.clips


@dataclass
class TrainingSet:
    """Sound classes first (sorted), background last: one class order in every report."""

    class_names: list[str]
    clips: list[Clip]
    streams: list[Stream] = field(default_factory=list)
    clip_waveforms: dict = field(default_factory=dict)  # index -> waveform, for splicing

    @property
    def background_index(self) -> int | None:
        return self.class_names.index(BACKGROUND_CLASS) if BACKGROUND_CLASS in self.class_names else None

    @property
    def background_seconds(self) -> float:
        return sum(s.seconds for s in self.streams)

    def clip_means(self) -> tuple[np.ndarray, np.ndarray]:
        """(each clip's mean embedding (clips, 1024), its label (clips,)): prototypes and "unknown" use them."""
        return np.stack([c.frames.mean(axis=0) for c in self.clips]), np.array([c.label for c in self.clips])


def is_false_alarm(path) -> bool:
    """A background clip that listen.py's feedback moved in: <training>/background/false_alarms/<clip>."""
    return tuple(Path(path).parts[-3:-1]) == tuple(Path(EVIDENCE.false_alarm_folder).parts)


def class_order(names) -> list[str]:
    """Sound classes sorted, background last."""
    return sorted(n for n in names if n != BACKGROUND_CLASS) + ([BACKGROUND_CLASS] if BACKGROUND_CLASS in names else [])


def recording_name(path) -> str:
    """The recording a background clip was cut from: the name audio_util.py background gave it
    (kitchen_bg0003.wav -> kitchen), else its name without a trailing number (tv-evening 12.flac ->
    tv-evening, dog.wav -> dog)."""
    stem = Path(path).stem
    cut = re.fullmatch(r"(.+)_bg\d+", stem)
    if cut:
        return cut.group(1)
    return re.sub(r"[\s_.-]*\d+$", "", stem) or stem


def group_by_error(pattern: str) -> str | None:
    """Why a --group-by pattern cannot be used (None: it can); train.py and evaluate.py --cv both check it."""
    try:
        re.compile(pattern)
    except re.error as e:
        return f"--group-by is not a valid regular expression ({e})"
    return None


def deal(sizes: dict, folds: int, rng: np.random.Generator) -> dict:
    """Groups to folds, largest first to the fold holding least so far (ties in a seeded order)."""
    order = sorted(sizes, key=lambda g: (-sizes[g], rng.random()))
    totals, out = [0.0] * folds, {}
    for group in order:
        fold = int(np.argmin(totals))
        out[group] = fold
        totals[fold] += sizes[group]
    return out


def assign_folds(data: TrainingSet, folds: int, seed: int, group_by: str | None = None) -> list[str]:
    """Set every clip's and stream's fold (in place); returns notes for the user. Sound clips are dealt
    as dataset.cross_validation_folds deals them (stratified by file, or whole `group_by` groups);
    background streams by recording (streams of one recording together), whole, by duration, when
    there are at least `folds` recordings; otherwise every stream is cut into stretches
    (STREAM.segment_seconds) dealt in turn, and held-out background is then other stretches of the
    same recordings. (Stretches of one recording judge it too kindly: on a new user's doorbell, 90 %
    against 54 % with its six recordings whole.)"""
    from dataset import cross_validation_folds

    sounds = {data.class_names[label]: [c.path for c in data.clips if c.label == label]
              for label in range(len(data.class_names)) if label != data.background_index}
    fold_of = {path: fold for fold, (_train, test) in enumerate(cross_validation_folds(sounds, folds, seed, group_by))
               for path, _label in test}
    for clip in data.clips:
        if clip.label != data.background_index:
            clip.fold = fold_of[clip.path]
    if not data.streams:
        return []
    notes = []
    sizes = {}
    for stream in data.streams:
        sizes[stream.recording] = sizes.get(stream.recording, 0.0) + stream.seconds
    if len(sizes) >= folds:  # whole, even if the folds' lengths differ: held-out background is other audio
        whole = deal(sizes, folds, np.random.default_rng([seed, folds]))
        for stream in data.streams:
            stream.fold = whole[stream.recording]
    else:
        data.streams = cut_streams(data, folds)
        notes.append(f"{len(sizes)} background recording(s) are fewer than the {folds} folds: each fold holds out "
                     f"stretches of them, so the accuracy and the false-alarm estimate are about this background, "
                     f"not new audio (add recordings of other days and places)")
    for stream in data.streams:
        for i in stream.clips:
            data.clips[i].fold = stream.fold
    return notes


def cut_streams(data: TrainingSet, folds: int) -> list[Stream]:
    """Every stream cut into stretches dealt to folds in turn: a recording into STREAM.segment_seconds
    pieces (at least `folds`), joined clips at clip boundaries."""
    out, dealt = [], 0
    for stream in data.streams:
        if stream.is_recording:
            count = max(folds, round(stream.seconds / STREAM.segment_seconds))
            pieces = [(f"{stream.name}#{k}", part, ()) for k, part in enumerate(np.array_split(stream.waveform, count))]
        else:
            count = min(len(stream.clips), max(folds, round(stream.seconds / STREAM.segment_seconds)))
            pieces = []
            for k, members in enumerate(np.array_split(np.array(stream.clips), count)):
                members = tuple(int(i) for i in members)
                pieces.append((f"{stream.name}#{k}", join([data.clip_waveforms[i] for i in members]), members))
        for name, waveform, members in pieces:
            out.append(Stream(name, waveform, dealt % folds, members, stream.recording))
            dealt += 1
    return out


def join(waveforms: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(w, np.float32) for w in waveforms]) if waveforms else np.zeros(0, np.float32)


def background_streams(data: TrainingSet, recordings: list[tuple[str, np.ndarray]]) -> list[Stream]:
    """Recordings (file name, waveform), and the background clips of each recording joined in name
    order (kitchen_bg0003.wav is of the recording kitchen.wav, as audio_util.py background names it)."""
    streams = [Stream(name, np.asarray(w, np.float32)) for name, w in recordings]
    by_recording = {}
    for i, clip in enumerate(data.clips):
        if clip.label == data.background_index:
            by_recording.setdefault(recording_name(clip.path), []).append(i)
    for name, members in sorted(by_recording.items()):
        members = sorted(members, key=lambda i: data.clips[i].path.name)
        streams.append(Stream(name, join([data.clip_waveforms[i] for i in members]), clips=tuple(members),
                              recording=name))
    return streams


def for_data(config: TrainingConfig, data: TrainingSet) -> TrainingConfig:
    """The config with epochs and batch size filled in: with STREAM.many_frames training frames or more
    (about 25 min of background, as recordings or as clips), fewer passes of larger batches (STREAM)
    suffice and keep training within minutes."""
    frames = sum(len(c.frames) for c in data.clips) + sum(
        s.seconds / YAMNET.patch_hop_seconds for s in data.streams if s.is_recording)
    many = frames >= STREAM.many_frames
    return replace(config, epochs=config.epochs or (STREAM.epochs if many else TRAINING.epochs),
                   batch_size=config.batch_size or (STREAM.batch_size if many else TRAINING.batch_size))


# --- one fit of the recipe --------------------------------------------------------------------------------

@dataclass
class Recipe:
    """What one fit needs besides the data: `fit(x, y, class_weight, validation) -> (model, history)`
    and `embed(waveform) -> (embeddings (windows, 1024), audible (windows,))` of listener windows."""

    config: TrainingConfig
    fit: object
    embed: object


def head_fitter(config: TrainingConfig, class_names: list[str], on_epoch=None):
    """`fit(x, y, class_weight, validation) -> (CustomModel, Keras history)`: a fresh head per call."""
    def fit(x, y, class_weight, validation):
        from model import CustomModel, fit_head

        head, history = fit_head(x, y, len(class_names), config.epochs, config.batch_size, config.seed,
                                 class_weight, validation, on_epoch)
        return CustomModel(head=head, class_names=class_names, meta={}), history
    return fit


def make_recipe(config: TrainingConfig, class_names: list[str], yamnet, cache, on_epoch=None) -> Recipe:
    """The recipe of a config: Keras heads, and listener windows embedded (and cached) as listen.py makes them."""
    return Recipe(config, head_fitter(config, class_names, on_epoch), st.WindowEmbedder(yamnet, config.level_dbfs, cache))


def fit_model(data: TrainingSet, clips: list[int], streams: list[int], recipe: Recipe, rng: np.random.Generator,
              validation=None) -> tuple[object, object, dict]:
    """A model from the given clips and background streams (indices into data): the clips' frames, the
    recordings' windows (as background), the sound clips spliced into the recordings, then again with
    the hard negatives added (each as the config says). Returns (model, history of the last fit, counts)."""
    config = recipe.config
    background = data.background_index
    xs = [data.clips[i].frames for i in clips]
    ys = [np.full(len(data.clips[i].frames), data.clips[i].label) for i in clips]
    if config.augment:
        xs += [data.clips[i].augmented for i in clips if data.clips[i].augmented is not None]
        ys += [np.full(len(data.clips[i].augmented), data.clips[i].label) for i in clips
               if data.clips[i].augmented is not None]
    counts = {"clip_frames": int(sum(len(x) for x in xs)), "background_windows": 0, "spliced_windows": 0,
              "hard_negatives": 0, "false_alarm_frames": 0}
    false_alarms = [data.clips[i].frames for i in clips
                    if data.clips[i].label == background and is_false_alarm(data.clips[i].path)]
    if false_alarms:  # the user said so: they need no first model to find them
        xs += false_alarms * STREAM.false_alarm_copies
        ys += [np.full(len(f), background) for f in false_alarms] * STREAM.false_alarm_copies
        counts["false_alarm_frames"] = int(sum(len(f) for f in false_alarms))
    negatives = np.zeros((0, YAMNET.embedding_size), np.float32)
    if background is not None:
        recordings = [data.streams[k] for k in streams if data.streams[k].is_recording]
        negatives = st.background_embeddings([s.waveform for s in recordings], recipe.embed)
        if len(negatives) > STREAM.max_background_windows:
            negatives = negatives[np.sort(rng.permutation(len(negatives))[:STREAM.max_background_windows])]
        xs.append(negatives)
        ys.append(np.full(len(negatives), background))
        counts["background_windows"] = int(len(negatives))
        sounds = [(data.clip_waveforms[i], data.clips[i].label) for i in clips if data.clips[i].label != background]
        beds = [s.waveform for s in recordings]  # not into background clips: measured, it taught "anything = the sound"
        if config.splice_copies and sounds and beds:
            excerpts = st.make_excerpts(sounds, beds, recipe.embed, rng, config.splice_copies)
            x_spliced, y_spliced = st.excerpt_frames(excerpts, background)
            xs.append(x_spliced)
            ys.append(y_spliced)
            counts["spliced_windows"] = int(len(x_spliced))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    weights = st.balanced_weights(y, len(data.class_names)) if config.balance else None
    model, history = recipe.fit(x, y, weights, validation)
    if config.hard_negatives and background is not None:
        pool = np.concatenate([negatives] + [data.clips[i].frames for i in clips if data.clips[i].label == background])
        if len(pool):
            firing = [c for c in range(len(data.class_names)) if c != background]
            hard = pool[model.frame_probabilities(pool)[:, firing].max(axis=1) > STREAM.hard_negative_score]
            if len(hard):
                x = np.concatenate([x] + [hard] * STREAM.hard_negative_copies)
                y = np.concatenate([y, np.full(len(hard) * STREAM.hard_negative_copies, background)])
                weights = st.balanced_weights(y, len(data.class_names)) if config.balance else None
                model, history = recipe.fit(x, y, weights, validation)
                counts["hard_negatives"] = int(len(hard))
    return model, history, counts


# --- cross-validation ---------------------------------------------------------------------------------------

@dataclass
class CrossValidation:
    """What the folds measured: the clip report, each fold's balanced accuracy, the held-out scores
    that choose the operating point, the per-epoch curves and each held-out clip's probabilities."""

    report: dict | None
    fold_scores: list
    calibration: st.Calibration
    histories: list
    clip_probabilities: dict
    first_model: object = None

    def summary(self, folds: int, group_by: str | None) -> dict:
        return {"folds": folds, "group_by": group_by, "fold_balanced_accuracies": self.fold_scores,
                "mean_balanced_accuracy": float(np.mean(self.fold_scores)) if self.fold_scores else None,
                "report": {k: self.report[k] for k in REPORT_KEYS} if self.report else None,
                "background_hours": round(self.calibration.background_seconds / 3600, 4)}


def cross_validate(data: TrainingSet, recipe: Recipe, log=print, keep_first: bool = False) -> CrossValidation:
    """Every fold: the recipe trained on the other folds, its held-out clips classified as main.py
    --custom does, its held-out background streams scored as the listener would, and its held-out sound
    clips spliced into them (STREAM.held_out_copies times)."""
    config = recipe.config
    background = data.background_index
    calibration = st.Calibration()
    true, predicted, names, fold_scores, histories, probabilities = [], [], [], [], [], {}
    first_model = None
    for fold in range(config.folds):
        rng = np.random.default_rng([config.seed, fold])
        train_clips = [i for i, c in enumerate(data.clips) if c.fold != fold]
        test_clips = [i for i, c in enumerate(data.clips) if c.fold == fold]
        train_streams = [k for k, s in enumerate(data.streams) if s.fold != fold]
        test_streams = [k for k, s in enumerate(data.streams) if s.fold == fold]
        trained = {data.class_names[data.clips[i].label] for i in train_clips}
        if any(data.streams[k].is_recording for k in train_streams):
            trained.add(BACKGROUND_CLASS)
        missing = sorted({data.class_names[c.label] for c in data.clips} - trained)
        if missing:
            log(f"warning: cross-validation fold {fold + 1} has no training clips of {', '.join(map(repr, missing))} "
                f"(all in the held-out group); its score says little about them")
        validation = validation_frames(data, test_clips)
        model, history, counts = fit_model(data, train_clips, train_streams, recipe, rng, validation)
        if keep_first and fold == 0:
            first_model = model
        histories.append(history.history if history is not None else {})
        fold_true, fold_predicted = [], []
        for i in test_clips:
            probabilities[i] = model.clip_probabilities(data.clips[i].frames)
            fold_true.append(data.clips[i].label)
            fold_predicted.append(int(np.argmax(probabilities[i])))
        if test_clips:
            fold_scores.append(build_report(data.class_names, fold_true, fold_predicted)["balanced_accuracy"])
        true += fold_true
        predicted += fold_predicted
        names += [str(data.clips[i].path) for i in test_clips]
        held_out = [data.streams[k] for k in test_streams]
        for stream in held_out:
            embeddings, audible = recipe.embed(stream.waveform)
            calibration.add_background(fold, stream.seconds, st.window_scores(model, embeddings, audible, background))
        sounds = [(data.clip_waveforms[i], data.clips[i].label) for i in test_clips if data.clips[i].label != background]
        if held_out and sounds:
            for e in st.make_excerpts(sounds, [s.waveform for s in held_out], recipe.embed, rng, STREAM.held_out_copies,
                                      STREAM.held_out_snr_db):
                calibration.excerpts.append((st.window_scores(model, e.embeddings, e.audible, background), e.coverage,
                                             e.class_index))
        log(f"cross-validation fold {fold + 1}/{config.folds}: trained on {len(train_clips)} clips"
            + (f" and {sum(data.streams[k].seconds for k in train_streams) / 60:.1f} min of background"
               f" ({counts['hard_negatives']} hard negatives)" if data.streams else "")
            + f"; held out {len(test_clips)} clips"
            + (f" and {sum(s.seconds for s in held_out) / 60:.1f} min" if data.streams else "")
            + (f": balanced accuracy {fold_scores[-1]:.1%}" if test_clips else ""))
    report = build_report(data.class_names, true, predicted, names) if true else None
    return CrossValidation(report, fold_scores, calibration, histories, probabilities, first_model)


def format_cross_validation(cv: CrossValidation) -> str:
    """The clip report of the folds as text (empty when no clip was held out)."""
    from metrics import format_report

    if not cv.report:
        return ""
    spread = f" ({np.mean(cv.fold_scores):.1%} ± {np.std(cv.fold_scores):.1%} per fold)" if cv.fold_scores else ""
    return f"clips held out by the folds, classified as main.py --custom does{spread}:\n" + format_report(cv.report)


def validation_frames(data: TrainingSet, clips: list[int]):
    """Held-out clip frames and labels for Keras's per-epoch validation line (None: no clips held out)."""
    if not clips:
        return None
    return (np.concatenate([data.clips[i].frames for i in clips]).astype(np.float32),
            np.concatenate([np.full(len(data.clips[i].frames), data.clips[i].label) for i in clips]).astype(np.int64))


def mean_history(histories: list[dict]) -> dict:
    """Per-epoch curves averaged over folds (keys every fold has, truncated to the shortest)."""
    keys = set.intersection(*(set(h) for h in histories)) if histories else set()
    out = {}
    for key in sorted(keys):
        length = min(len(h[key]) for h in histories)
        out[key] = np.mean([h[key][:length] for h in histories], axis=0).tolist()
    return out


def right_answers(data: TrainingSet, cv: CrossValidation) -> dict[str, list[float]]:
    """{class: the held-out probability of each held-out clip the folds got right} (for "unknown")."""
    right = {}
    for i, p in cv.clip_probabilities.items():
        guess = int(np.argmax(p))
        if guess == data.clips[i].label:
            right.setdefault(data.class_names[guess], []).append(float(p[guess]))
    return right


def enough_background(data: TrainingSet) -> bool:
    """Whether the background streams are long enough to choose an operating point on."""
    return data.background_seconds >= STREAM.min_background_minutes * 60


# --- gathering the training set from folders ----------------------------------------------------------------

def audio_seconds(path) -> float | None:
    """A file's duration from its header (None when libsndfile cannot tell without decoding)."""
    import soundfile

    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError, OSError):
        return None


def split_background(files_by_class: dict[str, list[Path]], negatives: list[Path]) -> tuple[dict, list[Path]]:
    """({class: clip files}, recording files): background/ files of STREAM.recording_seconds or more are
    recordings, the rest clips; every --negatives file is a recording. A file named twice (a folder
    given as --negatives too) counts once, as a recording."""
    background = files_by_class.get(BACKGROUND_CLASS, [])
    long = [p for p in background if (audio_seconds(p) or 0.0) >= STREAM.recording_seconds]
    recordings = {}
    for path in long + list(negatives):
        recordings.setdefault(Path(path).resolve(), Path(path))
    clips = {name: [p for p in files if name != BACKGROUND_CLASS or Path(p).resolve() not in recordings]
             for name, files in files_by_class.items()}
    return {name: files for name, files in clips.items() if files}, list(recordings.values())


@dataclass
class Prepared:
    """What train.py and evaluate.py --cv both start from: the set, its facts, the config filled in for
    it, the recipe and the YAMNet it embeds with."""

    data: TrainingSet
    facts: dict
    config: TrainingConfig
    recipe: Recipe
    yamnet: object


def prepare(root, negative_dirs: list[Path], config: TrainingConfig, yamnet_option: str | None, cache_dir,
            use_cache: bool = True, warn=print, progress: bool = True) -> Prepared:
    """Scan the folder (before YAMNet loads, so a wrong folder fails in milliseconds), load YAMNet, gather
    the training set and make the recipe: one path for train.py and evaluate.py --cv, so that both
    judge the same clips with the same folds and the same recipe."""
    from dataset import EmbeddingCache, default_cache_dir, negative_files, scan_training_folder
    from backend import embedding_yamnet
    from yamnet_classifier import resolve_yamnet_handle

    files_by_class, notes = scan_training_folder(root, background_elsewhere=bool(negative_dirs))
    negatives, more = negative_files(negative_dirs)
    for note in notes + more:
        warn(f"note: {note}")
    yamnet = embedding_yamnet(resolve_yamnet_handle(yamnet_option), warn=warn)
    cache = EmbeddingCache(cache_dir or default_cache_dir(), yamnet.identity) if use_cache else None
    data, facts = gather(root, files_by_class, negatives, config, yamnet, cache, warn=warn, progress=progress)
    config = for_data(config, data)
    return Prepared(data, facts, config, make_recipe(config, data.class_names, yamnet, cache), yamnet)


def gather(root, files_by_class: dict[str, list[Path]], negatives: list[Path], config: TrainingConfig, yamnet, cache,
           warn=print, progress: bool = True) -> tuple[TrainingSet, dict]:
    """The training set: clips embedded as the config says (from the cache where it can), background
    recordings loaded, folds assigned. Unreadable files are reported through `warn` and skipped; a class
    left without any is a DatasetError naming its folder (under `root`). Returns (set, facts for the
    report: embedding counts, recordings, notes)."""
    from audio_util import AudioError, iter_loaded_audio
    from dataset import check_classes, embed_files

    clip_files, recording_paths = split_background(files_by_class, negatives)
    paths = [p for files in clip_files.values() for p in files]
    result = embed_files(paths, yamnet, cache, progress=progress, views=config.views, level_dbfs=config.level_dbfs)
    for _path, reason in result.failed:
        warn(f"skipped {reason}")
    recordings, skipped = [], [(str(p), reason) for p, reason in result.failed]
    for path, waveform in iter_loaded_audio(recording_paths):
        if isinstance(waveform, AudioError):
            warn(f"skipped background recording {waveform}")
            skipped.append((str(path), str(waveform)))
        elif len(waveform):
            recordings.append((path, waveform))
    usable = {name: [p for p in files if p in result.embeddings] for name, files in files_by_class.items()}
    if recordings:  # a background/ of recordings only is a background class too
        usable[BACKGROUND_CLASS] = usable.get(BACKGROUND_CLASS, []) + [p for p, _w in recordings]
    check_classes(root, usable, background_elsewhere=bool(recordings))
    class_names = class_order([name for name, files in usable.items() if files])
    clips, waveforms = [], {}
    ordered = [(p, class_names.index(name)) for name in class_names for p in usable[name] if p in result.embeddings]
    loaded = dict(iter_loaded_audio([p for p, _label in ordered]))
    augmented, facts = None, {}
    if config.augment:
        copies = embed_files([p for p, _ in ordered], yamnet, cache, progress=progress, level_dbfs=config.level_dbfs,
                             augment_copies=config.augment, seed=config.seed)
        augmented = copies.embeddings
        facts["augmented"] = {"computed": copies.computed, "from_cache": copies.from_cache}
    for index, (path, label) in enumerate(ordered):
        clips.append(Clip(path, label, result.embeddings[path],
                          augmented=augmented.get(path) if augmented is not None else None))
        waveforms[index] = loaded[path]
    data = TrainingSet(class_names, clips, clip_waveforms=waveforms)
    data.streams = background_streams(data, [(p.name, w) for p, w in recordings])
    notes = assign_folds(data, config.folds, config.seed, config.group_by)
    facts |= {"computed": result.computed, "from_cache": result.from_cache, "failed": len(result.failed), "skipped": skipped,
             "recordings": [str(p) for p, _w in recordings], "notes": notes,
             "files_per_class": {name: sum(c.label == i for c in clips) for i, name in enumerate(class_names)}}
    return data, facts
