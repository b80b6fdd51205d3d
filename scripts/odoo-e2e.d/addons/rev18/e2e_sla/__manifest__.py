# The service-level module ported to Odoo 18.0: only the version changes.
{
    "name": "plan-runner end-to-end: service levels",
    "version": "18.0.1.0",
    "depends": ["e2e_customer"],
    "data": [
        "security/ir.model.access.csv",
        "data/e2e_sla_data.xml",
    ],
    "license": "LGPL-3",
    "installable": True,
}
