import numpy as np, torch, sys
from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import train_scan, scan_loss_of_predictions
from sklearn_scan._torch_utils import predict_in_batches, make_generator
from sklearn_scan.metrics import clustering_accuracy_score as acc
f=np.load('/tmp/mnist_f.npy'); y=np.load('/tmp/mnist_y.npy')
nb=mine_neighbors(f,20)
X=torch.from_numpy(f)
H=int(sys.argv[1]); ep=int(sys.argv[2]); lr=float(sys.argv[3])
for seed in range(3):
    torch.manual_seed(seed); heads=ClusteringHeads(f.shape[1],10,H)
    m,_=train_scan(heads, X, nb, entropy_weight=5.0, epochs=ep, batch_size=256, device=torch.device('cpu'), generator=make_generator(seed), images=False, learning_rate=lr)
    lg=predict_in_batches(m,X,torch.device('cpu'),1024,False)
    tot,_,_=scan_loss_of_predictions(lg,nb,5.0); b=int(np.argmin(tot))
    accs=np.array([acc(y,lg[:,h].argmax(1)) for h in range(H)])
    order=np.argsort(tot)
    print(H, ep, lr, seed, "best-loss head %.3f max %.3f mean %.3f | acc of 3 lowest-loss: %s"%(accs[b],accs.max(),accs.mean(), np.round(accs[order[:3]],3)))
