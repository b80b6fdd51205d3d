#!/usr/bin/env python3
"""The demo pair's pre-migration script: runs before the update.

Cleans data the new release refuses. DEMO_FAIL=pre makes it fail after it
has committed its change, to show a rollback."""

import argparse
import os
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("-d", "--database", required=True)
args = parser.parse_args()

sql = "update res_partner set email = lower(email) where email <> lower(email); " \
      "update sale_order set state = 'cancel' where state = 'draft' and amount = 0;"
subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", args.database, "-c", sql],
               check=True, stdin=subprocess.DEVNULL)
print(f"pre: cleaned partners and empty draft orders of {args.database}", flush=True)
if os.environ.get("DEMO_FAIL") == "pre":
    print("pre: ERROR: injected failure (DEMO_FAIL=pre)", flush=True)
    sys.exit(1)
