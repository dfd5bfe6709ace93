r"""A small convolutional classifier whose features score samples (FID, classifier score).

After the Keras MNIST convnet: Conv 3x3 (32) - ReLU - MaxPool 2, Conv 3x3 (64) - ReLU - MaxPool 2,
flatten, Dense (``feature_dim``) - ReLU (the **features** used by the Fréchet distance), dropout,
Dense (``n_classes``) (the **logits**; :math:`p(y|x) = \mathrm{softmax}`, used by the classifier
score). With the defaults (28x28, no padding: 28 -> 26 -> 13 -> 11 -> 5) it has 225,034
parameters, 0.9 MB of float32 weights. Images smaller than 10x10, such as the 8x8 digits, get
``padding=1`` (8 -> 8 -> 4 -> 4 -> 2).

Inputs are flat batches (N, C*H*W) with pixel values in [0, 1], as every genphys model sees them.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genphys.config import Config, check
from genphys.errors import GenphysError
from genphys.models.nets import check_batch
from genphys.registry import register_model


def _side(size: int, padding: int) -> int:
    """Side length after two stages of Conv 3x3 (stride 1, ``padding``) and MaxPool 2 (floor)."""
    for _ in range(2):
        size = (size + 2 * padding - 2) // 2
    return size


@dataclasses.dataclass
class ClassifierConfig(Config):
    """Settings of :class:`Classifier`.

    Args:
        n_features: length C*H*W of one flat input; ``None`` takes it from ``image_shape``.
        image_shape: (C, H, W) of one image.
        n_classes: number of classes (outputs of the last layer).
        channels: widths of the two 3x3 convolutions.
        feature_dim: width of the penultimate dense layer (the features).
        dropout: dropout probability between the features and the logits (training only).
        padding: zero padding of the convolutions, 0 ("valid") or 1 ("same"); ``None``
            picks 0 for images of at least 10x10 and 1 for smaller ones (which need it).
    """

    n_features: int | None = None

    image_shape: tuple[int, int, int] = (1, 28, 28)
    n_classes: int = 10
    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.5
    padding: int | None = None

    def __post_init__(self) -> None:
        check(
            len(self.image_shape) == 3 and min(self.image_shape) >= 1,
            f"image_shape must be (C, H, W) with sizes >= 1, got {tuple(self.image_shape)}",
        )
        check(self.n_classes >= 2, f"n_classes must be >= 2, got {self.n_classes}")
        check(len(self.channels) == 2 and min(self.channels) >= 1, "channels: two widths >= 1")
        check(self.feature_dim >= 1, f"feature_dim must be >= 1, got {self.feature_dim}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        n = math.prod(self.image_shape)
        if self.n_features is None:
            self.n_features = n
        check(
            self.n_features == n,
            f"n_features={self.n_features} but images {tuple(self.image_shape)} have {n} pixels",
        )
        _, h, w = self.image_shape
        if self.padding is None:
            self.padding = 0 if min(h, w) >= 10 else 1
        check(self.padding in (0, 1), f"padding must be 0, 1 or None, got {self.padding}")
        check(
            min(_side(h, self.padding), _side(w, self.padding)) >= 1,
            f"images of {h}x{w} are too small for two conv + pool stages with padding "
            f"{self.padding}: they need at least 10x10 with padding 0, 4x4 with padding 1",
        )


@register_model("classifier")
class Classifier(nn.Module):
    """CNN classifier on flat (N, C*H*W) images: :meth:`features`, :meth:`logits`,
    :meth:`predict_proba` and the per-example cross-entropy :meth:`loss`."""

    Config = ClassifierConfig

    def __init__(self, config: ClassifierConfig | None = None, **kwargs: object) -> None:
        super().__init__()
        config = ClassifierConfig.given(config, kwargs)
        self.config = config
        c, h, w = config.image_shape
        c1, c2 = config.channels
        p = int(config.padding or 0)
        side_h, side_w = _side(h, p), _side(w, p)
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=p),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=p),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side_h * side_w, config.feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.n_classes)

    @property
    def n_features(self) -> int:
        """Length C*H*W of one flat input."""
        return math.prod(self.config.image_shape)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (after the ReLU), shape (N, feature_dim)."""
        return self.body(x.reshape(-1, *self.config.image_shape))

    def logits(self, x: Tensor) -> Tensor:
        """Class logits, shape (N, n_classes) (dropout is active in training mode)."""
        return self.head(self.dropout(self.features(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`logits`."""
        return self.logits(x)

    def predict_proba(self, x: Tensor) -> Tensor:
        """:math:`p(y|x) = \\mathrm{softmax}(\\text{logits})`, shape (N, n_classes)."""
        return torch.softmax(self.logits(x), dim=-1)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-example cross-entropy :math:`-\\log p(y|x)` for integer labels ``y``."""
        return F.cross_entropy(self.logits(x), y, reduction="none")

    def check_data(self, x: Tensor, what: str = "data") -> None:
        """Raise :class:`GenphysError` unless ``x`` is a non-empty finite (N, C*H*W) batch."""
        shape = self.config.image_shape
        check_batch(x, math.prod(shape), what, shape, "this classifier")

    def check_labels(self, y: Tensor, what: str = "labels") -> None:
        """Raise :class:`GenphysError` unless ``y`` holds integer classes in [0, n_classes)."""
        k = self.config.n_classes
        if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise GenphysError(f"{what} must be a 1-D array of integer classes, got {y.dtype}")
        if len(y) and not (int(y.min()) >= 0 and int(y.max()) < k):
            raise GenphysError(
                f"{what} must lie in [0, {k}) for this {k}-class classifier, "
                f"got values in [{int(y.min())}, {int(y.max())}]"
            )


__all__ = ["Classifier", "ClassifierConfig"]
