"""mmdensenet.errors: the user's mistakes as one line."""

import pytest
from torch.utils.data import DataLoader

from mmdensenet.errors import ToolError, one_line, reraise_as_tool_error


class Refusing:
    """A dataset whose every item is a user's mistake."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> None:
        raise ToolError(f'image {index}.png: too large')


def test_one_line_joins_lines_and_names_a_silent_error() -> None:
    assert one_line(OSError('cannot read\n  file.pth')) == 'cannot read file.pth'
    assert one_line(KeyError()) == 'KeyError'


@pytest.mark.parametrize('workers', [0, 1])
def test_one_line_gives_a_dataloader_workers_own_message(workers: int) -> None:
    """torch brings a worker's error back as the same type, with the worker's traceback as its message."""
    with pytest.raises(ToolError) as caught:
        next(iter(DataLoader(Refusing(), num_workers=workers)))
    assert ('Original Traceback' in str(caught.value)) == (workers > 0)
    assert one_line(caught.value) == 'image 0.png: too large'


def test_reraise_as_tool_error_says_what_failed_and_keeps_tool_errors() -> None:
    with pytest.raises(ToolError) as caught, reraise_as_tool_error('cannot build the model'):
        raise RuntimeError('bad arch')
    assert str(caught.value) == 'cannot build the model: bad arch'
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(ToolError) as caught, reraise_as_tool_error('cannot build the model'):
        raise ToolError('already one line')
    assert str(caught.value) == 'already one line'
