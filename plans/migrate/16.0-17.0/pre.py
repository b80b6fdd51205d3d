#!/usr/bin/env python3
"""Stand-in for the 16.0 -> 17.0 pre-migration script.

Runs with both 16.0 services stopped and the dump taken. A real script
prepares the data the 17.0 update needs; this one only says what it would
do, so the plan can be tried without an Odoo installation.
"""

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to migrate")
    args = parser.parse_args()
    config = os.environ.get("ODOO_RC", "the default configuration")
    steps = [
        "uninstall the modules that 17.0 no longer ships",
        "archive the website themes the customer no longer uses",
    ]
    for step in steps:
        print(f"pre-migration of {args.database} with {config}: would {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
