def connect(db):
    return db.login(user="admin", password="s3cret!")
