"""tools/analysis_tools/benchmark.py end to end at a tiny size (no timing assertions).

The measuring itself is tested in tests/test_analysis/test_benchmark.py.
"""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.cli_helpers import assert_one_line_error, run_tool

TOOL = 'analysis_tools/benchmark.py'
TINY_RUN = ['--batch-size', '2', '--img-size', '32', '--warmup', '0', '--iters', '1', '--rounds', '1']


def test_compares_with_torchvision_end_to_end(tiny_config: Path, tmp_path: Path) -> None:
    chart, results = tmp_path / 'chart.png', tmp_path / 'results.json'
    args = [str(tiny_config), *TINY_RUN, '--implementations', 'mmdensenet', 'torchvision']
    result = run_tool(TOOL, *args, '--out', str(chart), '--json', str(results))
    assert result.returncode == 0, result.stderr
    rows = json.loads(results.read_text())
    assert [(r['implementation'], r['memory_efficient']) for r in rows] == [
        ('mmdensenet', False),
        ('mmdensenet', True),
        ('torchvision', False),
        ('torchvision', True),
    ]
    for row in rows:
        for kind in ('train', 'infer'):
            assert len(row[f'{kind}_step_s']) == 1  # one round of one timed step
            assert row[f'{kind}_images_per_s'] == row[f'{kind}_images_per_s_median'] > 0  # fastest, median
            assert row[f'{kind}_first_step_s'] > 0 and row[f'{kind}_spread'] == 0
        assert row['train_memory_mb'] >= 0 and 'rest_memory_mb' in row
    assert '| torchvision plain |' in result.stdout
    assert '| 1.00 | 1.00 | 1.00 |' in result.stdout  # the reference row against itself
    for name in ('mmdensenet plain', 'mmdensenet memory_efficient', 'torchvision plain'):
        assert f'  round 1: {name}' in result.stdout.splitlines()  # each variant's process announced
    with Image.open(chart) as image:
        assert image.format == 'PNG' and image.width > image.height > 0


def test_compiled_variants_report_their_first_step_apart(tiny_config: Path, tmp_path: Path) -> None:
    """aot_eager captures and differentiates the graph as inductor does, without generating code (fast)."""
    results = tmp_path / 'results.json'
    args = [tiny_config, *TINY_RUN, '--iters', '2', '--implementations', 'mmdensenet', '--compile']
    args += ['--compile-backend', 'aot_eager']
    result = run_tool(TOOL, *args, '--out', str(tmp_path / 'chart.png'), '--json', str(results))
    assert result.returncode == 0, result.stderr
    rows = json.loads(results.read_text())
    assert [(r['memory_efficient'], r['compiled']) for r in rows] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]
    assert all(row['train_first_step_s'] > 0 and row['train_images_per_s'] > 0 for row in rows)
    assert '| mmdensenet memory_efficient compiled |' in result.stdout
    assert 'first train / infer step s' in result.stdout
    assert 'compiled with aot_eager' in result.stdout


def test_a_net_without_counterparts_runs_alone(tmp_path: Path) -> None:
    config = tmp_path / 'cifar.py'
    config.write_text(
        "model = dict(backbone=dict(type='mmdensenet.DenseNet', arch=dict(growth_rate=4, depths=(1, 1, 1), "
        "init_channels=8, stem='cifar')))\n"
    )
    result = run_tool(TOOL, str(config), *TINY_RUN, '--out', str(tmp_path / 'chart.png'))
    assert result.returncode == 0, result.stderr
    assert '| mmdensenet memory_efficient |' in result.stdout
    assert 'torchvision' not in result.stdout


def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path: Path, tiny_config: Path) -> None:
    chart = tmp_path / 'chart.png'
    no_densenet = tmp_path / 'resnet.py'
    no_densenet.write_text("model = dict(backbone=dict(type='ResNet', depth=18))\n")
    config_text = tiny_config.read_text()
    not_a_folder = tmp_path / 'notes.txt'
    not_a_folder.write_text('a file, not a folder\n')
    cases = [
        ([tmp_path / 'missing.py'], 'config file not found'),
        ([no_densenet], 'has no mmdensenet.DenseNet backbone'),
        (['--device', 'tpu'], '--device must be cpu or cuda'),
        (['--max-batch', '--device', 'cpu'], '--max-batch needs CUDA'),
        (['--rounds', '0'], '--rounds must be at least 1'),
        ([tiny_config, '--json', tiny_config], f'refusing to overwrite an input: {tiny_config}'),
        (['--json', chart], f'--json {chart} is also --out'),
        (['--json', tmp_path], f'the output {tmp_path} is a directory'),
        # Before any measuring: the chart is not written when the results cannot be.
        ([*TINY_RUN, '--json', not_a_folder / 'results.json'], f'cannot write {not_a_folder / "results.json"}'),
        # While measuring: neither output is written.
        (
            [tiny_config, *TINY_RUN, '--compile', '--compile-backend', 'nonesuch', '--json', tmp_path / 'r.json'],
            'speed of mmdensenet plain',
        ),
    ]
    for args, message in cases:
        assert_one_line_error(run_tool(TOOL, *args, '--out', chart), message)
    assert sorted(tmp_path.iterdir()) == [not_a_folder, no_densenet]
    assert tiny_config.read_text() == config_text


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_max_batch_on_cuda(tiny_config: Path, tmp_path: Path) -> None:
    """``python -m pytest -m cuda``: every tiny batch up to the limit trains, each try reported."""
    results = tmp_path / 'results.json'
    args = [tiny_config, *TINY_RUN, '--device', 'cuda', '--implementations', 'mmdensenet', '--max-batch', '8']
    result = run_tool(TOOL, *args, '--out', tmp_path / 'chart.png', '--json', results)
    assert result.returncode == 0, result.stderr
    assert [row['max_batch'] for row in json.loads(results.read_text())] == [8, 8]
    tries = ['    batch 2: fits', '    batch 4: fits', '    batch 8: fits']
    for name in ('mmdensenet plain', 'mmdensenet memory_efficient'):
        lines = result.stdout.splitlines()
        start = lines.index(f'  {name}: largest batch that trains')
        assert lines[start + 1 : start + 4] == tries
    assert '| max batch |' in result.stdout
