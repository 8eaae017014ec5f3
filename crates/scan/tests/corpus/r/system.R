run <- function(cmd) {
  system(cmd)
}
