"""Colour photos mixed with grayscale ones: does stronger grayscale augmentation help?

Run examples/folder_of_images.py --out DIR first, then
    python mixed_grayscale.py DIR/photos 0.2 0.8
Fits SCANClusterer on the photos (the example's settings) for seeds 1-3 and each
grayscale_probability given; prints ACC overall, on colour and on grayscale photos, and the
share of grayscale photos in each cluster (about 0.15 everywhere means they are not set apart).
"""
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sklearn_scan import SCANClusterer
from sklearn_scan._images import IMAGE_EXTENSIONS
from sklearn_scan.metrics import clustering_accuracy_score

root = Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.suffix in IMAGE_EXTENSIONS and p.name != "corrupt.jpg")
labels = np.array([p.parent.name for p in files])
gray = np.array([Image.open(p).mode == "L" for p in files])
for seed in (1, 2, 3):
    for probability in [float(x) for x in sys.argv[2:]]:
        start = time.time()
        model = SCANClusterer(n_clusters=4, image_size=32, pretext_epochs=60, batch_size=128, random_state=seed,
                              augmentation_params={"grayscale_probability": probability})
        predicted = model.fit_predict([str(f) for f in files])
        share = [gray[predicted == c].mean() for c in range(4)]
        print(f"seed {seed} p={probability} ACC {clustering_accuracy_score(labels, predicted):.3f} "
              f"colour {clustering_accuracy_score(labels[~gray], predicted[~gray]):.3f} "
              f"gray {clustering_accuracy_score(labels[gray], predicted[gray]):.3f} "
              f"gray share per cluster {np.round(share, 2)} {time.time() - start:.0f}s", flush=True)
