from subprocess import Popen

def go(user):
    Popen("ls " + user, shell=True)
