"""Checkpoints of a fit: what each stage has learnt, written atomically, so a killed fit resumes.

A fit with ``checkpoint_dir`` keeps one file per stage in that directory::

    fingerprint.json   the parameters and data the checkpoints belong to
    pretext.pt         SimCLR's training state (network, optimiser, schedule, random generators, history)
    embedding.pt       the embedding the neighbours were mined in, and the neighbours
    scan.pt            the clustering step's training state
    selflabel.pt       self-labeling's training state, with the guard's best weights

A training stage writes its file every ``CHECKPOINT_SECONDS`` of training (after the epoch that
passes them) and after its last epoch. Each write goes to a temporary file that is flushed and
synced, the previous file is kept as ``<stage>.previous.pt``, and the new one takes its name by
an atomic rename: a crash at any moment leaves a whole checkpoint. A stage that resumes starts
after the epoch its file holds, with every random generator as it was, so on a CPU the resumed
fit ends with the labels of an uninterrupted one. A stage that writes invalidates the files of
the stages after it, which were computed from an earlier state of it.

Files hold only tensors and plain Python values and load with ``torch.load(weights_only=True)``.
Under torchrun every process resumes from the same files; the main process writes them, with
each process's random generators.
"""

import json
import os
import pickle
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ._backbones import resolve_backbone_name
from ._distributed import Processes, from_main_process, gather_lists
from ._plain_values import to_plain
from ._precision import mixed_precision, uses_bfloat16

#: A training stage writes its checkpoint after the first epoch that ends this many seconds after
#: its last write, and after its last epoch. On 2 cores a pretext checkpoint of the small CNN took 0.011 s
#: (2 MiB), the embedding of 1,000 photos through EfficientNet-Lite0 0.033 s (20 MiB): well under 1% of
#: a fit at one write per 30 s (docs/checkpoint-cost.md, benchmarks/checkpoint_cost.py).
CHECKPOINT_SECONDS = 30.0

#: The stages that write checkpoints, in the order they run.
STAGES = ("pretext", "embedding", "scan", "selflabel")

FINGERPRINT_FILE = "fingerprint.json"

#: Version of what a checkpoint directory holds; checkpoints of another version are refused.
CHECKPOINT_FORMAT = 2

#: Parameters with no effect on what a fit learns: they may differ when a fit resumes.
UNFINGERPRINTED_PARAMETERS = ("verbose", "checkpoint_dir", "memory", "n_jobs", "device")


class CheckpointDirectory:
    """The checkpoints of one fit in ``directory``, tied to ``fingerprint`` (a dict of plain values).

    :meth:`open` creates the directory, or checks that the checkpoints already
    there belong to the same parameters and data, and raises a ``ValueError``
    naming every difference otherwise. ``processes``: under torchrun, only the
    main process writes.
    """

    def __init__(self, directory, fingerprint, processes=Processes(), interval=None):
        self.directory = Path(directory)
        self.fingerprint = to_plain(fingerprint)
        self.processes = processes
        self.interval = CHECKPOINT_SECONDS if interval is None else interval

    def open(self):
        path = self.directory / FINGERPRINT_FILE
        found = None
        if self.processes.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                _write_atomically(path, lambda file: file.write(json.dumps(self.fingerprint, indent=1).encode()))
            try:
                found = json.loads(path.read_text())
            except ValueError as exc:
                raise ValueError(f"{path} cannot be read ({exc}); delete {self.directory} to start the fit over.") from exc
        found = from_main_process(found, self.processes)
        differences = _differences(found, json.loads(json.dumps(self.fingerprint)))
        if differences:
            raise ValueError(
                f"checkpoint_dir={str(self.directory)!r} holds the checkpoints of another fit: "
                + "; ".join(differences)
                + ". Pass another checkpoint_dir, or delete this one to start the fit over."
            )
        return self

    def path(self, stage, previous=False):
        return self.directory / (f"{stage}.previous.pt" if previous else f"{stage}.pt")

    def load(self, stage):
        """The state ``stage`` last saved, or None. An unreadable file (truncated, corrupted) is reported
        with a warning and its previous version is used; when none can be read, a ValueError says which."""
        problems = []
        for previous in (False, True):
            path = self.path(stage, previous)
            if not path.exists():
                continue
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
                problems.append(f"{path} ({type(exc).__name__}: {exc})")
                warnings.warn(f"The checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                              + ("trying the one before it." if not previous else "no earlier one is left."),
                              RuntimeWarning)
        if problems:
            raise ValueError(
                f"No readable checkpoint of the {stage} stage is left: {'; '.join(problems)}. Delete "
                f"{self.path(stage)} (and {self.path(stage, True).name}) to run that stage again from its start."
            )
        return None

    def save(self, stage, state):
        """Write ``state`` (tensors and plain values) as ``stage``'s checkpoint; every process calls it.

        ``state["per_process"]``, if present, is this process's part: the main
        process writes the list of every process's parts. Later stages'
        checkpoints are removed. A failed write (a full disk) raises an
        ``OSError`` and leaves the last good checkpoint as it was.
        """
        if "per_process" in state:
            state = {**state, "per_process": gather_lists([state["per_process"]], self.processes)}
        if not self.processes.is_main:
            return
        path = self.path(stage)
        try:
            _write_atomically(path, lambda file: torch.save(to_plain(state), file), keep_previous=True)
        except OSError as exc:
            raise OSError(
                exc.errno, f"Could not write the checkpoint {path} ({exc.strerror or exc}). The last good "
                f"checkpoint is intact; free space in {self.directory} (or pass another checkpoint_dir) and fit "
                "again to resume from it."
            ) from exc
        for later in STAGES[STAGES.index(stage) + 1:]:
            for previous in (False, True):
                self.path(later, previous).unlink(missing_ok=True)


