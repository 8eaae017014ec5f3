# Correlation Analyzer: an OmniScope file-runtime plugin in R (seed 001, "Example Plugins" 2).
#
# The host writes /plugin/input.json:
#   {"context": {"plugin_id", "plugin_name", "config", "permissions"},
#    "data": {"var1": [...], "var2": [...], ...}, "parameters": {"method", "threshold"}}
# and this script writes /plugin/output.json:
#   {"data", "metadata", "logs", "warnings", "errors"}
# exiting 0 on success and 1 (with `errors` filled in) when the input cannot be analysed.
# For local runs the two paths may be given as arguments.

suppressPackageStartupMessages(library(jsonlite))

METHODS <- c("pearson", "spearman")

# parameters win over the plugin's configuration, which holds the manifest defaults.
setting <- function(name, parameters, config, fallback) {
  if (!is.null(parameters[[name]])) return(parameters[[name]])
  if (!is.null(config[[name]])) return(config[[name]])
  fallback
}

as_variables <- function(data) {
  if (is.null(data) || !is.list(data) || is.null(names(data)) || any(names(data) == "")) {
    stop("data must be an object of named numeric variables, e.g. {\"x\": [1, 2, 3], \"y\": [2, 4, 7]}")
  }
  if (length(data) < 2) stop("data needs at least two variables to correlate")
  vars <- lapply(names(data), function(name) {
    values <- data[[name]]
    if (is.list(values)) values <- unlist(values)
    if (!is.numeric(values)) stop(sprintf("variable '%s' must hold only numbers", name))
    if (any(!is.finite(values))) stop(sprintf("variable '%s' contains missing or infinite values", name))
    values
  })
  names(vars) <- names(data)
  lengths <- vapply(vars, length, integer(1))
  if (length(unique(lengths)) != 1) {
    stop(sprintf("all variables must have the same length, got %s", paste(lengths, collapse = ", ")))
  }
  if (lengths[[1]] < 3) stop("each variable needs at least 3 observations")
  vars
}

analyse <- function(request) {
  context <- if (is.null(request$context)) list() else request$context
  config <- if (is.null(context$config)) list() else context$config
  parameters <- if (is.null(request$parameters)) list() else request$parameters
  method <- setting("method", parameters, config, "pearson")
  if (!is.character(method) || !(method %in% METHODS)) {
    stop(sprintf("unknown method '%s'; use one of %s", format(method), paste(METHODS, collapse = ", ")))
  }
  threshold <- as.numeric(setting("threshold", parameters, config, 0.7))
  if (length(threshold) != 1 || is.na(threshold) || threshold < 0 || threshold > 1) {
    stop("threshold must be a number from 0 to 1")
  }
  vars <- as_variables(request$data)
  warnings <- list()
  constant <- names(vars)[vapply(vars, function(v) stats::sd(v) == 0, logical(1))]
  if (length(constant) > 0) {
    warnings <- c(warnings, sprintf("constant variable(s) %s have no defined correlation (reported as null)",
                                    paste(constant, collapse = ", ")))
  }
  matrix <- suppressWarnings(stats::cor(as.data.frame(vars), method = method))
  correlations <- list()
  significant <- list()
  names_ <- names(vars)
  for (i in seq_along(names_)) {
    row <- list()
    for (j in seq_along(names_)) {
      value <- matrix[i, j]
      row[[names_[j]]] <- if (is.na(value)) NA else round(value, 6)
      if (j > i && !is.na(value) && abs(value) >= threshold) {
        significant[[length(significant) + 1]] <- list(
          a = names_[i], b = names_[j], correlation = round(value, 6)
        )
      }
    }
    correlations[[names_[i]]] <- row
  }
  list(
    data = list(correlations = correlations, significant = significant),
    metadata = list(
      plugin_id = context$plugin_id,
      method = method,
      threshold = threshold,
      variables = length(vars),
      observations = length(vars[[1]])
    ),
    logs = list(sprintf("computed %s correlations of %d variables", method, length(vars))),
    warnings = warnings,
    errors = list()
  )
}

main <- function() {
  args <- commandArgs(trailingOnly = TRUE)
  input_path <- if (length(args) >= 1) args[[1]] else "/plugin/input.json"
  output_path <- if (length(args) >= 2) args[[2]] else "/plugin/output.json"
  status <- 0L
  output <- tryCatch(
    analyse(fromJSON(input_path, simplifyVector = FALSE)),
    error = function(e) {
      status <<- 1L
      list(data = NULL, metadata = setNames(list(), character(0)), logs = list(), warnings = list(),
           errors = list(conditionMessage(e)))
    }
  )
  write_json(output, output_path, auto_unbox = TRUE, null = "null", na = "null", digits = NA)
  quit(status = status)
}

main()
