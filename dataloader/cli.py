"""Shared command-line plumbing: one-line errors, thread count, the `key=value` override list.

Every command (train.py, generate.py, eval.py, tools.*, evaluation.*) builds its parser with
`make_parser` and runs through `run_main`, so bad arguments and bad input all end the same way:
one line `error: <where>: <what>` on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn, Sequence

from .errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line `error: <prog>: <message>` and exit code 2."""

    def error(self, message: str) -> NoReturn:  # noqa: D102 - argparse API
        raise UserError(self.prog, message)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; appends `(default: X)` once, and only where it says something.

    No default is shown for required options, positionals, flags (`store_true`: default False), a default
    of None / False / empty, `--help`, or an option whose help text already mentions its default.
    """

    # actions whose default is implied by what they are (a flag defaults to off)
    _NO_VALUE = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                 argparse._HelpAction, argparse._VersionAction, argparse._CountAction)

    @staticmethod
    def _empty(d: object) -> bool:
        return d is None or d is False or d is argparse.SUPPRESS or (hasattr(d, "__len__") and len(d) == 0)

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        takes_value = bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
        if ("default" in help.lower() or self._empty(action.default) or action.required
                or isinstance(action, self._NO_VALUE) or not takes_value):
            return help
        return help + " (default: %(default)s)"


def make_parser(prog: str, description: str, epilog: str | None = None) -> OneLineParser:
    """A parser whose help keeps the description's line breaks and shows meaningful defaults once."""
    return OneLineParser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter)


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Add `--config FILE`, the trailing `key.sub=value` overrides and `--dry-run`."""
    parser.add_argument("--config", required=required, metavar="FILE",
                        help="YAML experiment config (keys: docs/config_reference.md)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="override any config key, e.g. data.stride_s=30 train.max_steps=100; "
                             "values are parsed as YAML")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved config and exit without doing anything")


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count on purpose.

    Default: OMP_NUM_THREADS when set (accelerate sets it to 1 per process unless given
    --num_cpu_threads_per_process), otherwise every core this process may use.
    """
    import torch

    if n is None:
        env = os.environ.get("OMP_NUM_THREADS")
        n = int(env) if env and env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def run_main(main: Callable[[Sequence[str] | None], int | None],
             argv: Sequence[str] | None = None) -> NoReturn:
    """Run a command's `main(argv)`; turn `UserError` into one line on stderr and exit code 2."""
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted (partial outputs were removed; resumable work can continue)",
              file=sys.stderr)
        sys.exit(130)
    sys.exit(int(code or 0))
