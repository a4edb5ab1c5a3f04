"""Arguments and set-up shared by the commands that read a configuration file."""

from __future__ import annotations

import argparse

from engine.config import DEFAULT_CONFIG, Config, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )


def read_config(args: argparse.Namespace) -> Config:
    return load_config(args.config)
