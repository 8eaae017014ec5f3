download.file("https://example.invalid/data.csv", "data.csv")
