"""The pair's post.py: give every ticket a partner.

With E2E_FAIL=post it fails the way a real post.py does at its worst: after
it has committed part of its work and written into the filestore.
"""
import argparse
import os
import sys

import psycopg2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--filestore", required=True)
    args = parser.parse_args()
    conn = psycopg2.connect("")
    with conn, conn.cursor() as cur:
        cur.execute(
            "update e2e_ticket set partner_id = (select partner_id from res_company order by id limit 1)"
            " where partner_id is null"
        )
        print(f"post: assigned {cur.rowcount} tickets")
    if os.environ.get("E2E_FAIL") != "post":
        return
    with conn, conn.cursor() as cur:
        cur.execute("update e2e_ticket set state = 'done'")
        cur.execute("select store_fname from ir_attachment where name = 'invoice-scan.txt'")
        (store_fname,) = cur.fetchone()
    with open(os.path.join(args.filestore, store_fname), "a") as scan:
        scan.write("overwritten by a failing post.py\n")
    os.makedirs(os.path.join(args.filestore, "e2e"), exist_ok=True)
    with open(os.path.join(args.filestore, "e2e", "post-report.txt"), "w") as report:
        report.write("half done\n")
    sys.exit("post: E2E_FAIL=post: failing after committing and writing into the filestore")


if __name__ == "__main__":
    main()
