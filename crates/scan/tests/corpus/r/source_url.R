source("https://example.invalid/script.R")
