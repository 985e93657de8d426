"""Checkpoints: a fit killed with SIGKILL resumes to the labels of an uninterrupted fit; bad checkpoints
and full disks lose no good work; checkpoints of other parameters or data are refused."""

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sklearn_scan._checkpoints as checkpoints
import sklearn_scan._precision as _precision
from sklearn_scan import SCANClusterer
from sklearn_scan._checkpoints import CheckpointDirectory

SCRIPT = Path(__file__).with_name("checkpoint_fit.py")
sys.path.insert(0, str(SCRIPT.parent))
from checkpoint_fit import PARAMETERS, digits  # noqa: E402


@pytest.fixture(scope="module")
def uninterrupted_labels():
    return SCANClusterer(**PARAMETERS).fit(digits()).labels_


def run_fit(directory, labels, *kill_after):
    command = [sys.executable, str(SCRIPT), str(directory), str(labels)]
    if kill_after:
        command += ["--kill-after", *map(str, kill_after)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("stage, epoch", [("pretext", 1), ("scan", 1), ("selflabel", 0)])
def test_a_fit_killed_mid_stage_resumes_to_the_uninterrupted_labels(tmp_path, uninterrupted_labels, stage, epoch):
    killed = run_fit(tmp_path / "checkpoints", tmp_path / "labels.npy", stage, epoch)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "checkpoints" / f"{stage}.pt").exists()
    assert not (tmp_path / "labels.npy").exists()
    resumed = run_fit(tmp_path / "checkpoints", tmp_path / "labels.npy")
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), uninterrupted_labels)


def test_a_finished_fit_resumes_at_once_to_the_same_model(tmp_path, uninterrupted_labels, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_SECONDS", 0.0)
    first = SCANClusterer(**PARAMETERS, checkpoint_dir=tmp_path).fit(digits())
    again = SCANClusterer(**PARAMETERS, checkpoint_dir=tmp_path).fit(digits())
    np.testing.assert_array_equal(first.labels_, uninterrupted_labels)
    np.testing.assert_array_equal(again.labels_, uninterrupted_labels)
    assert again.history_ == first.history_
    assert again.stage_seconds_["pretext"] < first.stage_seconds_["pretext"] / 5


def test_a_corrupted_checkpoint_is_reported_and_the_previous_one_is_used(tmp_path, uninterrupted_labels):
    killed = run_fit(tmp_path, tmp_path / "labels.npy", "pretext", 2)
    assert killed.returncode == -9
    latest = tmp_path / "pretext.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    with pytest.warns(RuntimeWarning, match="pretext.pt cannot be read"):
        model = SCANClusterer(**PARAMETERS, checkpoint_dir=tmp_path).fit(digits())
    np.testing.assert_array_equal(model.labels_, uninterrupted_labels)


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    directory = CheckpointDirectory(tmp_path, {"a": 1}).open()
    (tmp_path / "scan.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="No readable checkpoint of the scan stage"):
        directory.load("scan")


def test_a_full_disk_raises_a_clear_oserror_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    directory = CheckpointDirectory(tmp_path, {"a": 1}).open()
    directory.save("scan", {"epoch": 3, "weights": torch.arange(4.0)})

    def no_space(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match="Could not write the checkpoint .*scan.pt.*last good checkpoint is intact") as raised:
        directory.save("scan", {"epoch": 4, "weights": torch.zeros(4)})
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert directory.load("scan")["epoch"] == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fingerprint.json", "scan.pt"]  # no temporary left


def test_checkpoints_of_other_parameters_or_data_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_SECONDS", 1e9)
    X = digits()[:100]
    quick = dict(n_clusters=3, random_state=0, pretext_epochs=1, scan_epochs=1, n_heads=2)
    SCANClusterer(**quick, checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="n_clusters was 3 there and is 4 here"):
        SCANClusterer(**{**quick, "n_clusters": 4}, checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="data.digest was"):
        SCANClusterer(**quick, checkpoint_dir=tmp_path).fit(X[::-1])
    # What does not change the result may change: the device, the pretext cache.
    SCANClusterer(**quick, checkpoint_dir=tmp_path, device="cpu", memory=str(tmp_path / "cache")).fit(X)


def test_later_stages_are_dropped_when_an_earlier_one_saves_again(tmp_path):
    directory = CheckpointDirectory(tmp_path, {"a": 1}).open()
    for stage in checkpoints.STAGES:
        directory.save(stage, {"epoch": 0})
    directory.save("embedding", {"epoch": 1})
    assert sorted(path.name for path in tmp_path.glob("*.pt")) == [
        "embedding.previous.pt", "embedding.pt", "pretext.pt"]


def test_checkpoints_load_with_weights_only(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_SECONDS", 0.0)
    SCANClusterer(n_clusters=3, random_state=0, pretext_epochs=2, scan_epochs=2, selflabel_epochs=1, n_heads=2,
                  checkpoint_dir=tmp_path).fit(digits()[:100])
    for path in tmp_path.glob("*.pt"):
        torch.load(path, weights_only=True)


def test_an_unreadable_fingerprint_is_a_clear_error(tmp_path):
    (tmp_path / "fingerprint.json").write_text("{not json")
    with pytest.raises(ValueError, match="fingerprint.json cannot be read"):
        CheckpointDirectory(tmp_path, {"a": 1}).open()


@pytest.mark.parametrize("resolved, patched, here", [
    ("precision", "uses_bfloat16", lambda device: not _precision.uses_bfloat16(device)),
    ("backbone", "resolve_backbone_name", lambda backbone, shape, device: "resnet18"),
])
def test_a_checkpoint_of_another_resolved_backbone_or_precision_is_refused(tmp_path, monkeypatch, resolved, patched,
                                                                           here):
    """"auto" resolves per machine (resnet18 on CUDA, bfloat16 where native): another machine's checkpoint is named."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_SECONDS", 1e9)
    X = digits()[:100]
    quick = dict(n_clusters=3, random_state=0, pretext_epochs=1, scan_epochs=1, n_heads=2, checkpoint_dir=tmp_path)
    SCANClusterer(**quick).fit(X)
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(checkpoints, patched, here)
        with pytest.raises(ValueError, match=f"resolved.{resolved} was"):
            SCANClusterer(**quick).fit(X)
