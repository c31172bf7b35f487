"""tools/analysis_tools/benchmark.py end to end at a tiny size (no timing assertions)."""

import json
from pathlib import Path

from cli_helpers import assert_one_line_error, run_tool
from PIL import Image

TOOL = 'analysis_tools/benchmark.py'
TINY_RUN = ['--batch-size', '2', '--img-size', '32', '--warmup', '0', '--iters', '1']


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
        assert row['train_images_per_s'] > 0 and row['infer_images_per_s'] > 0
        assert row['train_memory_mb'] >= 0
    assert '| torchvision plain |' in result.stdout
    assert '| 1.00 | 1.00 | 1.00 |' in result.stdout  # the reference row against itself
    with Image.open(chart) as image:
        assert image.format == 'PNG' and image.width > image.height > 0


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


def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    chart = tmp_path / 'chart.png'
    no_densenet = tmp_path / 'resnet.py'
    no_densenet.write_text("model = dict(backbone=dict(type='ResNet', depth=18))\n")
    cases = [
        ([tmp_path / 'missing.py'], 'config file not found'),
        ([no_densenet], 'has no mmdensenet.DenseNet backbone'),
        (['--device', 'tpu'], '--device must be cpu or cuda'),
    ]
    for args, message in cases:
        assert_one_line_error(run_tool(TOOL, *args, '--out', chart), message)
    assert list(tmp_path.iterdir()) == [no_densenet]
