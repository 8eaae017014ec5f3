import ast
import hashlib
import subprocess
import yaml

SAFE = ast.literal_eval("[1, 2]")


def digest(data):
    return hashlib.sha256(data).hexdigest()


def run():
    return subprocess.run(["ls", "-l"], check=True)


def load(text):
    return yaml.safe_load(text)


def load2(text):
    return yaml.load(text, Loader=yaml.SafeLoader)


def query(cur, name):
    cur.execute("SELECT * FROM users WHERE name = ?", (name,))


password_path = "config/password.txt"
