"""mmdensenet.inputs: input files checked before they are read."""

import os
from pathlib import Path

import pytest

from mmdensenet.errors import ToolError
from mmdensenet.inputs import require_file


def test_require_file_takes_files_and_names_anything_else(tmp_path: Path) -> None:
    (tmp_path / 'weights.pth').write_bytes(b'x')
    (tmp_path / 'link.pth').symlink_to(tmp_path / 'weights.pth')
    assert require_file(str(tmp_path / 'link.pth'), 'checkpoint') == tmp_path / 'link.pth'
    with pytest.raises(ToolError, match=f'checkpoint not found: {tmp_path / "missing.pth"}$'):
        require_file(tmp_path / 'missing.pth', 'checkpoint')
    with pytest.raises(ToolError, match='checkpoint not found'):
        require_file(tmp_path / 'weights.pth' / 'under_a_file.pth', 'checkpoint')
    with pytest.raises(ToolError, match=f'image file {tmp_path} is a folder, not a file'):
        require_file(tmp_path, 'image file')
    os.mkfifo(tmp_path / 'pipe')
    with pytest.raises(ToolError, match=f'config file {tmp_path / "pipe"} is a named pipe, not a file'):
        require_file(tmp_path / 'pipe', 'config file')
