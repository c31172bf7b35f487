"""tools/analysis_tools/get_flops.py reproduces the parameters and FLOPs of mmpretrain's DenseNet table."""

from pathlib import Path

import pytest
from tool_subprocess import REPO, assert_one_line_error, run_tool

TOOL = 'analysis_tools/get_flops.py'
BASE_CONFIG = REPO / 'configs' / 'densenet121_4xb256_in1k.py'
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


def test_reproduces_the_table_for_all_four_configs() -> None:
    configs = [REPO / 'configs' / f'densenet{depth}_4xb256_in1k.py' for depth in TABLE]
    result = run_tool(TOOL, *configs)
    assert result.returncode == 0, result.stderr
    blocks = reports(result.stdout)
    assert [block['Config'] for block in blocks] == list(map(str, configs))
    for block, (params, flops, table) in zip(blocks, TABLE.values()):
        assert block['Params'] == f'{params:,}'
        assert block['FLOPs (mmpretrain table convention)'] == f'{flops:,}'
        assert block['Params(M) / Flops(G)'] == table
    assert blocks[0]['FLOPs (mmengine get_model_complexity_info)'] == '2,864,522,752'


def test_shape_changes_the_flops(tmp_path: Path) -> None:
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG)
    outputs = [run_tool(TOOL, config, '--shape', *shape) for shape in [(64,), (64, 64), (64, 128)]]
    assert [result.returncode for result in outputs] == [0, 0, 0], [result.stderr for result in outputs]
    square, same_square, wide = (reports(result.stdout)[0] for result in outputs)
    assert square == same_square
    assert wide['Input shape'].startswith('(3, 64, 128)')
    square_flops, wide_flops = (
        int(block['FLOPs (mmpretrain table convention)'].replace(',', '')) for block in (square, wide)
    )
    assert wide_flops == 2 * square_flops  # every layer's work scales with the number of pixels


@pytest.mark.parametrize(
    'config_text, args, expected',
    [
        (None, (), 'no such config file'),
        ("model = dict(type='ImageClassifier',\n", (), 'cannot read config'),
        ('x = 1\n', (), 'defines no model'),
        ("model = dict(type='NoSuchModel')\n", (), "cannot build the config's model"),
        (TINY_CONFIG, ('--shape', '2'), 'cannot run the model on a 2x2 input'),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, config_text, args: tuple, expected: str) -> None:
    config = tmp_path / 'config.py'
    if config_text is not None:
        config.write_text(config_text)
    assert_one_line_error(run_tool(TOOL, config, *args), expected)
