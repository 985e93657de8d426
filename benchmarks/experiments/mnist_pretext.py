import time, sys, numpy as np, torch
from sklearn.cluster import KMeans
import sklearn_scan._backbones as B
from sklearn_scan._backbones import Encoder, Standardize
from sklearn_scan._augment import policy_for_images
from sklearn_scan._pretext import train_pretext
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._torch_utils import predict_in_batches, make_generator
from sklearn_scan.metrics import clustering_accuracy_score
import os
d = np.load(os.environ.get('MNIST_NPZ', os.path.join(os.path.dirname(__file__), '../../../shared/data/mnist.npz')))
rng = np.random.default_rng(0); idx = rng.choice(60000, 10000, replace=False)
X = torch.from_numpy(np.ascontiguousarray(d['train_X'][idx].transpose(0,3,1,2))); y = d['train_y'][idx]
width=int(sys.argv[1]); epochs=int(sys.argv[2]); temp=float(sys.argv[3])
torch.manual_seed(0); bb, F = B.convnet(1, 28, width=width)
enc = Encoder(Standardize([0.13],[0.31]), bb, F)
t=time.time(); h=[]
enc,_=train_pretext(enc, X, policy=policy_for_images(1,28,28), epochs=epochs, batch_size=256, device=torch.device('cpu'), generator=make_generator(0), temperature=temp, history=h)
print("pretext time %.0f"%(time.time()-t), "loss", h[-1]['loss'])
f = predict_in_batches(enc, X, torch.device('cpu'), 512, True)
nb = mine_neighbors(f, 20)
print("purity20 %.3f"%(y[nb]==y[:,None]).mean(), "kmeans %.3f"%clustering_accuracy_score(y, KMeans(10,n_init=10,random_state=0).fit_predict(f/np.linalg.norm(f,axis=1,keepdims=True))))
np.save('/tmp/mnist_f.npy', f); np.save('/tmp/mnist_y.npy', y)
