"""tools/analysis_tools/get_flops.py reproduces the parameters and FLOPs of mmpretrain's DenseNet table."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.analysis.complexity import analyze_complexity, count_mmengine_flops, count_table_flops
from mmdensenet.apis import build_model, load_config
from tests.cli_helpers import REPO, assert_one_line_error, run_tool

TOOL = 'analysis_tools/get_flops.py'
BASE_CONFIG = REPO / 'configs' / 'densenet121_4xb256_in1k.py'
DIGITS_CONFIG = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'
# mmpretrain's table: Params, FLOPs, and both as the table prints them.
TABLE = {
    '121': (7_978_856, 2_881_695_488, '7.98M / 2.88G'),
    '169': (14_149_480, 3_416_860_160, '14.15M / 3.42G'),
    '201': (20_013_928, 4_365_236_736, '20.01M / 4.37G'),
    '161': (28_681_000, 7_816_363_968, '28.68M / 7.82G'),
}
TINY_CONFIG = (
    f'_base_ = [{str(BASE_CONFIG)!r}]\n'
    'model = dict(backbone=dict(arch=dict(_delete_=True, growth_rate=8, depths=(1, 2), init_channels=16)),'
    ' head=dict(in_channels=28))\n'
)


def reports(stdout: str) -> list[dict[str, str]]:
    """The 'name: value' lines of each config's block."""
    return [dict(line.split(': ', 1) for line in block.splitlines()) for block in stdout.split('\n\n')]


def figures(value: str) -> tuple[str, str]:
    """A printed figure: ours, and the published order's in parentheses (the same where none is given)."""
    match = re.fullmatch(r'(.+?)(?: \(published order: (.+)\))?', value)
    return match[1], match[2] or match[1]


def pools_before_conv(backbone: nn.Module) -> bool:
    """Whether the backbone's transitions run their average pooling before their 1x1 conv."""
    calls = []
    transition = backbone.transitions[0]
    handles = [
        transition.conv.register_forward_hook(lambda *_: calls.append('conv')),
        transition.pool.register_forward_hook(lambda *_: calls.append('pool')),
    ]
    with torch.no_grad():
        backbone(torch.zeros(1, 3, 64, 64))
    for handle in handles:
        handle.remove()
    return calls == ['pool', 'conv']


def transition_savings(config: Path) -> tuple[int, int]:
    """FLOPs (table convention, mmengine's) that pooling before the 1x1 conv saves over the published order.

    The two commute; the table counts conv, then pool. Measured with the same counters on the
    config's own transition modules at their input size (224 px images).
    """
    backbone = MODELS.build(Config.fromfile(config).model).backbone.eval()
    if not pools_before_conv(backbone):
        return 0, 0
    table, mmengine = 0, 0
    for transition, info in zip(backbone.transitions[:-1], backbone.feature_info):
        size = 224 // info['reduction']
        x = torch.zeros(1, transition.conv.in_channels, size, size)
        published = nn.Sequential(transition.conv, transition.pool)
        ours = nn.Sequential(transition.pool, transition.conv)
        table += count_table_flops(published, x) - count_table_flops(ours, x)
        mmengine += count_mmengine_flops(published, x) - count_mmengine_flops(ours, x)
    return table, mmengine


def test_reproduces_the_table_for_all_four_configs() -> None:
    """Params and the published order's FLOPs to the digit; ours less exactly what pooling first saves."""
    configs = [REPO / 'configs' / f'densenet{depth}_4xb256_in1k.py' for depth in TABLE]
    result = run_tool(TOOL, *configs)
    assert result.returncode == 0, result.stderr
    blocks = reports(result.stdout)
    assert [block['Config'] for block in blocks] == list(map(str, configs))
    for config, block, (params, flops, table) in zip(configs, blocks, TABLE.values()):
        table_saving, mmengine_saving = transition_savings(config)
        assert block['Params'] == f'{params:,}'
        assert figures(block['FLOPs (mmpretrain table convention)']) == (f'{flops - table_saving:,}', f'{flops:,}')
        assert figures(block['Params(M) / Flops(G)'])[1] == table
        if config.name.startswith('densenet121'):
            mmengine = figures(block['FLOPs (mmengine get_model_complexity_info)'])
            assert mmengine == (f'{2_864_522_752 - mmengine_saving:,}', '2,864,522,752')


def test_shape_changes_the_flops(tmp_path: Path) -> None:
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG)
    outputs = [run_tool(TOOL, config, '--shape', *shape) for shape in [(64,), (64, 128)]]
    assert [result.returncode for result in outputs] == [0, 0], [result.stderr for result in outputs]
    square, wide = (reports(result.stdout)[0] for result in outputs)
    assert square['Input shape'].startswith('(3, 64, 64)') and wide['Input shape'].startswith('(3, 64, 128)')
    key = 'FLOPs (mmpretrain table convention)'
    # Every layer's work scales with the number of pixels, in either order.
    for ours_wide, ours_square in zip(figures(wide[key]), figures(square[key])):
        assert int(ours_wide.replace(',', '')) == 2 * int(ours_square.replace(',', ''))


def test_each_config_is_counted_at_its_own_channels_and_size(tiny_cifar_config: Path) -> None:
    """The digits' grey 8x8 images and CIFAR's 32x32 ones, as each config's test pipeline gives them."""
    result = run_tool(TOOL, DIGITS_CONFIG, tiny_cifar_config)
    assert result.returncode == 0, result.stderr
    for config, block, shape in zip(
        (DIGITS_CONFIG, tiny_cifar_config), reports(result.stdout), [(1, 8, 8), (3, 32, 32)]
    ):
        assert block['Input shape'].startswith(f'{shape};')
        expected = analyze_complexity(build_model(load_config(config)), shape)
        assert figures(block['FLOPs (mmpretrain table convention)'])[0] == f'{expected.flops:,}'
        assert figures(block['FLOPs (mmengine get_model_complexity_info)'])[0] == f'{expected.mmengine_flops:,}'


@pytest.mark.parametrize(
    'config_text, args, expected',
    [
        (None, (), 'config file not found'),
        ("model = dict(type='ImageClassifier',\n", (), 'cannot read config'),
        ('x = 1\n', (), 'defines no model'),
        ("model = dict(type='NoSuchModel')\n", (), "cannot build the config's model"),
        (TINY_CONFIG, ('--shape', '7'), '--shape 7x7 is smaller than the net, whose stride is 8'),
        (
            TINY_CONFIG + "test_pipeline = [dict(type='PackInputs')]\n",
            (),
            'keeps each image at its own size; give --shape',
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, config_text, args: tuple, expected: str) -> None:
    config = tmp_path / 'config.py'
    if config_text is not None:
        config.write_text(config_text)
    assert_one_line_error(run_tool(TOOL, config, *args), expected)
