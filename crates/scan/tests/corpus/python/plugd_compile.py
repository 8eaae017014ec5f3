def build(src):
    return compile(src, "<x>", "exec")
