"""Clustering step on a saved MNIST encoder, then self-labeling frozen vs fine-tuned.

python mnist_selflabel.py ENCODER.pt EPOCHS LR [SEED]   (encoder from mnist_pretext.py)
Prints train/test ACC after the clustering step and after each self-labeling variant.
"""
import copy, os, sys, time
import numpy as np, torch
from sklearn_scan._augment import policy_for_images, strong_views, weak_views
from sklearn_scan._backbones import ClusteringHeads, ClusterModel, Frozen
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import scan_loss_of_predictions, train_scan
from sklearn_scan._selflabel import train_selflabel
from sklearn_scan._torch_utils import make_generator, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score

d = np.load(os.environ.get('MNIST_NPZ', os.path.join(os.path.dirname(__file__), '../../../shared/data/mnist.npz')))
rng = np.random.default_rng(0); idx = rng.choice(60000, 10000, replace=False)
X = torch.from_numpy(np.ascontiguousarray(d['train_X'][idx].transpose(0, 3, 1, 2))); y = d['train_y'][idx]
Xt = torch.from_numpy(np.ascontiguousarray(d['test_X'].transpose(0, 3, 1, 2))); yt = d['test_y']
enc = torch.load(sys.argv[1], weights_only=False); epochs = int(sys.argv[2]); lr = float(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
cpu = torch.device('cpu')
f = predict_in_batches(enc, X, cpu, 512, True)
nb = mine_neighbors(f, 20)
print("purity20 %.3f" % (y[nb] == y[:, None]).mean())
torch.manual_seed(seed)
heads = ClusteringHeads(enc.out_features, 10, 50)
heads, _ = train_scan(heads, torch.from_numpy(f), nb, entropy_weight=5.0, epochs=200, batch_size=256, device=cpu,
                      generator=make_generator(seed), images=False, learning_rate=1e-2)
logits = predict_in_batches(heads, torch.from_numpy(f), cpu, 512, False)
losses, _, _ = scan_loss_of_predictions(logits, nb, 5.0)
best = int(np.argmin(losses))
model = ClusterModel(enc, heads.single_head(best))
def report(tag, m, t0):
    p = predict_in_batches(m, X, cpu, 512, True); pt = predict_in_batches(m, Xt, cpu, 512, True)
    conf = (torch.softmax(torch.from_numpy(pt), 1).max(1).values > 0.99).float().mean().item()
    print("%-22s train %.3f test %.3f confident(test) %.2f  %.0f s" % (tag, clustering_accuracy_score(y, p.argmax(1)),
          clustering_accuracy_score(yt, pt.argmax(1)), conf, time.time() - t0), flush=True)
report("clustering step", model, time.time())
policy = policy_for_images(1, 28, 28)
weak = lambda b, g: weak_views(b, policy, g); strong = lambda b, g: strong_views(b, policy, g)
for variant in sys.argv[5:] or ["frozen", "finetune"]:
    m = copy.deepcopy(model); t0 = time.time(); h = []
    sl = ClusterModel(Frozen(m.encoder), m.head) if variant == "frozen" else m
    train_selflabel(sl, X, n_clusters=10, confidence_threshold=0.99, epochs=epochs, batch_size=256, device=cpu,
                    generator=make_generator(seed), strong_augment=strong, learning_rate=lr, history=h)
    print([round(e.get("confident_share", 0), 3) for e in h])
    report("selflabel " + variant, m, t0)
