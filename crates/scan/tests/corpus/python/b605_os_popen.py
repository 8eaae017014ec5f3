import os

def go(name):
    return os.popen(name).read()
