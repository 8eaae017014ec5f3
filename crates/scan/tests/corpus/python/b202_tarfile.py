import tarfile

def unpack(path):
    with tarfile.open(path) as tar:
        tar.extractall("out")
