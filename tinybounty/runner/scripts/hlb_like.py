"""A small CUDA training script written the way hlb-CIFAR10's main.py is: our own code, the same constructs.

Hard-coded 'cuda' devices, torchvision imports, a data cache at hyp['misc']['data_location'] (written by the runner),
fp16 and channels_last, a whitening conv initialised from the data (unfold, torch.cov, torch.linalg.eigh), dirac
init, randperm batching with random crops and flips, GELU / BatchNorm / max-pooling conv groups, global amax pooling,
label smoothing with a summed loss, SGD with nesterov and two OneCycleLR schedules, an EMA of the weights, and
torch.cuda.Event timing. Scaled down (widths 16-64, batch 64) so that it trains in seconds on a CPU:

  python -m tinybounty.torch_backend.run --device tiny tinybounty/runner/scripts/hlb_like.py --epochs 2
"""
import argparse
import copy

import torch
import torch.nn.functional as F
import torchvision  # noqa: F401 - imported as main.py does; the runner supplies a stand-in where it is missing
from torch import nn
from torchvision import transforms  # noqa: F401

hyp = {'opt': {'lr': 0.2, 'momentum': 0.85, 'weight_decay': 5e-4 * 64, 'label_smoothing': 0.2, 'percent_start': 0.25},
       'net': {'whiten_kernel': 2, 'widths': (16, 32, 64), 'bn_momentum': 0.4, 'pad': 2},
       'misc': {'device': 'cuda', 'dtype': torch.half, 'data_location': 'hlb_like_data.pt',
                'batchsize': 64, 'train_epochs': 2,
                'ema_every': 3, 'ema_decay': 0.9}}

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=hyp['misc']['train_epochs'])
parser.add_argument("--steps", type=int, default=0, help="stop each epoch after this many steps (0: the whole epoch)")
parser.add_argument("--widths", type=int, nargs=3, default=hyp['net']['widths'])
parser.add_argument("--float32", action="store_true", help="train in float32 instead of fp16 (PyTorch's CPU fp16 convolutions are slow)")
args = parser.parse_args()
if args.float32: hyp['misc']['dtype'] = torch.float32
hyp['net']['widths'], hyp['misc']['train_epochs'] = tuple(args.widths), args.epochs

data = torch.load(hyp['misc']['data_location'])
for split in data.values(): split.update({k: v.to(hyp['misc']['dtype']) for k, v in split.items()})
data['train']['images'] = F.pad(data['train']['images'], (hyp['net']['pad'],) * 4, 'reflect')


class ConvGroup(nn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding='same', bias=False), nn.Conv2d(cout, cout, 3, padding='same', bias=False)
    self.norm1, self.norm2 = nn.BatchNorm2d(cout, momentum=hyp['net']['bn_momentum']), nn.BatchNorm2d(cout, momentum=hyp['net']['bn_momentum'])
    self.norm1.weight.requires_grad = self.norm2.weight.requires_grad = False
    self.pool, self.activ = nn.MaxPool2d(2), nn.GELU()

  def forward(self, x):
    x = self.activ(self.norm1(self.pool(self.conv1(x))))
    return self.activ(self.norm2(self.conv2(x)))


