# The faulty revision of the same migration, for the injected failure: it
# changes data and writes a file into the filestore, then logs an ERROR and
# returns normally, so Odoo commits and exits 0. Only the runner's
# fail_on_output sees that the update went wrong.
import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    cr.execute("update e2e_ticket set priority = 'high', name = upper(name)")
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["ir.attachment"].create({"name": "half-migrated.txt", "raw": b"written by the broken migration\n"})
    _logger.error("e2e_customer: ticket priorities could not be migrated")
