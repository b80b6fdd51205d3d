#!/usr/bin/env python3
"""The demo pair's post-migration script: runs after the update.

Recomputes a field the new release adds. DEMO_FAIL=post makes it fail
after it has committed its change, to show a rollback."""

import argparse
import os
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("-d", "--database", required=True)
args = parser.parse_args()

sql = "update res_partner set display_name = upper(left(display_name, 1)) || substr(display_name, 2);"
subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", args.database, "-c", sql],
               check=True, stdin=subprocess.DEVNULL)
print(f"post: recomputed display names in {args.database}", flush=True)
if os.environ.get("DEMO_FAIL") == "post":
    print("post: ERROR: injected failure (DEMO_FAIL=post)", flush=True)
    sys.exit(1)
