"""Resident memory after each phase of a fixed-encoder fit on N synthetic photos: python memory_phases.py N (run from benchmarks/)."""
import sys, resource
sys.path.insert(0, '.')
import torch
from torch import nn
from torch.utils.data import Dataset
from collection_memory import SyntheticPhotos
import sklearn_scan._estimator as E
from sklearn_scan import SCANClusterer
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def wrap(name, f):
    def g(*a, **k):
        out = f(*a, **k); print(f"after {name}: rss {rss():.0f} peak {peak():.0f}", flush=True); return out
    return g
E.mine_neighbors = wrap("neighbours", E.mine_neighbors)
E.train_scan = wrap("train_scan", E.train_scan)
E.SCANClusterer._embed_collection = wrap("embed", E.SCANClusterer._embed_collection)
E.scan_loss_of_predictions = wrap("head losses", E.scan_loss_of_predictions)
n = int(sys.argv[1])
torch.set_num_threads(2)
photos = type("Photos", (SyntheticPhotos, Dataset), {})(n, 96)
encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
print("start", rss(), peak())
SCANClusterer(4, scan_epochs=2, selflabel_epochs=0, n_heads=5, image_size=64, random_state=0, backbone=encoder, pretext="none").fit(photos)
print("end", rss(), peak())
