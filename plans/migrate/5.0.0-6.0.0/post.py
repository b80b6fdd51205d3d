#!/usr/bin/env python3
"""Stand-in for the 5.0.0 -> 6.0.0 post-migration script.

The published procedure runs this after the 6.0 server has updated every
module and stopped. A real script moves data into the new models; this one
only says what it would do, so the example plan can run end to end without
an OpenERP installation.
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to migrate")
    args = parser.parse_args()
    steps = [
        "recompute the stored fields the update left empty",
        "set defaults for the fields 6.0 added",
        "list the installed modules that did not reach 6.0",
    ]
    for step in steps:
        print(f"post-migration of {args.database}: would {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
