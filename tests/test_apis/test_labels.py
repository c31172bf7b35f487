"""mmdensenet.apis.labels: the datasets' labels against the head's classes, on mmpretrain's own datasets."""

import re
from pathlib import Path
from typing import Optional

import pytest
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset
from mmpretrain.datasets import CustomDataset
from torch import nn
from torch.utils.data import DataLoader

from mmdensenet.apis.labels import check_labels, malformed_line
from mmdensenet.errors import ToolError


class Classifier(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(4, num_classes)
        self.head.num_classes = num_classes  # as mmpretrain's heads have it


def annotated(root: Path, labels: list[int]) -> CustomDataset:
    """mmpretrain's dataset over an annotation file of 'path label' lines (the images need not exist)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / 'ann.txt').write_text(''.join(f'img{i}.png {label}\n' for i, label in enumerate(labels)))
    return CustomDataset(data_root=str(root), ann_file='ann.txt', pipeline=[])


def check(dataset, num_classes: int = 3, model: Optional[nn.Module] = None) -> None:
    check_labels(model or Classifier(num_classes), {'train_dataloader': DataLoader(dataset), 'val_dataloader': None})


def test_labels_in_range_pass(tmp_path: Path) -> None:
    check(annotated(tmp_path, [0, 1, 2, 2]))
    check(annotated(tmp_path, [0, 7]), model=nn.Linear(4, 3))  # no head.num_classes: nothing to check against


@pytest.mark.parametrize('label', [3, 99, -1])
def test_a_label_outside_is_named_by_file_and_line(tmp_path: Path, label: int) -> None:
    dataset = annotated(tmp_path, [0, 1, label, 2])
    message = (
        f'train_dataloader.dataset: {tmp_path / "ann.txt"} line 3 has label {label}, '
        'but model.head.num_classes is 3: labels must be 0 to 2'
    )
    with pytest.raises(ToolError, match=f'^{re.escape(message)}$'):
        check(dataset)


def test_wrapped_datasets_are_checked_inside(tmp_path: Path) -> None:
    good, bad = annotated(tmp_path / 'good', [0, 1]), annotated(tmp_path / 'bad', [1, 1, 5])
    for wrapped in (ConcatDataset([good, bad]), RepeatDataset(bad, times=2)):
        with pytest.raises(ToolError, match=re.escape(f'{tmp_path / "bad" / "ann.txt"} line 3 has label 5')):
            check(wrapped)


def test_without_an_annotation_file_the_sample_is_named(tmp_path: Path) -> None:
    for name in ('a', 'b', 'c', 'd'):  # four class folders for a three-class head
        (tmp_path / name).mkdir()
        (tmp_path / name / 'x.png').write_bytes(b'')
    dataset = CustomDataset(data_root=str(tmp_path), pipeline=[])
    with pytest.raises(ToolError, match=re.escape(f'the sample {tmp_path / "d" / "x.png"} has label 3')):
        check(dataset)


def test_multi_label_samples_are_checked_label_by_label() -> None:
    class MultiLabel(BaseDataset):
        def load_data_list(self) -> list[dict]:
            return [{'img_path': 'a.png', 'gt_label': [0, 2]}, {'img_path': 'b.png', 'gt_label': [1, 4]}]

    with pytest.raises(ToolError, match=re.escape('the sample b.png has label 4')):
        check(MultiLabel(pipeline=[]))


@pytest.mark.parametrize(
    ('line', 'shown'),
    [
        ('img2.png', "is 'img2.png'"),
        ('img2.png two', "is 'img2.png two'"),
        ('img2.png\t2', "is 'img2.png\\t2'"),
        ('', 'is empty'),
    ],
)
def test_the_first_line_that_is_not_path_label_is_described(tmp_path: Path, line: str, shown: str) -> None:
    ann_file = tmp_path / 'ann.txt'
    ann_file.write_text(f'img0.png 0\nimg 1.png 1\n{line}\nimg3.png x\n')  # a path may hold spaces
    assert malformed_line(str(ann_file)) == (
        f"{ann_file} line 3 {shown}: each line must be 'path label' (an integer label after a space)"
    )
    ann_file.write_text('img0.png 0\nimg 1.png 1\n')
    assert malformed_line(str(ann_file)) is None
