"""tools/analysis_tools/benchmark.py end to end at a tiny size (no timing assertions), and its batch search."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO, assert_one_line_error, run_tool
from PIL import Image

TOOL = 'analysis_tools/benchmark.py'
TINY_RUN = ['--batch-size', '2', '--img-size', '32', '--warmup', '0', '--iters', '1']


@pytest.fixture(scope='module')
def benchmark_tool():
    """The tool as a module, for its batch search."""
    spec = importlib.util.spec_from_file_location('benchmark', REPO / 'tools' / TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
            assert row[f'{kind}_images_per_s'] >= row[f'{kind}_images_per_s_median'] > 0  # fastest, median
            assert row[f'{kind}_first_step_s'] > 0
        assert row['train_memory_mb'] >= 0
    assert '| torchvision plain |' in result.stdout
    assert '| 1.00 | 1.00 | 1.00 |' in result.stdout  # the reference row against itself
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


@pytest.mark.parametrize('start', [1, 16, 5000])
@pytest.mark.parametrize('largest', [0, 1, 2, 3, 31, 64, 100, 1000, 4095, 4096, 10_000])
def test_batch_search_finds_the_boundary_in_few_tries(benchmark_tool, start: int, largest: int) -> None:
    limit, tried = 4096, []
    found = benchmark_tool.largest_fitting(lambda n: tried.append(n) or n <= largest, start, limit)
    assert found == min(largest, limit)
    assert len(tried) == len(set(tried)) <= 2 * math.ceil(math.log2(limit)) + 2
    assert all(1 <= n <= limit for n in tried)


def allocates(megabytes: int) -> bool:
    """Whether a Python process with 256 MiB of address space can allocate ``megabytes`` MiB more."""
    code = (
        'import resource, sys\n'
        'resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))\n'
        'bytearray(int(sys.argv[1]) << 20)\n'
    )
    result = subprocess.run([sys.executable, '-S', '-c', code, str(megabytes)], capture_output=True, text=True)
    assert result.returncode == 0 or 'MemoryError' in result.stderr, result.stderr
    return result.returncode == 0


def test_batch_search_with_out_of_memory_in_child_processes(benchmark_tool) -> None:
    """The search as the tool runs it on CUDA: each size tried in a fresh process that may run out of memory."""
    found = benchmark_tool.largest_fitting(allocates, 16, 1024)
    assert 64 < found < 256
    assert allocates(found) and not allocates(found + 1)


def test_batch_search_runs_each_try_in_a_child_process(
    benchmark_tool, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool's own tries, on CPU, where these batches fit: each in a child process that trains two steps."""
    monkeypatch.setenv('PYTHONPATH', str(REPO))  # the children import this checkout's mmdensenet
    setting = benchmark_tool.Setting(
        backbone=dict(arch=dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)),
        device='cpu',
        batch_size=2,
        img_size=32,
        threads=1,
        warmup=0,
        iters=1,
    )
    variant = benchmark_tool.Variant('mmdensenet', memory_efficient=True)
    assert benchmark_tool.max_batch(variant, setting, limit=4) == 4
    assert capsys.readouterr().out.splitlines()[1:] == ['    batch 2: fits', '    batch 4: fits']
