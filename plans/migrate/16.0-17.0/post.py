#!/usr/bin/env python3
"""Stand-in for the 16.0 -> 17.0 post-migration script.

Runs after the 17.0 server has updated every module. It receives the
outgoing mail server's password in SMTP_PASSWORD (from the plan's
`secret()`, through `env`, never on the command line). A real script would
store it; this one only says what it would do and never prints it.
"""

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--database", required=True, help="the database to migrate")
    args = parser.parse_args()
    has_password = bool(os.environ.get("SMTP_PASSWORD"))
    print(f"post-migration of {args.database}: would recompute the stored fields 17.0 added")
    if has_password:
        print(f"post-migration of {args.database}: would set the outgoing mail server's password")
    else:
        print(f"post-migration of {args.database}: SMTP_PASSWORD is not set, would leave mail as is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
