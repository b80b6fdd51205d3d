# Revision 2 of the customer module: a new field, filled by a migration.
{
    "name": "plan-runner end-to-end: customer tickets",
    "version": "17.0.1.1",
    "depends": ["base"],
    "data": [
        "security/ir.model.access.csv",
        "data/e2e_data.xml",
    ],
    "license": "LGPL-3",
    "installable": True,
}
