"""Run unmodified PyTorch CUDA training scripts on another device (run.py), and compare two devices' runs (compare.py).

Kept apart from tinybounty.torch_backend, whose import registers the tiny device: once a PrivateUse1 backend is
registered, torch (>= 2.8) makes it the process's accelerator and CUDA autograd fails an internal assert
(pytorch/pytorch#161129), so a reference run on CUDA must never import it. The runner imports it only for --device tiny.
"""
