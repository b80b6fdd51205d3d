# A faulty port of the customer module to 18.0, for the injected failure of
# the major upgrade: after OpenUpgrade has migrated base and web, this
# migration changes the tickets and writes a file into the filestore, then
# logs an ERROR and returns normally, so Odoo commits and exits 0. Only
# the runner's fail_on_output sees that the upgrade went wrong, and the
# rollback has a whole major upgrade to undo.
import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    cr.execute("update e2e_ticket set state = 'done', name = upper(name)")
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["ir.attachment"].create({"name": "half-ported.txt", "raw": b"written by the faulty 18.0 port\n"})
    _logger.error("e2e_customer: tickets could not be ported to 18.0")
