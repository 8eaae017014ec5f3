def find(cur, name):
    cur.execute("DELETE FROM users WHERE name = '{}'".format(name))
