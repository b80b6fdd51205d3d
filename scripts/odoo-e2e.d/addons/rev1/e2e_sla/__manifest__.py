# A second module of the customer's, not installed when the database is
# made: upgrade.plan installs it with `install = ["e2e_sla"]`.
{
    "name": "plan-runner end-to-end: service levels",
    "version": "17.0.1.0",
    "depends": ["e2e_customer"],
    "data": [
        "security/ir.model.access.csv",
        "data/e2e_sla_data.xml",
    ],
    "license": "LGPL-3",
    "installable": True,
}
