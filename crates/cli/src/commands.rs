//! One function per subcommand: turn arguments into a host call, then print the
//! result as text or, with `--json`, as one JSON document.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use plugd_host::{ExecOptions, Host, HostConfig, InstallReport, InstallStatus};
use plugd_runtime::protocol::{ExecCall, Status};
use serde_json::{Map, Value, json};

use crate::args::{Cli, Command, ExecArgs, UnpackLimits};
use crate::output::{Spinner, emit_json, say, table};

/// Runs the command named on the command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    let home = cli.home.clone();
    let open = |limits: Option<&UnpackLimits>| -> anyhow::Result<Host> {
        let home = match &home {
            Some(home) => home.clone(),
            None => default_home()?,
        };
        let mut config = HostConfig::new(home);
        if let Some(limits) = limits {
            config.unpack_limits = limits.resolve();
        }
        Ok(Host::open(config)?)
    };
    match cli.command {
        Command::Validate { path, limits } => validate(&path, &limits, json),
        Command::Pack { dir, output } => pack(&dir, output, json),
        Command::Install {
            source,
            enable,
            limits,
            trust,
        } => {
            let host = open(Some(&limits))?;
            let spinner = Spinner::new(json);
            let report = host.install(&source, &trust.options(enable), &spinner);
            spinner.finish();
            print_install(&report?, json)
        }
        Command::Update {
            id,
            source,
            accept_permissions,
            limits,
            trust,
        } => {
            let host = open(Some(&limits))?;
            let spinner = Spinner::new(json);
            let options = plugd_host::InstallOptions {
                accept_permissions,
                ..trust.options(false)
            };
            let report = host.update(&id, &source, &options, &spinner);
            spinner.finish();
            print_install(&report?, json)
        }
        Command::List => list(&open(None)?, json),
        Command::Info { id } => info(&open(None)?, &id, json),
        Command::Enable { id } => set_enabled(&open(None)?, &id, true, json),
        Command::Disable { id } => set_enabled(&open(None)?, &id, false, json),
        Command::Rollback { id, to, reason } => {
            let report = open(None)?.rollback(&id, to.as_deref(), &reason)?;
            if json {
                emit_json(&report)?;
            } else {
                say(format!(
                    "{}: rolled back from {} to {} ({})",
                    report.id, report.from_version, report.to_version, report.reason
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall { id } => {
            let removed = open(None)?.uninstall(&id)?;
            if json {
                emit_json(&json!({"id": id, "removed_versions": removed}))?;
            } else {
                say(format!(
                    "{id}: uninstalled (versions {})",
                    removed.join(", ")
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => crate::trust::scan(&args, json),
        Command::Key { command } => {
            crate::trust::key(&home.clone().map_or_else(default_home, Ok)?, command, json)
        }
        Command::Sign(args) => {
            crate::trust::sign(&home.clone().map_or_else(default_home, Ok)?, &args, json)
        }
        Command::Exec(args) => exec(&open(None)?, args, json),
        Command::History { id, limit } => history(&open(None)?, id.as_deref(), limit, json),
        Command::Doctor => crate::doctor::doctor(&open(None)?, json),
        Command::Bench(args) => crate::bench::bench(&open(None)?, args, json),
        Command::Test { dir } => crate::plugin_test::plugin_test(&open(None)?, &dir, json),
    }
}

/// `$XDG_DATA_HOME/plugd`, i.e. `~/.local/share/plugd` on Linux.
fn default_home() -> anyhow::Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("plugd")).context(
        "cannot find a data directory for plugd (no HOME?); pass --home DIR or set PLUGD_HOME",
    )
}

fn validate(path: &Path, limits: &UnpackLimits, json: bool) -> anyhow::Result<ExitCode> {
    match plugd_host::validate(path, &limits.resolve()) {
        Ok(loaded) => {
            if json {
                emit_json(&json!({
                    "valid": true,
                    "file": loaded.file,
                    "dialect": loaded.dialect.to_string(),
                    "manifest": loaded.manifest,
                }))?;
            } else {
                let m = &loaded.manifest;
                say(format!(
                    "ok: {} ({} dialect): {} {}, runtime {}, trust level {}",
                    loaded.file.display(),
                    loaded.dialect,
                    m.id,
                    m.version,
                    m.runtime,
                    m.trust_level
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(plugd_host::HostError::Manifest(plugd_manifest::LoadError::Invalid {
            path: file,
            problems,
        })) => {
            if json {
                emit_json(&json!({
                    "valid": false,
                    "file": file,
                    "problems": problems.iter().map(|p| json!({"path": p.path, "reason": p.reason})).collect::<Vec<_>>(),
                }))?;
            } else {
                say(format!(
                    "invalid: {} ({} problems)",
                    file.display(),
                    problems.len()
                ))?;
                for problem in &problems {
                    say(format!("  - {problem}"))?;
                }
            }
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(err.into()),
    }
}

fn pack(dir: &Path, output: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = plugd_manifest::load(dir)?;
    let out = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.tar.gz",
            loaded.manifest.id, loaded.manifest.version
        ))
    });
    let packed = plugd_package::pack(dir, &out)?;
    if json {
        emit_json(&json!({
            "path": packed.path,
            "id": loaded.manifest.id,
            "version": loaded.manifest.version.to_string(),
            "digest": packed.digest.to_string(),
            "archive_sha256": packed.archive_sha256.to_string(),
            "files": packed.files,
            "bytes": packed.bytes,
        }))?;
    } else {
        say(format!(
            "packed {} {} into {} ({} files, {} bytes)\n  digest {}",
            loaded.manifest.id,
            loaded.manifest.version,
            packed.path.display(),
            packed.files,
            packed.bytes,
            packed.digest
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_install(report: &InstallReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        emit_json(report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match (report.status, &report.previous_version) {
        (InstallStatus::Unchanged, _) => "already installed, nothing changed".to_string(),
        (InstallStatus::Installed, Some(prev)) => format!("installed, now active (was {prev})"),
        (InstallStatus::Installed, None) => "installed".to_string(),
    };
    say(format!(
        "{} {}: {what}\n  runtime {}, trust level {}, {} manifest\n  digest {}",
        report.id,
        report.version,
        report.runtime,
        report.trust_level,
        report.dialect,
        report.digest
    ))?;
    crate::trust::print_install_trust(report)?;
    if !report.enabled {
        say(format!(
            "  disabled: enable it with `plugd enable {}`",
            report.id
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list(host: &Host, json: bool) -> anyhow::Result<ExitCode> {
    let plugins = host.list()?;
    if json {
        emit_json(&json!({ "plugins": plugins }))?;
    } else if plugins.is_empty() {
        say(format!(
            "no plugins installed in {} (install one with `plugd install <dir|package>`)",
            host.home().display()
        ))?;
    } else {
        say(table(
            ["ID", "VERSION", "STATE", "RUNTIME", "TRUST", "DESCRIPTION"],
            plugins.into_iter().map(|p| {
                [
                    p.id,
                    p.active_version,
                    enabled_word(p.enabled).to_string(),
                    p.runtime,
                    p.trust_level,
                    p.description.unwrap_or_default(),
                ]
            }),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn enabled_word(enabled: bool) -> &'static str {
    if enabled { "enabled" } else { "disabled" }
}

fn info(host: &Host, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let plugin = host.info(id)?;
    if json {
        emit_json(&plugin)?;
        return Ok(ExitCode::SUCCESS);
    }
    say(format!("{} ({})", plugin.id, plugin.name))?;
    if let Some(description) = &plugin.description {
        say(format!("  {description}"))?;
    }
    say(format!(
        "  state {}, active version {}, runtime {}, trust level {}",
        enabled_word(plugin.enabled),
        plugin.active_version,
        plugin.runtime,
        plugin.trust_level
    ))?;
    if !plugin.actions.is_empty() {
        say(format!("  actions: {}", plugin.actions.join(", ")))?;
    }
    if let Some(active) = plugin.versions.iter().find(|v| v.active) {
        crate::trust::print_version_trust(active.signer.as_ref(), active.scan.as_ref())?;
    }
    say("\nVersions")?;
    say(table(
        ["", "VERSION", "DIGEST", "INSTALLED", "SOURCE"],
        plugin.versions.iter().map(|v| {
            [
                if v.active { "*" } else { "" }.to_string(),
                v.version.clone(),
                v.digest.clone(),
                v.installed_at.clone(),
                v.source.clone(),
            ]
        }),
    ))?;
    say("\nAudit log")?;
    say(table(
        ["AT", "EVENT", "VERSION", "FROM", "DETAIL"],
        plugin.audit.iter().map(|a| {
            [
                a.at.clone(),
                a.event.clone(),
                a.version.clone().unwrap_or_default(),
                a.from_version.clone().unwrap_or_default(),
                a.detail.clone().unwrap_or_default(),
            ]
        }),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn set_enabled(host: &Host, id: &str, enabled: bool, json: bool) -> anyhow::Result<ExitCode> {
    let changed = host.set_enabled(id, enabled)?;
    if json {
        emit_json(&json!({"id": id, "enabled": enabled, "changed": changed}))?;
    } else {
        let word = enabled_word(enabled);
        say(if changed {
            format!("{id}: {word}")
        } else {
            format!("{id}: already {word}")
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(host: &Host, args: ExecArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut call_args = match &args.args {
        Some(text) => match read_json_arg("--args", text)? {
            Value::Object(map) => map,
            other => bail!(
                "--args must be a JSON object, got {}",
                plugd_runtime::protocol::json_kind(&other)
            ),
        },
        None => Map::new(),
    };
    if !args.argv.is_empty() {
        if call_args.contains_key("argv") {
            bail!("give the argument words either after `--` or as `argv` in --args, not both");
        }
        call_args.insert("argv".into(), json!(args.argv));
    }
    let call = ExecCall {
        action: args.action,
        args: call_args,
        input_data: args
            .input
            .as_deref()
            .map(|t| read_json_arg("--input", t))
            .transpose()?,
        parameters: (!args.params.is_empty())
            .then(|| parse_params(&args.params))
            .transpose()?,
        extension_point: args.extension_point,
        context: None,
    };
    let timeout = args
        .timeout
        .map(|secs| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("--timeout must be a positive number of seconds, got {secs}")
                })
        })
        .transpose()?;
    let options = ExecOptions {
        timeout,
        trace_id: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(host.exec(&args.id, call, &options))?;
    let response = &outcome.response;
    if json {
        emit_json(&outcome)?;
    } else if outcome.runtime == "command"
        && let Some(body) = &response.body
        && body.get("exit_code").is_some()
    {
        // A command plugin is a program: show its output as it wrote it.
        use std::io::Write;
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
        std::io::stdout().write_all(text("stdout").as_bytes())?;
        std::io::stderr().write_all(text("stderr").as_bytes())?;
        if response.status != Status::Ok {
            eprintln!(
                "error: {} {}",
                outcome.plugin_id,
                response.message.as_deref().unwrap_or("failed")
            );
        }
    } else if response.status == Status::Ok {
        match &response.body {
            Some(Value::String(text)) => say(text)?,
            Some(body) => emit_json(body)?,
            None => say(response.message.as_deref().unwrap_or("ok"))?,
        }
    } else {
        eprintln!(
            "error: {} answered {} (code {}): {}",
            outcome.plugin_id,
            if response.status == Status::Busy {
                "busy"
            } else {
                "an error"
            },
            response.code.map_or("none".to_string(), |c| c.to_string()),
            response.message.as_deref().unwrap_or("no message")
        );
        if let Some(body) = &response.body {
            emit_json(body)?;
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn history(host: &Host, id: Option<&str>, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let records = host.history(id, limit)?;
    if json {
        emit_json(&json!({ "executions": records }))?;
    } else if records.is_empty() {
        say("no executions recorded")?;
    } else {
        say(table(
            [
                "STARTED", "PLUGIN", "VERSION", "ACTION", "STATUS", "CODE", "DURATION", "CPU",
                "MEM", "END", "ERROR",
            ],
            records.into_iter().map(|r| {
                [
                    r.started_at,
                    r.plugin_id,
                    r.version,
                    r.action.unwrap_or_default(),
                    r.status,
                    r.code.map(|c| c.to_string()).unwrap_or_default(),
                    format_duration(r.duration_us),
                    r.cpu_time_us.map(format_duration).unwrap_or_default(),
                    r.peak_memory_bytes.map(format_bytes).unwrap_or_default(),
                    r.end_reason.unwrap_or_default(),
                    r.error_message.unwrap_or_default(),
                ]
            }),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn format_duration(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

fn format_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

/// A JSON value given inline, or `@FILE` (`@-` for stdin).
pub(crate) fn read_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    let (source, content) = match text.strip_prefix('@') {
        Some("-") => {
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                .context("reading stdin")?;
            ("stdin".to_string(), buf)
        }
        Some(path) => (
            path.to_string(),
            std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {path}"))?,
        ),
        None => ("the command line".to_string(), text.to_string()),
    };
    serde_json::from_str(&content)
        .with_context(|| format!("{flag}: the JSON from {source} is not valid"))
}

fn parse_params(params: &[String]) -> anyhow::Result<Map<String, Value>> {
    params
        .iter()
        .map(|p| {
            let (key, value) = p
                .split_once('=')
                .with_context(|| format!("--param {p}: expected KEY=VALUE"))?;
            if key.is_empty() {
                bail!("--param {p}: the key is empty");
            }
            let value =
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
            Ok((key.to_string(), value))
        })
        .collect()
}
