"""Post-migration step of the OpenERP 5.0.0 -> 6.0.0 plan.

Runs after the new server has updated every module and stopped, before the
checks. This version pair needs no change after the update; a partner adds
here what a customer's database needs (data moved to the new modules'
tables, settings the update reset). The target's connection comes in
PGHOST, PGPORT, PGUSER, PGDATABASE (and PGPASSFILE).
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("-d", "--database", required=True)
args = parser.parse_args()
print(f"post-migration of {args.database}: nothing to change for 5.0.0 -> 6.0.0")
