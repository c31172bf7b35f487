"""mmdensenet.cli.launch: the torchrun command line that tools/dist_*.sh's arguments become."""

from pathlib import Path

import pytest

from mmdensenet.cli.launch import torchrun_arguments


def test_the_scripts_arguments_become_torchruns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'config.py'
    config.write_text('')
    for name in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT'):
        monkeypatch.delenv(name, raising=False)
    single_node = ['--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1', '--master_port=29500']
    assert torchrun_arguments(Path('tools/train.py'), [str(config), '4', '--amp']) == [
        *single_node, '--nproc_per_node=4', 'tools/train.py', str(config), '--launcher', 'pytorch', '--amp'
    ]  # fmt: skip
    monkeypatch.setenv('NNODES', '2')
    monkeypatch.setenv('NODE_RANK', '1')
    monkeypatch.setenv('MASTER_ADDR', '10.0.0.1')
    monkeypatch.setenv('PORT', '29501')
    url = 'https://example.com/epoch_1.pth'  # a URL is the test's to fetch
    assert torchrun_arguments(Path('tools/test.py'), [str(config), url, '8']) == [
        '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.1', '--master_port=29501', '--nproc_per_node=8',
        'tools/test.py', str(config), url, '--launcher', 'pytorch',
    ]  # fmt: skip
