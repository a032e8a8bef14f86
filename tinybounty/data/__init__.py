"""Data sets in their real on-disk formats (MNIST IDX, CIFAR-10 python pickles), and generators that write them.

Nothing can be downloaded here, so tests and default runs use data written in exactly those formats by
`write_mnist_like` (scikit-learn's bundled digits, upscaled to 28x28) and `write_cifar_like` (synthetic images with
learnable class structure). Point the loaders at a directory holding the real files and they read those instead.
"""
from tinybounty.data.cifar import load_cifar, write_cifar_like
from tinybounty.data.mnist import load_mnist, read_idx, write_idx, write_mnist_like

__all__ = ["load_cifar", "load_mnist", "read_idx", "write_cifar_like", "write_idx", "write_mnist_like"]
