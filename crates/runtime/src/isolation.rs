//! Where a plugin process runs: directly, or confined by plugd's sandbox.
//!
//! Every runtime starts its processes through [`launch`], so the choice between a
//! plain child and a sandboxed one is made in one place. Launch builders
//! ([`crate::ndjson_launch`] and the others) check files on the host and write host
//! paths into their [`LaunchSpec`]; inside the sandbox the plugin directory is
//! shown at `/plugin` and the work directory at `/work`, so [`launch`] rewrites
//! those path prefixes with [`LaunchSpec::seen_through`] rather than every builder
//! knowing about the sandbox.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use plugd_sandbox::{Monitor, MonitorError, Outcome, Policy, Sandbox, Target};

use crate::{LaunchSpec, RuntimeError};

/// How plugin processes are started.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// A plain child process: no confinement beyond its own process group.
    /// For tests and for hosts that run without the sandbox (and say so).
    Direct,
    /// Through plugd's sandbox with this policy (which, for `trusted` plugins,
    /// applies limits and the `/plugin` and `/work` views only).
    Sandboxed {
        /// The sandbox (helper binary and probed layers), shared.
        sandbox: Arc<Sandbox>,
        /// What confines this plugin.
        policy: Box<Policy>,
    },
}

impl Isolation {
    /// The host → sandbox path pairs this isolation shows the plugin: the bind
    /// whose target is `/plugin` and the policy's work dir at `/work`. Empty for
    /// [`Isolation::Direct`], where the plugin sees host paths.
    pub fn views(&self) -> Vec<(PathBuf, PathBuf)> {
        match self {
            Isolation::Direct => Vec::new(),
            Isolation::Sandboxed { policy, .. } => {
                let mut views: Vec<(PathBuf, PathBuf)> = policy
                    .binds
                    .iter()
                    .filter(|b| b.target == Path::new(plugd_sandbox::policy::PLUGIN_MOUNT))
                    .map(|b| (b.source.clone(), b.target.clone()))
                    .collect();
                if let Some(work) = &policy.work_dir {
                    views.push((
                        work.clone(),
                        PathBuf::from(plugd_sandbox::policy::WORK_MOUNT),
                    ));
                }
                views
            }
        }
    }

    /// Whether plugin processes run confined.
    pub fn is_sandboxed(&self) -> bool {
        matches!(self, Isolation::Sandboxed { .. })
    }
}

/// A started plugin process, with the sandbox monitor when there is one.
#[derive(Debug)]
pub struct Launched {
    /// The process plugd waits for: the plugin itself, or the sandbox helper
    /// whose stdio is the plugin's.
    pub child: tokio::process::Child,
    /// Reports setup failures and, at the end, the accounting.
    pub monitor: Option<Monitor>,
}

impl Launched {
    /// Waits until the plugin itself is running. A sandbox that could not be set
    /// up becomes [`RuntimeError::SandboxSetup`], naming the step that failed.
    pub async fn wait_started(&mut self, plugin: &str) -> Result<(), RuntimeError> {
        let Some(mut monitor) = self.monitor.take() else {
            return Ok(());
        };
        let (monitor, started) = tokio::task::spawn_blocking(move || {
            let started = monitor.wait_started();
            (monitor, started)
        })
        .await
        .map_err(|e| RuntimeError::SandboxSetup {
            plugin: plugin.to_string(),
            detail: format!("the sandbox monitor task failed: {e}"),
        })?;
        self.monitor = Some(monitor);
        match started {
            Ok(_) => Ok(()),
            Err(e) => Err(RuntimeError::SandboxSetup {
                plugin: plugin.to_string(),
                detail: e.to_string(),
            }),
        }
    }
}

/// How a sandboxed process ended, read from its monitor after the process exited.
/// `None` without a sandbox; an error when the helper left no report (it was
/// killed with SIGKILL, e.g. after a timeout).
pub async fn accounting(monitor: Option<Monitor>) -> Option<Result<Outcome, MonitorError>> {
    let monitor = monitor?;
    tokio::task::spawn_blocking(move || monitor.finish())
        .await
        .ok()
}

/// When the sandbox ended a plugin for a limit, the error response plugd made
/// ("killed by signal 9") is rewritten to say which limit, with code 300
/// (resource exhausted) — or 301 for the sandbox's own wall-clock limit. A
/// response the plugin itself sent is left alone.
pub fn explain_limit(response: &mut crate::protocol::Response, outcome: &Outcome) {
    use crate::protocol::{Status, codes};
    use plugd_sandbox::EndReason;
    let from_plugd = response
        .meta
        .as_ref()
        .and_then(|m| m.get("origin"))
        .is_some_and(|o| o == "plugd");
    if response.status != Status::Error || !from_plugd {
        return;
    }
    let (code, why) = match outcome.reason {
        EndReason::Memory => (
            codes::RESOURCE_EXHAUSTED,
            "it used more memory than its limit (raise `resources.memory` in the manifest if it needs more)",
        ),
        EndReason::Pids => (
            codes::RESOURCE_EXHAUSTED,
            "it started more processes than its limit (`resources.processes`)",
        ),
        EndReason::CpuTime => (codes::RESOURCE_EXHAUSTED, "it used up its CPU time limit"),
        EndReason::Timeout => (codes::TIMEOUT, "it ran past the sandbox's wall-clock limit"),
        EndReason::Exit { .. } | EndReason::Signal { .. } => return,
    };
    let before = response.message.take().unwrap_or_default();
    response.code = Some(code);
    response.message = Some(format!("the sandbox stopped the plugin: {why} ({before})"));
}

