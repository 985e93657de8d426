import csv
import warnings

import pytest
from PIL import Image

from sklearn_scan import SCANClusterer
from sklearn_scan.cli import main

from .test_images import two_kinds

FAST = ["--pretext-epochs", "1", "--scan-epochs", "50", "--selflabel-epochs", "1", "--n-heads", "2",
        "--n-neighbors", "5", "--batch-size", "32", "--image-size", "8", "--quiet", "--jobs", "1"]


@pytest.fixture
def photos(tmp_path):
    """Folders 'top' and 'bottom' of PNGs with sizes and modes that vary, and one broken file."""
    folder = tmp_path / "photos"
    for index, pixels in enumerate(two_kinds(seed=3)):
        sub = folder / ("top" if index < 20 else "bottom")
        sub.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels).resize((8 + index % 3 * 8, 8 + index % 2 * 8), Image.Resampling.NEAREST)
        image = image.convert("L") if index % 7 == 0 else image
        image.save(sub / f"{index:03d}.png")
    (folder / "bottom" / "broken.png").write_bytes(b"not a png")
    return folder


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_cluster_then_predict(photos, tmp_path, capsys):
    out = tmp_path / "result"
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        main(["cluster", str(photos), "--n-clusters", "2", "--out", str(out), "--labels-from-folders", *FAST])
    for name in ("assignments.csv", "model.pt", "report.html", "prototypes.png", "least_confident.png",
                 "cluster_sizes.png", "confusion_matrix.png", "skipped.csv"):
        assert (out / name).is_file(), name
    rows = read_csv(out / "assignments.csv")
    assert len(rows) == 40 and set(rows[0]) == {"path", "cluster", "confidence"}
    assert all(0.0 <= float(row["confidence"]) <= 1.0 for row in rows)
    assert read_csv(out / "skipped.csv")[0]["path"].endswith("broken.png")
    report = (out / "report.html").read_text()
    assert "ACC" in report and report.count("data:image/png;base64,") == 4
    assert "What each stage changed" in report and "k-means on the embedding" in report
    assert "Clustered 40 images into" in capsys.readouterr().out

    # predict with the saved model: same clusters for the same files, -1 for the broken one.
    model = SCANClusterer.load(out / "model.pt")
    predictions = tmp_path / "predictions.csv"
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        main(["predict", str(out / "model.pt"), str(photos), "--out", str(predictions), "--quiet"])
    predicted = {row["path"]: row for row in read_csv(predictions)}
    assert len(predicted) == 41
    assert predicted[str(photos / "bottom" / "broken.png")]["cluster"] == "-1"
    assert all(predicted[row["path"]]["cluster"] == row["cluster"] for row in rows)
    assert model.n_clusters == 2

    # Without --out, the assignments go to standard output.
    main(["predict", str(out / "model.pt"), str(photos / "top" / "001.png"), "--quiet"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "path,cluster,confidence" and printed[1].startswith(str(photos / "top" / "001.png"))


def test_cluster_with_a_checkpoint_dir_resumes_to_the_same_assignments(photos, tmp_path):
    state = tmp_path / "state"
    runs = []
    for attempt in range(2):
        out = tmp_path / f"result{attempt}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main(["cluster", str(photos), "--n-clusters", "2", "--out", str(out), "--checkpoint-dir", str(state), *FAST])
        runs.append(read_csv(out / "assignments.csv"))
    assert runs[0] == runs[1]
    assert {"fingerprint.json", "pretext.pt", "embedding.pt", "scan.pt", "images.u8"} <= {
        path.name for path in state.iterdir()}
    # Other parameters with the same folder: a one-line error that names the difference.
    with pytest.raises(SystemExit, match="n_clusters was 2 there and is 3 here"):
        main(["cluster", str(photos), "--n-clusters", "3", "--out", str(tmp_path / "other"),
              "--checkpoint-dir", str(state), *FAST])


def test_errors_are_one_line_messages(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["cluster", str(tmp_path / "missing"), "--n-clusters", "2", "--out", str(tmp_path / "o"), *FAST])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="No image files"):
        main(["cluster", str(tmp_path / "empty"), "--n-clusters", "2", "--out", str(tmp_path / "o"), *FAST])
    listing = tmp_path / "files.txt"
    listing.write_text("a.png\n")
    with pytest.raises(SystemExit, match="--labels-from-folders needs"):
        main(["cluster", str(listing), "--n-clusters", "2", "--out", str(tmp_path / "o"), "--labels-from-folders", *FAST])
    (tmp_path / "model.pt").write_bytes(b"junk")
    with pytest.raises(SystemExit, match="cannot load"):
        main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "empty")])


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--n-clusters", "--out", "--image-size", "--labels-from-folders", "assignments.csv", "report.html"):
        assert option in text


def test_cluster_with_a_pretrained_backbone_file(photos, tmp_path):
    import torch
    import torchvision

    weights = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), weights)
    out = tmp_path / "pretrained"
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        main(["cluster", str(photos), "--n-clusters", "2", "--out", str(out), "--backbone", "torchvision:mobilenet_v3_small",
              "--backbone-weights", str(weights), "--scan-epochs", "10", "--n-heads", "2",
              "--n-neighbors", "5", "--image-size", "32", "--quiet", "--jobs", "1"])
    model = SCANClusterer.load(out / "model.pt")
    assert model.backbone_name_ == "torchvision:mobilenet_v3_small"
    # Pretrained features are used as they are: no pretext, and (frozen) no self-labeling unless asked for.
    assert not [entry for entry in model.history_ if entry["stage"] in ("pretext", "selflabel")]
    assert "self-labeling" not in model.stage_seconds_
    assert len(read_csv(out / "assignments.csv")) == 40
    with pytest.raises(SystemExit, match="is not a file"):
        main(["cluster", str(photos), "--n-clusters", "2", "--out", str(out), "--backbone", "torchvision:mobilenet_v3_small",
              "--backbone-weights", str(tmp_path / "missing.pth"), "--quiet"])


def test_help_states_the_defaults_the_rules_give(capsys):
    from sklearn_scan._config import auto_pretext_epochs

    with pytest.raises(SystemExit):
        main(["cluster", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{auto_pretext_epochs('auto', 10_000)} for 10,000" in text
    assert "one channel when most files are grayscale" in text
    assert "--random-state is 0" in text and "--jobs is -1" in text
