# The customer module ported to Odoo 18.0: the same code as revision 2; only
# the version says the new series. OpenUpgrade migrates Odoo's own modules,
# a customer's module comes with its own port.
{
    "name": "plan-runner end-to-end: customer tickets",
    "version": "18.0.1.0",
    "depends": ["base"],
    "data": [
        "security/ir.model.access.csv",
        "data/e2e_data.xml",
    ],
    "license": "LGPL-3",
    "installable": True,
}
