"""The ground-truth labels of a run's datasets, checked against the classes of the model's head.

A label outside them would end training inside the loss (``IndexError: Target 99 is out of
bounds``) once it is reached, and would make evaluation silently wrong.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from ..errors import ToolError


def _sample_datasets(dataset: Dataset) -> Iterator[Dataset]:
    """The datasets that hold the samples, inside mmengine's wrappers (concatenated, repeated, class-balanced)."""
    parts = getattr(dataset, 'datasets', None)
    inner = getattr(dataset, 'dataset', None)
    if isinstance(parts, (list, tuple)):
        for part in parts:
            yield from _sample_datasets(part)
    elif isinstance(inner, Dataset):
        yield from _sample_datasets(inner)
    else:
        yield dataset


def _labels(gt_label: Any) -> np.ndarray:
    """A sample's labels: one for single-label data, several for multi-label, none if it has no integer ones."""
    labels = np.asarray(gt_label if gt_label is not None else [])
    return labels.ravel() if labels.dtype.kind in 'iu' else labels[:0]


def _line_with_label(ann_file: str, label: int) -> Optional[int]:
    """The number of the first line of ``ann_file`` that ends with ``label``, as mmpretrain's 'path label' lines do."""
    path = Path(ann_file)
    if not path.is_file():
        return None
    with path.open(errors='replace') as lines:
        for number, line in enumerate(lines, 1):
            try:
                if int(line.strip().rsplit(' ', 1)[-1]) == label:
                    return number
            except ValueError:
                continue
    return None


def _check_dataset(dataset: Dataset, num_classes: int, key: str) -> None:
    if not hasattr(dataset, 'get_data_info'):
        return
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        outside = [label for label in _labels(info.get('gt_label')) if not 0 <= label < num_classes]
        if not outside:
            continue
        label = int(outside[0])
        ann_file = getattr(dataset, 'ann_file', None) or ''
        number = _line_with_label(ann_file, label) if ann_file else None
        where = f'{ann_file} line {number}' if number else f'the sample {info.get("img_path", index)}'
        raise ToolError(
            f'{key}: {where} has label {label}, but model.head.num_classes is {num_classes}: '
            f'labels must be 0 to {num_classes - 1}'
        )


def check_labels(model: nn.Module, dataloaders: Mapping[str, Optional[DataLoader]]) -> None:
    """Refuses a dataset with a label outside the classes of ``model``'s head, naming where it comes from.

    Args:
        model: The model (unwrapped); its ``head.num_classes``, if it has one, bounds the labels.
        dataloaders: The run's data loaders by config key, e.g. ``{'train_dataloader': ...}``; None is skipped.

    Raises:
        ToolError: Naming the annotation file and line (``ann_file`` in mmpretrain's 'path label'
            format), else the sample, and the labels allowed.
    """
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    if not isinstance(num_classes, int):
        return
    for key, dataloader in dataloaders.items():
        if dataloader is not None:
            for dataset in _sample_datasets(dataloader.dataset):
                _check_dataset(dataset, num_classes, f'{key}.dataset')
