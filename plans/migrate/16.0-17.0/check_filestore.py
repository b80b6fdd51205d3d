#!/usr/bin/env python3
"""Stand-in check: every attachment stored in the filestore has its file.

A real check would list `store_fname` of `ir_attachment` (through the
connection the runner provides in PGHOST, PGPORT, PGUSER, PGDATABASE) and
exit 1 naming the first missing file under the filestore folder; this one
only says what it would do, and passes.
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to check")
    parser.add_argument("--filestore", required=True, help="the database's filestore folder")
    args = parser.parse_args()
    print(
        f"{args.database}: would check that each ir_attachment.store_fname "
        f"exists under {args.filestore}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
