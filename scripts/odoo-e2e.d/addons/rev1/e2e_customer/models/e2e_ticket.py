from odoo import fields, models


class E2eTicket(models.Model):
    _name = "e2e.ticket"
    _description = "Customer ticket (plan-runner end-to-end)"

    name = fields.Char(required=True)
    partner_id = fields.Many2one("res.partner")
    state = fields.Selection([("open", "Open"), ("done", "Done")], default="open")
