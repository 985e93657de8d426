"""The ``sklearn-scan`` command: cluster a folder of images, or assign new images with a saved model.

    sklearn-scan cluster PHOTOS/ --n-clusters 20 --out RESULT/
    sklearn-scan predict RESULT/model.pt NEW_PHOTOS/ --out new.csv
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from ._config import (
    PRETEXT_ENCODER_SCAN_IMAGES,
    SCAN_EPOCHS_RANGE,
    SCAN_IMAGES,
    auto_epochs,
    auto_pretext_epochs,
)

EPILOG = """\
cluster writes into --out:
  assignments.csv        path, cluster, confidence (top probability) of every image
  model.pt               the fitted model (SCANClusterer.load, or `sklearn-scan predict`)
  report.html            cluster sizes, most and least confident images per cluster,
                         and with --labels-from-folders ACC/NMI/ARI and a confusion matrix
  *.png                  the report's pictures
  skipped.csv            files that could not be read (only when there are any)

Images: every file with an image extension under the folder (recursively),
decoded to RGB (to one channel when most files are grayscale), shorter side
scaled to --image-size and centre-cropped.
Ctrl-C during training ends the current stage and keeps what was learned.

Two defaults differ from SCANClusterer's: --random-state is 0 (the estimator's
random_state is None), so that the same command gives the same clusters on a
CPU, and --jobs is -1 (the estimator's n_jobs is None: one thread), so that
decoding a folder uses every core.
"""


def _parser():
    parser = argparse.ArgumentParser(
        prog="sklearn-scan", description="Group images into clusters without labels (SCAN).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = commands.add_parser(
        "cluster", help="fit a model on a folder of images and write assignments, model and report",
        description="Fit SCAN on the images under IMAGES and write assignments.csv, model.pt and report.html.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cluster.add_argument("images", help="folder of images (searched recursively), or one image list file (.txt, one path per line)")
    cluster.add_argument("--n-clusters", type=int, required=True, help="number of clusters")
    cluster.add_argument("--out", required=True, help="output folder (created if missing)")
    cluster.add_argument("--image-size", type=int, default=None,
                         help="side of the square the images are resized to (default: 64; 224 with a pretrained backbone)")
    cluster.add_argument("--backbone", default="auto",
                         help="'auto', 'efficientnet-lite0', 'convnet', 'resnet18', or a pretrained model: "
                              "'torchvision:resnet50', 'timm:<name>', 'hub:<owner/repo>:<name>'. auto: colour photos "
                              "(median shorter side >= 32 px) get efficientnet-lite0's ImageNet features when "
                              "sklearn-scan[photos] is installed; other images a small CNN trained from scratch "
                              "with SimCLR, which --backbone convnet asks for on photos too (default: auto)")
    cluster.add_argument("--backbone-weights", default=None,
                         help="weights of a pretrained backbone: a torchvision weights name or a local .pth file "
                              "(default: the library's pretrained default, from its cache)")
    cluster.add_argument("--pretext", choices=("auto", "simclr", "none"), default="auto",
                         help="self-supervised pretext task (default: auto, which is none for a pretrained backbone "
                              "and simclr otherwise)")
    cluster.add_argument("--fine-tune", action="store_true",
                         help="train the whole network in the clustering and self-labeling stages, "
                              "not only the clustering heads")
    cluster.add_argument("--pretext-epochs", type=int, default=None,
                         help="SimCLR epochs (default: auto, from the number of images: "
                              f"{auto_pretext_epochs('auto', 10_000)} for 10,000, "
                              f"{auto_pretext_epochs('auto', 1_000)} for 1,000)")
    cluster.add_argument("--scan-epochs", type=int, default=None,
                         help="clustering-step epochs (default: auto, from the number of images: for 10,000, "
                              f"{auto_epochs('auto', 10_000, PRETEXT_ENCODER_SCAN_IMAGES, SCAN_EPOCHS_RANGE)} for "
                              "heads on an encoder SimCLR trained, "
                              f"{auto_epochs('auto', 10_000, SCAN_IMAGES, SCAN_EPOCHS_RANGE)} on a pretrained backbone "
                              "or with --fine-tune)")
    cluster.add_argument("--selflabel-epochs", type=int, default=None,
                         help="self-labeling epochs (default: auto, which is 0: it lost points or moved ACC by under "
                              "0.01 wherever measured; a frozen pretrained backbone then embeds the collection batch "
                              "by batch and never holds it in memory)")
    cluster.add_argument("--n-heads", type=int, default=50, help="clustering heads trained at once (default: 50)")
    cluster.add_argument("--n-neighbors", type=int, default=20, help="neighbours mined per image (default: 20)")
    cluster.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
    cluster.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', 'mps' (default: auto)")
    cluster.add_argument("--random-state", type=int, default=0,
                         help="seed, for repeatable CPU runs (default: 0; the estimator's default is None)")
    cluster.add_argument("--labels-from-folders", action="store_true",
                         help="treat each image's top-level subfolder as its true class, and score the clusters "
                              "against it in the report (labels are never used for fitting)")
    cluster.add_argument("--jobs", type=int, default=-1,
                         help="threads decoding images (default: -1, all cores; the estimator's default is one)")
    cluster.add_argument("--checkpoint-dir", default=None,
                         help="folder where the fit saves its state as it goes; run the same command again to "
                              "resume a fit that was stopped or killed")
    cluster.add_argument("--quiet", action="store_true", help="no progress bars")

    predict = commands.add_parser(
        "predict", help="assign images to the clusters of a saved model",
        description="Assign the images under IMAGES to the clusters of MODEL (a model.pt from `cluster`).",
    )
    predict.add_argument("model", help="model.pt written by `sklearn-scan cluster` or SCANClusterer.save")
    predict.add_argument("images", help="folder of images (searched recursively), or one image file")
    predict.add_argument("--out", help="CSV file to write (default: print to standard output)")
    predict.add_argument("--jobs", type=int, default=-1, help="threads decoding images (default: all cores)")
    predict.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _image_source(argument):
    """A folder path, or the paths listed in a text file."""
    path = Path(argument)
    if not path.exists():
        raise SystemExit(f"sklearn-scan: {path} does not exist.")
    if path.is_file() and path.suffix.lower() == ".txt":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return str(path)


def _folder_labels(names, root):
    """The top-level subfolder of every path under ``root`` ('.' for files directly in it)."""
    labels = []
    for name in names:
        parts = Path(name).resolve().relative_to(Path(root).resolve()).parts
        labels.append(parts[0] if len(parts) > 1 else ".")
    return np.array(labels)


def _write_assignments(path_or_stream, names, labels, confidence):
    close = False
    if isinstance(path_or_stream, (str, Path)):
        path_or_stream, close = open(path_or_stream, "w", newline="", encoding="utf-8"), True
    try:
        writer = csv.writer(path_or_stream)
        writer.writerow(["path", "cluster", "confidence"])
        for name, label, value in zip(names, labels, confidence):
            writer.writerow([name, int(label), "" if np.isnan(value) else f"{value:.4f}"])
    finally:
        if close:
            path_or_stream.close()


def _auto(value):
    """An optional number of epochs as the estimator takes it: None means "auto"."""
    return "auto" if value is None else value


def _cluster(args):
    from . import SCANClusterer
    from ._distributed import launched_processes
    from .report import write_report

    source = _image_source(args.images)
    if args.labels_from_folders and not (isinstance(source, str) and Path(source).is_dir()):
        raise SystemExit("sklearn-scan: --labels-from-folders needs IMAGES to be a folder with one subfolder per class.")
    out = Path(args.out)
    main_process = launched_processes().is_main  # under torchrun, every process fits and the first writes
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
    model = SCANClusterer(
        n_clusters=args.n_clusters, backbone=args.backbone, backbone_weights=args.backbone_weights,
        pretext=args.pretext, freeze_backbone=not args.fine_tune,
        n_neighbors=args.n_neighbors, n_heads=args.n_heads,
        pretext_epochs=_auto(args.pretext_epochs), scan_epochs=_auto(args.scan_epochs),
        selflabel_epochs=_auto(args.selflabel_epochs),
        batch_size=args.batch_size, device=args.device, random_state=args.random_state, image_size=args.image_size,
        n_jobs=args.jobs, checkpoint_dir=args.checkpoint_dir, verbose=0 if args.quiet else 1,
    )
    try:
        model.fit(source)
    except (ValueError, RuntimeError, ImportError, OSError) as error:
        raise SystemExit(f"sklearn-scan: {error}") from error
    if not main_process:
        return
    names = model.image_names_
    confidence = model.confidence_
    _write_assignments(out / "assignments.csv", names, model.labels_, confidence)
    if model.skipped_images_:
        with open(out / "skipped.csv", "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["path", "reason"])
            writer.writerows(model.skipped_images_)
    model.save(out / "model.pt")
    y_true = _folder_labels(names, source) if args.labels_from_folders else None
    details = {"images": args.images, "clusters": args.n_clusters, "image size": model.input_shape_[1],
               "backbone": model.backbone_name_, "device": model.device_,
               "skipped (unreadable) files": len(model.skipped_images_)}
    report = write_report(out, names, model.labels_, confidence, y_true=y_true, details=details,
                          stage_labels=model.stage_labels_,
                          title=f"sklearn-scan: {Path(args.images).name}")
    print(f"Clustered {len(names):,} images into {len(np.unique(model.labels_))} clusters "
          f"({len(model.skipped_images_)} unreadable files skipped).")
    print(f"Wrote {out / 'assignments.csv'}, {out / 'model.pt'} and {report}")


def _predict(args):
    from . import SCANClusterer

    try:
        model = SCANClusterer.load(args.model)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"sklearn-scan: cannot load {args.model}: {error}") from error
    model.set_params(n_jobs=args.jobs, verbose=0 if args.quiet else 1)
    source = _image_source(args.images)
    names = model.image_names(source)
    probabilities = model.predict_proba(source)
    labels = np.where(np.isnan(probabilities).any(axis=1), -1, np.nan_to_num(probabilities).argmax(axis=1))
    confidence = probabilities.max(axis=1)
    if args.out:
        _write_assignments(args.out, names, labels, confidence)
        print(f"Assigned {len(names):,} images; wrote {args.out}", file=sys.stderr)
    else:
        _write_assignments(sys.stdout, names, labels, confidence)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "cluster":
        _cluster(args)
    else:
        _predict(args)


if __name__ == "__main__":
    main()
