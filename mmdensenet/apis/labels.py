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


def _annotation_lines(ann_file: str) -> Iterator[tuple[int, str, Optional[int]]]:
    """Each line of ``ann_file`` with its number and its label where it is mmpretrain's 'path label', else None.

    mmpretrain's ``CustomDataset`` splits a stripped line at its last space and reads the label with ``int``.
    """
    path = Path(ann_file)
    if not path.is_file():
        return
    with path.open(errors='replace') as lines:
        for number, line in enumerate(lines, 1):
            parts = line.strip().rsplit(' ', 1)
            try:
                label = int(parts[1]) if len(parts) == 2 else None
            except ValueError:
                label = None
            yield number, line.rstrip('\r\n'), label


def _line_with_label(ann_file: str, label: int) -> Optional[int]:
    """The number of the first line of ``ann_file`` that ends with ``label``."""
    return next((number for number, _, found in _annotation_lines(ann_file) if found == label), None)


def malformed_line(ann_file: str) -> Optional[str]:
    """What is wrong with the first line of ``ann_file`` that is not 'path label', where one is not."""
    for number, line, label in _annotation_lines(ann_file):
        if label is None:
            shown = f'is {line!r}' if line.strip() else 'is empty'
            return f"{ann_file} line {number} {shown}: each line must be 'path label' (an integer label after a space)"
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
