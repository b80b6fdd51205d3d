#!/usr/bin/env python3
"""Stand-in for the 5.0.0 -> 6.0.0 pre-migration script.

The published procedure runs this with the 5.0 server stopped, before the
6.0 server updates the modules. A real script fixes the data the update
would choke on; this one only says what it would do, so the example plan
can run end to end without an OpenERP installation.
"""

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to migrate")
    args = parser.parse_args()
    steps = [
        "remove the views of modules that 6.0 no longer ships",
        "mark those modules as uninstallable",
        "clear cached menus and reports that the update rebuilds",
    ]
    for step in steps:
        print(f"pre-migration of {args.database}: would {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
