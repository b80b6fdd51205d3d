# Runs once, when `-u` finds the module's code at 17.0.1.1 and the database
# at 17.0.1.0: the tickets the customer marked "Urgent" get the new priority.


def migrate(cr, version):
    cr.execute("update e2e_ticket set priority = 'high' where name like 'Urgent%%'")
