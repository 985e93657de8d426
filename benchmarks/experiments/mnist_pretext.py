import time, sys, numpy as np, torch
from sklearn.cluster import KMeans
import sklearn_scan._backbones as B
from sklearn_scan._backbones import Encoder, Standardize
from sklearn_scan._augment import policy_for_images
from sklearn_scan._pretext import train_pretext
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._torch_utils import predict_in_batches, make_generator, mixed_precision
from sklearn_scan.metrics import clustering_accuracy_score
import os
# DATASET=fashion reads Fashion-MNIST from the Debian package instead of MNIST.
if os.environ.get('DATASET') == 'fashion':
    from sklearn_scan.datasets import load_fashion_mnist
    data = load_fashion_mnist('/usr/share/datasets/fashion-mnist'); train_X, train_y = data.X_train, data.y_train
else:
    d = np.load(os.environ.get('MNIST_NPZ', os.path.join(os.path.dirname(__file__), '../../../shared/data/mnist.npz')))
    train_X, train_y = d['train_X'], d['train_y']
rng = np.random.default_rng(0); idx = rng.choice(60000, 10000, replace=False)
X = torch.from_numpy(np.ascontiguousarray(train_X[idx].transpose(0,3,1,2))); y = train_y[idx]
width=int(sys.argv[1]); epochs=int(sys.argv[2]); temp=float(sys.argv[3])
if os.environ.get('POOLS'):  # e.g. POOLS=0,1: max-pool after these conv blocks instead of the default
    pools = tuple(int(i) for i in os.environ['POOLS'].split(','))
    _convnet = B.convnet
    def convnet_with_pools(c, side, width=32):
        widths = [width, width, 2 * width, 2 * width, 4 * width]; layers, prev = [], c
        for i, ch in enumerate(widths):
            layers += B._conv_block(prev, ch) + ([torch.nn.MaxPool2d(2)] if i in pools else []); prev = ch
        return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), widths[-1]
    B.convnet = convnet_with_pools
import dataclasses
policy = policy_for_images(1, 28, 28)
if os.environ.get('CROP_MIN'):
    policy = dataclasses.replace(policy, crop_scale=(float(os.environ['CROP_MIN']), 1.0))
# e.g. BRIGHTNESS=0.4 CONTRAST=0.4 GAMMA=1: the grayscale jitter before the ninth session (now 0.8, 0.8, 2)
for field in ('BRIGHTNESS', 'CONTRAST', 'JITTER_PROBABILITY', 'GAMMA'):
    if os.environ.get(field):
        policy = dataclasses.replace(policy, **{field.lower(): float(os.environ[field])})
if os.environ.get('FLIP'):
    policy = dataclasses.replace(policy, flip=True)
# CUTOUT=0.4: every pretext view also loses a random square of 0.4 of the side (set to 0), as strong views do.
if os.environ.get('CUTOUT'):
    import sklearn_scan._pretext as P
    from sklearn_scan._augment import _cutout, weak_views
    P.weak_views = lambda images, policy, generator: _cutout(
        weak_views(images, policy, generator), float(os.environ['CUTOUT']), generator)
print(policy)
# PROJECTION_OUT=FILE.npy: also save the projection head's outputs (the space NT-Xent compares) for mining.
import sklearn_scan._pretext as P
heads_built = []
_projection_head = P.projection_head
def projection_head_kept(*args, **kwargs):
    heads_built.append(_projection_head(*args, **kwargs)); return heads_built[-1]
P.projection_head = projection_head_kept
torch.manual_seed(0); bb, F = B.convnet(1, 28, width=width)
enc = Encoder(Standardize([float(X.float().mean() / 255)], [float(X.float().std() / 255)]), bb, F)
t=time.time(); h=[]
# PRECISION=auto: bfloat16 autocast where the CPU has it, as the estimator's default; float32 otherwise.
with mixed_precision(os.environ.get('PRECISION') or False):
    enc,_=train_pretext(enc, X, policy=policy, epochs=epochs, batch_size=int(os.environ.get('BATCH', 256)), device=torch.device('cpu'), generator=make_generator(0), temperature=temp, history=h)
    f = predict_in_batches(enc, X, torch.device('cpu'), 512, True)
    if os.environ.get('PROJECTION_OUT'):
        projector = torch.nn.Sequential(enc, heads_built[-1]).eval()
        np.save(os.environ['PROJECTION_OUT'], predict_in_batches(projector, X, torch.device('cpu'), 512, True))
print("pretext time %.0f"%(time.time()-t), "loss", h[-1]['loss'])
nb = mine_neighbors(f, 20)
print("purity20 %.3f"%(y[nb]==y[:,None]).mean(), "kmeans %.3f"%clustering_accuracy_score(y, KMeans(10,n_init=10,random_state=0).fit_predict(f/np.linalg.norm(f,axis=1,keepdims=True))))
np.save(os.environ.get('FEATURES_OUT', '/tmp/mnist_f.npy'), f); np.save('/tmp/mnist_y.npy', y)
torch.save(enc, os.environ.get('ENCODER_OUT', '/tmp/mnist_encoder.pt'))
