"""A user's digits script, run by tests/test_distributed.py in one process or under torchrun.

    python tests/distributed_fit.py OUT_DIR [--die-after-pretext-epoch RANK [--die-epoch N]] [--checkpoint-dir DIR]
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_fit.py OUT_DIR

Every process writes its labels and how many images went through the first convolution to
OUT_DIR/rank<RANK>.npz. With --die-after-pretext-epoch RANK, that process kills itself (SIGKILL)
after its pretext epoch N (0: the first). With --checkpoint-dir, the fit saves a checkpoint
after every epoch there, and resumes from it.
"""

import argparse
import os
import signal
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from sklearn_scan import SCANClusterer

#: Small enough for the suite: a few seconds of pretext, the heads on the frozen embedding, two epochs of
#: self-labeling.
PARAMS = dict(n_clusters=10, pretext_epochs=20, scan_epochs=50, selflabel_epochs=2, random_state=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--die-after-pretext-epoch", type=int, default=None)
    parser.add_argument("--die-epoch", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--defaults", action="store_true", help="SCANClusterer(n_clusters=10, random_state=0)")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    if not args.defaults:
        torch.set_num_threads(1)

    first_convolution_images = [0]
    real_forward = torch.nn.Conv2d.forward

    def counting_forward(module, inputs):
        if module.in_channels == 1:  # the first convolution of the grayscale CNN
            first_convolution_images[0] += inputs.shape[0]
        return real_forward(module, inputs)

    torch.nn.Conv2d.forward = counting_forward
    if args.die_after_pretext_epoch == rank:
        from sklearn_scan import _trainer

        real_run_epochs = _trainer.run_epochs

        def run_then_die(stage, n_epochs, one_epoch, training, checkpoint=None):
            def one_epoch_then_die(epoch):
                figures = one_epoch(epoch)
                if stage == "pretext" and epoch >= args.die_epoch:
                    os.kill(os.getpid(), signal.SIGKILL)
                return figures

            return real_run_epochs(stage, n_epochs, one_epoch_then_die, training, checkpoint)

        _trainer.run_epochs = run_then_die

    digits = load_digits()
    start = time.perf_counter()
    params = dict(n_clusters=10, random_state=0) if args.defaults else dict(PARAMS)
    if args.checkpoint_dir:
        import sklearn_scan._checkpoints

        sklearn_scan._checkpoints.CHECKPOINT_SECONDS = 0.0
        params["checkpoint_dir"] = args.checkpoint_dir
    model = SCANClusterer(**params).fit(digits.images / 16.0)
    np.savez(os.path.join(args.out_dir, f"rank{rank}.npz"), labels=model.labels_, truth=digits.target,
             first_convolution_images=first_convolution_images[0], seconds=time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
