import marshal

def load(blob):
    return marshal.loads(blob)
