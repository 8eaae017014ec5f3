import ctypes

lib = ctypes.CDLL("libc.so.6")
