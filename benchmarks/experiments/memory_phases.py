"""Resident memory after each phase of a fixed-encoder fit on N synthetic photos: python memory_phases.py N (run from benchmarks/)."""
import sys, resource
sys.path.insert(0, '.')
import torch
from torch import nn
from torch.utils.data import Dataset
from collection_memory import SyntheticPhotos
import sklearn_scan._pipeline as P
import sklearn_scan._sources as S
from sklearn_scan import SCANClusterer
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def wrap(name, f):
    def g(*a, **k):
        out = f(*a, **k); print(f"after {name}: rss {rss():.0f} peak {peak():.0f}", flush=True); return out
    return g
P.mine_neighbors = wrap("neighbours", P.mine_neighbors)
P.train_scan = wrap("train_scan", P.train_scan)
S.ImageCollection.embed = wrap("embed", S.ImageCollection.embed)
P.scan_loss_of_predictions = wrap("head losses", P.scan_loss_of_predictions)
n = int(sys.argv[1])
torch.set_num_threads(2)
photos = type("Photos", (SyntheticPhotos, Dataset), {})(n, 96)
encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
print("start", rss(), peak())
SCANClusterer(4, scan_epochs=2, selflabel_epochs=0, n_heads=5, image_size=64, random_state=0, backbone=encoder, pretext="none").fit(photos)
print("end", rss(), peak())
