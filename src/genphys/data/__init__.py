"""Data: IDX MNIST / Fashion-MNIST, scikit-learn digits, .npy/.npz arrays, and transforms."""

from genphys.data.datasets import (
    DATASET_NAMES,
    Dataset,
    load_array,
    load_dataset,
    load_digits,
    load_mnist,
)
from genphys.data.idx import read_idx, write_idx
from genphys.data.mnist import mnist_search_dirs
from genphys.data.toy import ring_centers, ring_of_gaussians
from genphys.data.transforms import (
    DataConfig,
    PreparedData,
    binarize,
    dynamic_binarize,
    prepare_data,
    to_symmetric,
    to_unit,
    train_val_split,
)

__all__ = [
    "DATASET_NAMES",
    "DataConfig",
    "Dataset",
    "PreparedData",
    "binarize",
    "dynamic_binarize",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "mnist_search_dirs",
    "prepare_data",
    "read_idx",
    "ring_centers",
    "ring_of_gaussians",
    "to_symmetric",
    "to_unit",
    "train_val_split",
    "write_idx",
]
