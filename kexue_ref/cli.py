"""The ``kexue-ref`` command line (also ``python -m kexue_ref``).

Subcommands are contributed by small modules, each with ``add_parser(subparsers)`` that
registers its parser and sets ``func`` (called with the parsed args, returning an exit code):

* ``tables``: generate / verify / certify / list / show the reference tables (``kexue_ref._tables_cli``);
* ``cases``: list the registry rows and their cases;
* ``check``: run a candidate against the oracle (``kexue_ref.testing.cli_check``, when present).
"""
import argparse
import importlib
import os
import sys

#: modules that contribute subcommands, in the order shown by ``--help``
SUBCOMMAND_MODULES = ["kexue_ref._tables_cli", "kexue_ref.registry_cli", "kexue_ref.testing.cli_check"]


def build_parser():
    import kexue_ref

    parser = argparse.ArgumentParser(
        prog="kexue-ref",
        description="Golden numerical reference for six kexue.fm posts: tables and checks.")
    parser.add_argument("--version", action="version", version=f"kexue_ref {kexue_ref.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # an optional subcommand module that does not exist yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (`kexue-ref tables list | head`): stop quietly; point stdout at
        # devnull so the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
