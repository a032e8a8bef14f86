"""The smallest CUDA training script with the constructs the runner handles (device strings, torchvision imports, a
data cache at hyp['misc']['data_location'], randperm batching, label smoothing, nesterov SGD, torch.cuda timing).

  python -m tinybounty.torch_backend.run --device tiny tinybounty/runner/scripts/cuda_minimal.py
"""
import torch
import torch.nn.functional as F
import torchvision  # noqa: F401 - as hlb-CIFAR10's main.py; the runner supplies a stand-in where it is missing
from torchvision import transforms  # noqa: F401

hyp = {'misc': {'device': 'cuda', 'data_location': 'cuda_minimal_data.pt', 'steps': 3, 'batchsize': 8}}
data = torch.load(hyp['misc']['data_location'])
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).to(hyp['misc']['device'])
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
torch.cuda.synchronize()
start.record()
for _ in range(hyp['misc']['steps']):
  idx = torch.randperm(len(data['train']['images']), device='cuda')[:hyp['misc']['batchsize']]
  x, y = data['train']['images'].index_select(0, idx).float(), data['train']['targets'].index_select(0, idx).float()
  loss = F.cross_entropy(net(x), y, label_smoothing=0.2)
  loss.backward()
  opt.step()
  opt.zero_grad(set_to_none=True)
end.record()
torch.cuda.synchronize()
elapsed = start.elapsed_time(end)
print(f"{hyp['misc']['steps']} steps, last loss {loss.item():.4f}, {elapsed:.1f} ms")
