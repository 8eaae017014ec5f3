from os import system

def go(name):
    system("echo " + name)
