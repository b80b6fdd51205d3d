from odoo import fields, models


class E2eSla(models.Model):
    _name = "e2e.sla"
    _description = "Service level (plan-runner end-to-end)"

    name = fields.Char(required=True)
    hours = fields.Integer(required=True)
