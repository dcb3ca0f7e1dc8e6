"""In-memory labelled images and their class-balanced subsets."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageSet:
    """Decoded images with integer labels, held in memory.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W, 3)`` uint8 array.
    labels : np.ndarray
        ``(N,)`` integer array, converted to int64; each label indexes
        ``class_names``.
    class_names : list of str
        Name of each class, in label order.

    Examples
    --------
    >>> import numpy as np
    >>> s = ImageSet(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 0, 1]), ["a", "b"])
    >>> len(s), len(s.subset([1, 3])), s.subset([1, 3]).labels.tolist()
    (4, 2, [1, 1])
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise ValueError(
                "`images` must be a uint8 NumPy array. "
                f"Received: images.dtype={getattr(images, 'dtype', type(images).__name__)}"
            )
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`images` must have shape (N, H, W, 3). "
                f"Received: images.shape={images.shape}"
            )
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "`labels` must be a 1-D integer array. "
                f"Received: labels.shape={labels.shape}, labels.dtype={labels.dtype}"
            )
        if len(labels) != len(images):
            raise ValueError(
                "`images` and `labels` must have the same length. "
                f"Received: {len(images)} images and {len(labels)} labels"
            )
        self.labels = labels.astype(np.int64, copy=False)
        num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        if not self.class_names:
            self.class_names = [str(i) for i in range(num_classes)]
        self.class_names = [str(name) for name in self.class_names]
        if len(self.labels) and (self.labels.min() < 0 or num_classes > len(self.class_names)):
            raise ValueError(
                f"`labels` must lie in [0, {len(self.class_names)}) (one per class name). "
                f"Received: labels in [{self.labels.min()}, {self.labels.max()}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The ``(H, W, 3)`` shape of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, indices) -> "ImageSet":
        """Return the images at ``indices`` (a copy), with the same class names."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(self.images[indices], self.labels[indices], list(self.class_names))


def stratified_indices(labels: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced subset of ``limit`` samples.

    Every class gets ``limit // num_classes`` samples (the first classes one
    more when ``limit`` does not divide evenly); a class with too few samples
    gives all it has and the others make up the difference. Samples within a
    class are drawn without replacement with ``seed``.

    Examples
    --------
    >>> labels = np.array([0] * 10 + [1] * 10 + [2] * 2)
    >>> np.bincount(labels[stratified_indices(labels, 9)]).tolist()
    [4, 3, 2]
    """
    labels = np.asarray(labels)
    if not isinstance(limit, (int, np.integer)) or limit <= 0:
        raise ValueError(f"`limit` must be a positive integer or None. Received: limit={limit!r}")
    if limit >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.zeros_like(counts)
    remaining = limit
    while remaining > 0:
        open_classes = np.flatnonzero(quota < counts)
        share, extra = divmod(remaining, len(open_classes))
        add = np.full(len(open_classes), share)
        add[:extra] += 1
        add = np.minimum(add, counts[open_classes] - quota[open_classes])
        quota[open_classes] += add
        remaining -= int(add.sum())
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, quota)
    ]
    return np.sort(np.concatenate(chosen))


def split_validation(
    imageset: ImageSet, fraction: float = 0.1, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Split off a stratified validation set.

    Each class gives ``round(fraction * count)`` of its samples (at least one
    when it has two or more) to the validation set, chosen with ``seed``; the
    split is deterministic and the two parts are disjoint.

    Parameters
    ----------
    imageset : ImageSet
        The samples to split (usually a training split).
    fraction : float
        Share of each class held out, in ``(0, 1)``.
    seed : int
        Seed of the draw.

    Returns
    -------
    tuple of ImageSet
        ``(train, validation)``.

    Examples
    --------
    >>> s = ImageSet(np.zeros((20, 8, 8, 3), np.uint8), np.repeat([0, 1], 10))
    >>> train, val = split_validation(s, 0.2)
    >>> len(train), len(val), np.bincount(val.labels).tolist()
    (16, 4, [2, 2])
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must lie in (0, 1). Received: fraction={fraction!r}")
    rng = np.random.default_rng(seed)
    held_out = []
    for c in np.unique(imageset.labels):
        members = np.flatnonzero(imageset.labels == c)
        count = int(round(fraction * len(members)))
        if len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        held_out.append(rng.choice(members, size=count, replace=False))
    val_mask = np.zeros(len(imageset), bool)
    val_mask[np.concatenate(held_out)] = True
    return imageset.subset(np.flatnonzero(~val_mask)), imageset.subset(np.flatnonzero(val_mask))
