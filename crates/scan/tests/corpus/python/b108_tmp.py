def save(data):
    with open("/tmp/plugin-cache.txt", "w") as f:
        f.write(data)