def _write_atomically(path, write, keep_previous=False):
    """Write a file by ``write(binary file)`` to a temporary name, sync it, and rename it to ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name.removesuffix(".pt") + ".previous.pt"))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _differences(found, expected, prefix=""):
    """Readable differences between two fingerprints (nested dicts of plain values)."""
    differences = []
    for key in sorted(set(found) | set(expected)):
        if key not in found or key not in expected:
            differences.append(f"{prefix}{key} is {'missing' if key not in found else 'new'} in this fit")
        elif isinstance(found[key], dict) and isinstance(expected[key], dict):
            differences += _differences(found[key], expected[key], f"{prefix}{key}.")
        elif found[key] != expected[key]:
            differences.append(f"{prefix}{key} was {found[key]!r} there and is {expected[key]!r} here")
    return differences


class StateOf:
    """Something with ``state_dict``/``load_state_dict`` made of two functions."""

    def __init__(self, get, put):
        self.state_dict, self.load_state_dict = get, put


class GeneratorState:
    """A ``torch.Generator`` (or torch's global generator, for None) as something with a state_dict."""

    def __init__(self, generator=None):
        self.generator = generator

    def state_dict(self):
        return {"state": self.generator.get_state() if self.generator is not None else torch.get_rng_state()}

    def load_state_dict(self, state):
        if self.generator is not None:
            self.generator.set_state(state["state"])
        else:
            torch.set_rng_state(state["state"])


class StageCheckpoint:
    """The training state of one stage, saved after epochs and restored before the first.

    trained: name -> object with ``state_dict``/``load_state_dict`` (modules,
    optimisers, schedules), the same in every process. generators: the
    process's own random generators (torch's global one included).
    ``extra``: an optional object whose ``state_dict``/``load_state_dict``
    carry what else the stage keeps between epochs (the guard's best weights).
    :func:`~sklearn_scan._trainer.run_epochs` calls :meth:`restore` and :meth:`after_epoch`.
    """

    def __init__(self, directory, stage, trained, generators, extra=None):
        self.directory, self.stage = directory, stage
        self.trained = dict(trained)
        self.generators = [GeneratorState(None)] + [GeneratorState(generator) for generator in generators]
        self.extra = extra
        self.history_start = 0
        self.last_write = time.monotonic()

    def restore(self, history):
        """Load the saved state and append its history entries to ``history``.

        Returns the first epoch to run: 0 without a checkpoint, None when the saved stage had stopped.
        """
        state = self.directory.load(self.stage)
        if state is None:
            self.history_start = len(history)
            return 0
        for name, item in self.trained.items():
            item.load_state_dict(state["trained"][name])
        parts = state["per_process"]
        if len(parts) != self.directory.processes.world_size:
            raise ValueError(f"The {self.stage} checkpoint was written by {len(parts)} processes; this fit has "
                             f"{self.directory.processes.world_size}.")
        for generator, generator_state in zip(self.generators, parts[self.directory.processes.rank]):
            generator.load_state_dict(generator_state)
        if self.extra is not None:
            self.extra.load_state_dict(state["extra"])
        self.history_start = len(history)
        history.extend(state["history"])
        self.last_write = time.monotonic()
        return None if state["stopped"] else state["epoch"] + 1

    def after_epoch(self, epoch, last, history, stopped=False):
        """Save after ``epoch`` when it is the last one or the interval has passed (decided by the main process)."""
        due = last or time.monotonic() - self.last_write >= self.directory.interval
        if not from_main_process(due, self.directory.processes):
            return
        self.directory.save(self.stage, {
            "epoch": epoch,
            "stopped": stopped,
            "trained": {name: _unwrapped_state(item) for name, item in self.trained.items()},
            "per_process": [generator.state_dict() for generator in self.generators],
            "extra": None if self.extra is None else self.extra.state_dict(),
            "history": history[self.history_start:],
        })
        self.last_write = time.monotonic()


def stage_checkpoint(directory, stage, saved, generators, extra=None):
    """A :class:`StageCheckpoint` of ``stage`` in ``directory`` (a :class:`CheckpointDirectory`), or None without one."""
    return None if directory is None else StageCheckpoint(directory, stage, saved, generators, extra)


def _unwrapped_state(item):
    """``item.state_dict()``, of the module inside a DistributedDataParallel wrapper."""
    return getattr(item, "module", item).state_dict()


def data_fingerprint(inputs=None, names=None, n_items=None):
    """What identifies the data of a fit: a digest of the array, or of the files' names, sizes and times."""
    import joblib

    if inputs is not None:
        array = inputs.numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
        return {"samples": int(array.shape[0]), "sample shape": list(array.shape[1:]), "dtype": str(array.dtype),
                "digest": joblib.hash(array)}
    files = []
    for name in names:
        if isinstance(name, (str, os.PathLike)):
            try:
                status = os.stat(name)
                files.append((str(name), status.st_size, status.st_mtime_ns))
            except OSError:
                files.append((str(name), None, None))
        else:
            files.append(name)
    return {"samples": n_items, "digest": joblib.hash(files)}


def fingerprint_value(value):
    """A parameter as a plain value for a checkpoint's fingerprint: modules and callables by a digest."""
    import joblib

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {str(key): fingerprint_value(item) for key, item in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.random.RandomState):
        return "a RandomState"
    try:
        return f"{type(value).__name__} {joblib.hash(value)}"
    except Exception:  # an object joblib cannot pickle: its type alone
        return type(value).__name__


def open_checkpoints(directory, params, source, config):
    """The :class:`CheckpointDirectory` of a fit with the estimator's ``params`` (a dict) on ``source``.

    The fingerprint holds the parameters that change what the fit learns, the data, the number of
    processes, and what "auto" resolved to on this machine: the backbone (a GPU picks another than a
    CPU) and the precision, so a checkpoint that cannot resume here is refused with the difference named.
    """
    parameters = {name: fingerprint_value(value) for name, value in params.items()
                  if name not in UNFINGERPRINTED_PARAMETERS}
    if source.inputs is None:  # an image collection: its files
        data = data_fingerprint(names=source.names, n_items=source.n_samples)
    else:
        data = data_fingerprint(inputs=source.inputs)
    backbone = config.backbone
    if isinstance(backbone, str):
        backbone = resolve_backbone_name(backbone, source.input_shape, config.device)
    with mixed_precision(config.mixed_precision):
        precision = "bfloat16" if uses_bfloat16(config.device) else "float32"
    fingerprint = {"format": CHECKPOINT_FORMAT, "parameters": parameters, "data": data,
                   "processes": config.processes.world_size,
                   "resolved": {"backbone": fingerprint_value(backbone), "precision": precision}}
    return CheckpointDirectory(directory, fingerprint, config.processes).open()
