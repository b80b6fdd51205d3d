"""The pair's pre.py: clean data the new code would trip on.

It connects like every step's tool, through the PG* variables the runner
gives it (psycopg2 reads them through libpq).
"""
import psycopg2


def main():
    with psycopg2.connect("") as conn, conn.cursor() as cur:
        cur.execute("update e2e_ticket set name = btrim(name) where name <> btrim(name)")
        print(f"pre: trimmed {cur.rowcount} ticket names")


if __name__ == "__main__":
    main()
