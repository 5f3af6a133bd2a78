"""The ``mynacard`` command line."""


def main() -> int:
    return 0
