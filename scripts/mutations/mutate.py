"""Shared helper of the mutation scripts: replace exactly one occurrence."""

import pathlib
import sys


def replace(root, path, old, new):
    file = pathlib.Path(root) / path
    text = file.read_text()
    count = text.count(old)
    if count != 1:
        sys.exit(f"{path}: expected the code to mutate once, found it {count} times:\n{old}")
    file.write_text(text.replace(old, new))
