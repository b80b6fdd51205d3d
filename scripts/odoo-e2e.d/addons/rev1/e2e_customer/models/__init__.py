from . import e2e_ticket
