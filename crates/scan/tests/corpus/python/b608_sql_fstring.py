def find(cur, name):
    cur.execute(f"SELECT id FROM users WHERE name = '{name}'")
