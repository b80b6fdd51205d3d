from . import e2e_sla
