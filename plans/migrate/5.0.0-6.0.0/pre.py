"""Pre-migration step of the OpenERP 5.0.0 -> 6.0.0 plan.

Runs with the old server stopped, before the new server updates the
modules. This version pair needs no change before the update; a partner
adds here what a customer's database needs (renamed columns, data the new
modules expect). The target's connection comes in PGHOST, PGPORT, PGUSER,
PGDATABASE (and PGPASSFILE).
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("-d", "--database", required=True)
args = parser.parse_args()
print(f"pre-migration of {args.database}: nothing to change for 5.0.0 -> 6.0.0")
