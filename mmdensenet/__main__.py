"""``python -m mmdensenet train|test|run ARGS...``: ``mim COMMAND mmdensenet ARGS...``, ending as the tool ends.

mim runs the installed tool in a subprocess and turns any failure into a traceback of its own
(``CalledProcessError``) below the tool's one-line error, with exit status 1 whatever the tool's (75,
a stop that can resume, included); its own refusals (a config it cannot find, ``mim test`` without
``--checkpoint``) are tracebacks too. This runs the same mim command with the same options, then
leaves the tool's line as the last word and exits with its status, or gives mim's refusal as one line.
"""

import subprocess
import sys
import warnings
from importlib import metadata

from mmdensenet.cli import run_cli
from mmdensenet.errors import ToolError, one_line

COMMANDS = ('train', 'test', 'run')


def main(args: list[str]) -> None:
    """Runs ``mim args[0] mmdensenet args[1:]``; exits with the tool's status if it fails."""
    if not args or args[0] not in COMMANDS:
        raise ToolError(
            f'usage: python -m mmdensenet {{{",".join(COMMANDS)}}} ARGS..., as `mim COMMAND mmdensenet ARGS...`'
        )
    try:
        metadata.distribution('mmdensenet')
    except metadata.PackageNotFoundError:
        raise ToolError(
            'mim runs the tools of an installed mmdensenet: run `pip install .` in the checkout, '
            'or python tools/train.py (test.py, ...) there'
        ) from None
    # mim imports (and reloads) pkg_resources, whose deprecation is no concern of the user's.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    import click
    from mim.cli import cli

    try:
        cli.main([args[0], 'mmdensenet', *args[1:]], prog_name='python -m mmdensenet', standalone_mode=False)
    except subprocess.CalledProcessError as error:
        # The tool has reported its own error; a signal's death is reported as the shell does.
        sys.exit(error.returncode if error.returncode > 0 else 128 - error.returncode)
    except click.ClickException as error:
        raise ToolError(f'mim {args[0]}: {one_line(error.format_message())}') from None
    except (ValueError, AssertionError, RuntimeError) as error:  # mim's own refusals
        raise ToolError(f'mim {args[0]}: {click.unstyle(one_line(error))}') from None


if __name__ == '__main__':
    run_cli(lambda: main(sys.argv[1:]))
