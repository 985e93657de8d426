"""A small digits fit with checkpoints, run by tests/test_checkpoints.py in a subprocess.

    python tests/checkpoint_fit.py CHECKPOINT_DIR LABELS.npy [--kill-after STAGE EPOCH]

Checkpoints are written after every epoch. With --kill-after, the process sends itself SIGKILL
right after the checkpoint of that stage's epoch is written, as a crash would stop it.
"""

import argparse
import os
import signal

import numpy as np
from sklearn.datasets import load_digits

import sklearn_scan._checkpoints as checkpoints
from sklearn_scan import SCANClusterer

PARAMETERS = dict(n_clusters=10, random_state=0, pretext_epochs=4, scan_epochs=4, selflabel_epochs=2, n_heads=10)


def digits():
    return load_digits().images[:400] / 16.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint_dir")
    parser.add_argument("labels")
    parser.add_argument("--kill-after", nargs=2)
    args = parser.parse_args()
    checkpoints.CHECKPOINT_SECONDS = 0.0
    if args.kill_after:
        stage, epoch = args.kill_after[0], int(args.kill_after[1])
        after_epoch = checkpoints.StageCheckpoint.after_epoch

        def after_epoch_then_die(self, this_epoch, *rest, **options):
            after_epoch(self, this_epoch, *rest, **options)
            if self.stage == stage and this_epoch == epoch:
                os.kill(os.getpid(), signal.SIGKILL)

        checkpoints.StageCheckpoint.after_epoch = after_epoch_then_die
    model = SCANClusterer(**PARAMETERS, checkpoint_dir=args.checkpoint_dir).fit(digits())
    np.save(args.labels, model.labels_)


if __name__ == "__main__":
    main()
