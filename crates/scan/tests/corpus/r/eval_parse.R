f <- function(s) eval(parse(text = s))
