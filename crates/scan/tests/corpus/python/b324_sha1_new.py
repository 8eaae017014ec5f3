import hashlib

def digest(data):
    return hashlib.new("sha1", data).hexdigest()
