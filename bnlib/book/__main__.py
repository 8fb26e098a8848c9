"""`python -m bnlib.book`: build the book's HTML at a scale, or re-apply the chapter template.

Bad input ends with one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse

from bnlib.errors import BnlibError, report
from bnlib.experiments import SCALES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnlib.book", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, help="default: $BNLIB_SCALE, else cpu")
    parser.add_argument("--all", action="store_true", help="rebuild every page, not only changed ones")
    parser.add_argument(
        "--apply-template", action="store_true", help="only rewrite each chapter's first cells and strip outputs"
    )
    args = parser.parse_args(argv)
    from bnlib.book import build, template

    try:
        if args.apply_template:
            for notebook in template.pages():
                template.apply_template(notebook)
            return 0
        build.build(args.scale, rebuild_all=args.all)
        return 0
    except BnlibError as e:
        return report(e)


if __name__ == "__main__":
    raise SystemExit(main())
