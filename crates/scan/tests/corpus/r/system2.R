system2("ls", args = c("-l"))
