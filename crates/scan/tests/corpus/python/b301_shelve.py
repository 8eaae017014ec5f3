import shelve

def load(path):
    return shelve.open(path)
