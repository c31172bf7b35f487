"""mmdensenet.errors: the user's mistakes as one line."""

import pytest

from mmdensenet.errors import ToolError, one_line, reraise_as_tool_error


def test_one_line_joins_lines_and_names_a_silent_error() -> None:
    assert one_line(OSError('cannot read\n  file.pth')) == 'cannot read file.pth'
    assert one_line(KeyError()) == 'KeyError'


def test_reraise_as_tool_error_says_what_failed_and_keeps_tool_errors() -> None:
    with pytest.raises(ToolError) as caught, reraise_as_tool_error('cannot build the model'):
        raise RuntimeError('bad arch')
    assert str(caught.value) == 'cannot build the model: bad arch'
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(ToolError) as caught, reraise_as_tool_error('cannot build the model'):
        raise ToolError('already one line')
    assert str(caught.value) == 'already one line'
