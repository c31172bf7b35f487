"""The fine-tuning example: pre-trained on the digits 0-4, fine-tuned and trained from scratch on a few 5-9s."""

import json
import re
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import REPO, assert_ok, assert_one_line_error, python

SCRIPT = REPO / 'tools' / 'demo' / 'finetune_digits.py'


def images_in(folder: Path) -> dict[str, set[str]]:
    return {digit.name: {image.name for image in digit.iterdir()} for digit in sorted(folder.iterdir())}


def test_a_short_run_fine_tunes_from_the_pretrained_backbone_and_compares(tmp_path: Path) -> None:
    data, work_dir = tmp_path / 'data', tmp_path / 'work_dir'
    options = ['--shots', 2, '--seeds', 3, '--pretrain-epochs', 1, '--epochs', 1, '--frozen-stages', 3]
    result = python(SCRIPT, '--data-root', data, '--work-dir', work_dir, *options)
    assert_ok(result)

    pretrain = {split: images_in(data / 'pretrain' / split) for split in ('train', 'val')}
    few, held_out = images_in(data / 'finetune' / 'train-2shot-seed3'), images_in(data / 'finetune' / 'val')
    assert list(pretrain['train']) == list(pretrain['val']) == ['0', '1', '2', '3', '4']
    assert list(few) == list(held_out) == ['5', '6', '7', '8', '9']
    assert all(len(names) == 2 and not names & held_out[digit] for digit, names in few.items())
    assert all(not names & pretrain['val'][digit] for digit, names in pretrain['train'].items())

    checkpoint = work_dir / 'pretrain' / 'epoch_1.pth'
    assert re.search(rf'loaded all \d+ tensors of the backbone from {re.escape(str(checkpoint))} \(', result.stdout)
    # The whole backbone frozen: the fine-tuned one is the pre-trained one, its new head trained.
    pretrained, finetuned = (
        torch.load(path, weights_only=False)['state_dict']
        for path in (checkpoint, work_dir / '2shot-seed3' / 'finetune' / 'epoch_1.pth')
    )
    backbone = [key for key in pretrained if key.startswith('backbone.')]
    assert all(torch.equal(pretrained[key], finetuned[key]) for key in backbone)
    assert finetuned['head.fc.weight'].shape == (5, 69)
    results = json.loads((work_dir / 'results.json').read_text())
    assert (
        results['shots'] == 2
        and results['frozen_stages'] == 3
        and results['held_out_images'] == sum(map(len, held_out.values())) > 150
    )
    (run,) = results['runs']
    assert run['seed'] == 3 and all(0 <= run[method] <= 100 for method in ('finetune', 'scratch'))
    assert results['finetune'] == dict(mean=run['finetune'], std=0.0)
    assert f'3          {run["finetune"]:.2f}  {run["scratch"]:12.2f}' in result.stdout


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        (['--shots', 0], '--shots must be from 1 to'),
        (['--shots', 1000], '--shots must be from 1 to'),
        (['--seeds', 1, 1], '--seeds must be distinct non-negative integers, got [1, 1]'),
        (['--epochs', 0], '--epochs must be at least 1, got 0'),
        (['--frozen-stages', 4], 'argument --frozen-stages: invalid choice: 4'),
        (['--out', '.'], 'the output . is a directory'),
    ],
    ids=['no shots', 'too many shots', 'repeated seed', 'no epochs', 'frozen beyond the net', 'out a folder'],
)
def test_bad_arguments_are_one_line_before_any_work(options: list, message: str, tmp_path: Path) -> None:
    result = python(SCRIPT, '--data-root', tmp_path / 'data', '--work-dir', tmp_path / 'work_dir', *options)
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_a_data_root_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / 'data'
    data.write_text('not a folder')
    result = python(SCRIPT, '--data-root', data, '--work-dir', tmp_path / 'work_dir')
    assert_one_line_error(result, f'the data root {data}: a file, not a folder')
    assert data.read_text() == 'not a folder'