class Net(nn.Module):
  def __init__(self):
    super().__init__()
    k, (w1, w2, w3) = hyp['net']['whiten_kernel'], hyp['net']['widths']
    self.whiten = nn.Conv2d(3, 2 * 3 * k * k, k, padding=0, bias=False)
    self.groups = nn.Sequential(ConvGroup(2 * 3 * k * k, w1), ConvGroup(w1, w2), ConvGroup(w2, w3))
    self.linear = nn.Linear(w3, 10, bias=False)

  def forward(self, x):
    if not self.training: x = torch.cat((x, torch.flip(x, (-1,))))
    x = torch.amax(self.groups(F.gelu(self.whiten(x))), dim=(2, 3))
    x = x @ (self.linear.weight / 9).T
    if not self.training:
      orig, flipped = x.split(x.shape[0] // 2, dim=0)
      x = .5 * orig + .5 * flipped
    return x


def init_whitening(conv, images, eps=1e-2):
  c, (h, w) = images.shape[1], conv.weight.shape[2:]
  patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
  eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.view(len(patches), -1).t()), UPLO='U')
  eigenvalues, eigenvectors = eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.t().reshape(c * h * w, c, h, w).flip(0)
  filters = (eigenvectors / torch.sqrt(eigenvalues + eps))[-conv.weight.shape[0] // 2:]
  conv.weight.data = torch.cat((filters, -filters)).to(conv.weight.dtype)
  conv.weight.requires_grad = False


def make_net():
  net = Net().to(hyp['misc']['device']).to(memory_format=torch.channels_last).to(hyp['misc']['dtype'])
  p = hyp['net']['pad']
  with torch.no_grad():
    imgs = data['train']['images']
    init_whitening(net.whiten, imgs.index_select(0, torch.randperm(len(imgs), device=imgs.device))[:, :, p:-p, p:-p])
    for g in net.groups:
      torch.nn.init.dirac_(g.conv2.weight)
  return net


def get_batches(key, batchsize):
  images, targets = data[key]['images'], data[key]['targets']
  shuffled = torch.randperm(len(images), device='cuda')
  if key == 'train':
    x0, y0 = (torch.empty((), dtype=torch.long, device='cuda').random_(0, 2 * hyp['net']['pad'] + 1) for _ in range(2))
    images = images[:, :, x0:x0 + 32, y0:y0 + 32]
    flip = torch.rand_like(images[:, 0, 0, 0].view(-1, 1, 1, 1)) < 0.5
    images = torch.where(flip, torch.flip(images, (-1,)), images)
  images = images.to(memory_format=torch.channels_last)
  for i in range(min(len(images) // batchsize, args.steps or len(images))):
    idx = shuffled[i * batchsize:(i + 1) * batchsize]
    yield images.index_select(0, idx), targets.index_select(0, idx)


def main():
  epochs, bs = int(hyp['misc']['train_epochs']), hyp['misc']['batchsize']
  net = make_net()
  ema = copy.deepcopy(net).eval().requires_grad_(False)
  params = [p for p in net.parameters() if p.requires_grad]
  opt = torch.optim.SGD(params, lr=hyp['opt']['lr'], momentum=hyp['opt']['momentum'], nesterov=True, weight_decay=hyp['opt']['weight_decay'] / bs)
  total = epochs * min(len(data['train']['images']) // bs, args.steps or len(data['train']['images']))
  sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hyp['opt']['lr'], total_steps=total, pct_start=hyp['opt']['percent_start'],
                                              anneal_strategy='linear', cycle_momentum=False)
  loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp['opt']['label_smoothing'], reduction='none')
  starter, ender = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
  torch.cuda.synchronize()
  steps, total_time_seconds = 0, 0.0
  print("|  epoch  |  train_loss  |  ema_val_acc  |  total_time_seconds  |")
  for epoch in range(epochs):
    starter.record()
    net.train()
    for inputs, targets in get_batches('train', bs):
      loss = loss_fn(net(inputs), targets).mul(64 / bs).sum()
      loss.backward()
      opt.step()
      sched.step()
      opt.zero_grad(set_to_none=True)
      steps += 1
      if steps % hyp['misc']['ema_every'] == 0:
        with torch.no_grad():
          for e, p in zip(ema.state_dict().values(), net.state_dict().values()):
            if p.dtype in (torch.half, torch.float): e.mul_(hyp['misc']['ema_decay']).add_(p.detach().mul(1 - hyp['misc']['ema_decay']))
    ender.record()
    torch.cuda.synchronize()
    net.eval()
    with torch.no_grad():
      accs = [(ema(x).argmax(-1) == y.argmax(-1)).float().mean() for x, y in get_batches('eval', 250)]
      acc = torch.stack(accs).mean().item()
    total_time_seconds += 1e-3 * starter.elapsed_time(ender)
    print(f"|  {epoch:5d}  |  {loss.item() / bs:10.4f}  |  {acc:11.4f}  |  {total_time_seconds:18.4f}  |")  # main.py's table
  return acc


if __name__ == "__main__":
  main()
