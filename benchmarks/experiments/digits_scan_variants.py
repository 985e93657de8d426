import time, sys, os, copy, json, numpy as np, torch
from sklearn.datasets import load_digits
from sklearn_scan._inputs import to_model_inputs, per_channel_statistics
from sklearn_scan._backbones import convnet, Encoder, Standardize, ClusteringHeads, ClusterModel
from sklearn_scan._augment import policy_for_images, weak_views, strong_views
from sklearn_scan._pretext import train_pretext
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import train_scan, scan_loss_of_predictions
from sklearn_scan._selflabel import train_selflabel
from sklearn_scan._torch_utils import predict_in_batches, make_generator
from sklearn_scan.metrics import clustering_accuracy_score as acc
d = load_digits(); y = d.target
inputs, _ = to_model_inputs(d.images/16.0)
cpu=torch.device('cpu'); pol = policy_for_images(1,8,8)
path='/tmp/enc60.pt'
if not os.path.exists(path):
    torch.manual_seed(0); bb, F = convnet(1, 8)
    enc = Encoder(Standardize(*per_channel_statistics(inputs, True)), bb, F)
    enc,_ = train_pretext(enc, inputs, policy=pol, epochs=60, batch_size=256, device=cpu, generator=make_generator(0))
    torch.save(enc, path)
enc0 = torch.load(path, weights_only=False)
f = predict_in_batches(enc0, inputs, cpu, 512, True)
nb = mine_neighbors(f, 20)
cfg = json.loads(sys.argv[1])
torch.manual_seed(cfg.get('seed',0)); g = make_generator(cfg.get('seed',0))
enc = copy.deepcopy(enc0)
heads = ClusteringHeads(enc.out_features, 10, 10)
t=time.time()
aug = (lambda b,g: weak_views(b,pol,g)) if cfg.get('aug',True) else None
if cfg.get('freeze'):
    m, ins, im = heads, torch.from_numpy(f), False; aug=None
else:
    m, ins, im = ClusterModel(enc, heads), inputs, True
m,_ = train_scan(m, ins, nb, entropy_weight=5.0, epochs=cfg['epochs'], batch_size=cfg.get('bs',256), device=cpu, generator=g, augment=aug, images=im, learning_rate=cfg['lr'])
lg = predict_in_batches(m, ins, cpu, 512, im)
tot,_,_ = scan_loss_of_predictions(lg, nb, 5.0)
accs=[acc(y, lg[:,h].argmax(1)) for h in range(10)]
b=int(np.argmin(tot))
print("scan time %.1f best head acc %.3f  max acc %.3f mean %.3f"%(time.time()-t, accs[b], max(accs), np.mean(accs)), np.bincount(lg[:,b].argmax(1), minlength=10))
if cfg.get('sl',0):
    head=heads.single_head(b)
    model = head if cfg.get('freeze') else ClusterModel(enc, head)
    st = (lambda b,g: strong_views(b,pol,g)) if cfg.get('saug',True) and not cfg.get('freeze') else None
    h=[]
    model,_=train_selflabel(model, ins, n_clusters=10, confidence_threshold=cfg.get('thr',0.99), epochs=cfg['sl'], batch_size=256, device=cpu, generator=g, strong_augment=st, images=im, learning_rate=cfg.get('sllr',1e-4), history=h)
    lg = predict_in_batches(model, ins, cpu, 512, im)
    print("selflabel acc %.3f"%acc(y, lg.argmax(1)), [round(x['confident_share'],3) for x in h][::3], np.bincount(lg.argmax(1), minlength=10))
