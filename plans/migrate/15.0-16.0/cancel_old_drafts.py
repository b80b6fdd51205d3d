#!/usr/bin/env python3
"""Stand-in: cancel draft stock transfers older than a number of days.

A real script would connect with the connection the runner provides
(PGHOST, PGPORT, PGUSER, PGDATABASE) and cancel the transfers through
SQL; this one only says what it would do.
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to clean")
    parser.add_argument(
        "--older-than",
        type=int,
        default=730,
        metavar="DAYS",
        help="cancel drafts created more than DAYS days ago (default: 730)",
    )
    args = parser.parse_args()
    if args.older_than < 1:
        parser.error("--older-than must be at least 1 day")
    print(
        f"{args.database}: would cancel the draft transfers (stock_picking, state 'draft') "
        f"created more than {args.older_than} days ago, and their stock moves"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
