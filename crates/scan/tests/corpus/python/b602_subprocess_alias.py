import subprocess as sp

def go(cmd):
    sp.call(cmd, shell=True)