/// Starts `spec` as `isolation` says, with stdio piped and the process leading its
/// own process group, killed if the handle is dropped. Needs a tokio runtime.
pub fn launch(spec: &LaunchSpec, isolation: &Isolation) -> Result<Launched, RuntimeError> {
    match isolation {
        Isolation::Direct => Ok(Launched {
            child: crate::spawn(spec)?,
            monitor: None,
        }),
        Isolation::Sandboxed { sandbox, policy } => {
            let seen = spec.seen_through(&isolation.views());
            let target = target_of(&seen)?;
            let mut command =
                sandbox
                    .command(policy, &target)
                    .map_err(|e| RuntimeError::SandboxSetup {
                        plugin: spec.label(),
                        detail: e.to_string(),
                    })?;
            {
                use std::os::unix::process::CommandExt;
                command
                    .command_mut()
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
            }
            let (child, monitor) = command
                .spawn_with(|c| {
                    let mut c = tokio::process::Command::from(c);
                    c.kill_on_drop(true);
                    c.spawn()
                })
                .map_err(|source| RuntimeError::Spawn {
                    plugin: spec.label(),
                    program: sandbox.helper().program().to_path_buf(),
                    cwd: spec.cwd.clone(),
                    source,
                })?;
            Ok(Launched {
                child,
                monitor: Some(monitor),
            })
        }
    }
}

/// The sandbox takes UTF-8 strings (they travel as JSON to the helper).
fn target_of(spec: &LaunchSpec) -> Result<Target, RuntimeError> {
    let text = |s: &std::ffi::OsStr| {
        s.to_str()
            .map(str::to_string)
            .ok_or_else(|| RuntimeError::SandboxSetup {
                plugin: spec.label(),
                detail: format!(
                    "{} is not valid UTF-8, which the sandbox needs for paths, arguments and the environment",
                    s.to_string_lossy()
                ),
            })
    };
    let mut target = Target::new(&spec.program).cwd(&spec.cwd);
    target.program = PathBuf::from(text(spec.program.as_os_str())?);
    for a in &spec.args {
        target.args.push(text(a)?);
    }
    for (k, v) in &spec.env {
        target.env.push((text(k)?, text(v)?));
    }
    Ok(target)
}

impl LaunchSpec {
    /// This spec as a process sees it through `views` (host prefix → seen
    /// prefix): every path-like value (program, arguments, working directory,
    /// environment values, `:`-separated lists such as `PYTHONPATH` included)
    /// that starts with a host prefix is rewritten to start with the seen one.
    pub fn seen_through(&self, views: &[(PathBuf, PathBuf)]) -> LaunchSpec {
        let map_path = |p: &Path| -> PathBuf {
            for (host, seen) in views {
                if let Ok(rest) = p.strip_prefix(host) {
                    return if rest.as_os_str().is_empty() {
                        seen.clone()
                    } else {
                        seen.join(rest)
                    };
                }
            }
            p.to_path_buf()
        };
        let map_value = |v: &OsString| -> OsString {
            let Some(s) = v.to_str() else {
                return v.clone();
            };
            if !s.starts_with('/') {
                return v.clone();
            }
            s.split(':')
                .map(|part| map_path(Path::new(part)).to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
                .into()
        };
        LaunchSpec {
            program: map_path(&self.program),
            args: self.args.iter().map(map_value).collect(),
            cwd: map_path(&self.cwd),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), map_value(v)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_through_rewrites_prefixes_only() {
        let spec = LaunchSpec {
            program: "/usr/bin/python3".into(),
            args: vec!["/store/p/1/plugin.py".into(), "--flag".into()],
            cwd: "/home/work/x".into(),
            env: vec![
                ("PYTHONPATH".into(), "/store/p/1:/opt/lib".into()),
                ("HOME".into(), "/home/work/x".into()),
                ("NAME".into(), "store".into()),
                ("NEAR".into(), "/store/p/10/other".into()),
            ],
        };
        let views = vec![
            (PathBuf::from("/store/p/1"), PathBuf::from("/plugin")),
            (PathBuf::from("/home/work/x"), PathBuf::from("/work")),
        ];
        let seen = spec.seen_through(&views);
        assert_eq!(seen.program, PathBuf::from("/usr/bin/python3"));
        assert_eq!(seen.args[0], OsString::from("/plugin/plugin.py"));
        assert_eq!(seen.args[1], OsString::from("--flag"));
        assert_eq!(seen.cwd, PathBuf::from("/work"));
        assert_eq!(
            seen.env_var("PYTHONPATH"),
            Some(std::ffi::OsStr::new("/plugin:/opt/lib"))
        );
        assert_eq!(seen.env_var("HOME"), Some(std::ffi::OsStr::new("/work")));
        assert_eq!(seen.env_var("NAME"), Some(std::ffi::OsStr::new("store")));
        // A sibling directory that merely shares a string prefix is not rewritten.
        assert_eq!(
            seen.env_var("NEAR"),
            Some(std::ffi::OsStr::new("/store/p/10/other"))
        );
    }
}
