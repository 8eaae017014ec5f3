x <- c(1, 2, 3)
print(mean(x))
eval(quote(1 + 1))
