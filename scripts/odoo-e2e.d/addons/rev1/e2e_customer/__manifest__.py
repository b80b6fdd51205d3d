# A customer's own module, as every real database has one: it gives the
# end-to-end run data of its own and a file in the filestore to protect.
{
    "name": "plan-runner end-to-end: customer tickets",
    "version": "17.0.1.0",
    "depends": ["base"],
    "data": [
        "security/ir.model.access.csv",
        "data/e2e_data.xml",
    ],
    "license": "LGPL-3",
    "installable": True,
}
