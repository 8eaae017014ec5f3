//! The health check `update` runs on a new version before making it active
//! (DESIGN §6): the version is started exactly as a call would start it (same
//! launch, same sandbox) and must answer `health` with `ok`.

use std::time::Duration;

use plugd_manifest::Runtime;
use plugd_runtime::protocol::RequestType;
use plugd_runtime::{CallOptions, Worker};

use crate::confine::ProcessShape;
use crate::{Host, HostError};

/// What the health check of a new version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// It answered `health` with `ok`.
    Healthy,
    /// Its runtime has no health request (one process per call, or an HTTP
    /// server whose `/health` is polled on every start).
    NotApplicable,
}

impl Host {
    /// Starts `id@version` once, asks `health`, shuts it down. An answer other
    /// than `ok` (or none) is [`HostError::Unhealthy`].
    pub(crate) fn health_check(&self, id: &str, version: &str) -> Result<Health, HostError> {
        let manifest = self.stored_manifest(id, version)?;
        if !matches!(manifest.runtime, Runtime::Ndjson | Runtime::PythonFunction) {
            return Ok(Health::NotApplicable);
        }
        let plugin_dir = self.store.version_dir(id, version);
        let work_dir = self.work_dir(&format!("health-{id}-{version}"))?;
        let options = CallOptions::from_env();
        let (spec, extra_paths) = self.warm_launch(&manifest, &plugin_dir, work_dir.path())?;
        let isolation = self.isolation_for(
            &manifest,
            &ProcessShape {
                plugin_dir: &plugin_dir,
                work_dir: work_dir.path(),
                program: &spec.program,
                extra_paths: &extra_paths,
                timeout: options.health_timeout + options.shutdown_grace,
                http_server: false,
            },
        )?;
        let unhealthy = |reason: String| HostError::Unhealthy {
            id: id.to_string(),
            version: version.to_string(),
            reason,
        };
        // The host may itself be inside an async runtime (a server): the check
        // gets its own thread and runtime rather than blocking that one.
        let verdict = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<(), String> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("cannot start an async runtime: {e}"))?;
                    runtime.block_on(async {
                        let label = spec.label();
                        let mut launched =
                            plugd_runtime::launch(&spec, &isolation).map_err(|e| e.to_string())?;
                        launched
                            .wait_started(&label)
                            .await
                            .map_err(|e| e.to_string())?;
                        let worker = Worker::start(launched.child, label, options.limits);
                        let answer = worker
                            .request(RequestType::Health, None, options.health_timeout)
                            .await;
                        let stderr = worker.stderr_tail();
                        worker.shutdown(Duration::from_secs(2)).await;
                        match answer {
                            Ok(r) if r.is_ok() => Ok(()),
                            Ok(r) => Err(format!(
                                "it answered health with {} {}{}",
                                r.status,
                                r.code.unwrap_or_default(),
                                r.message.map(|m| format!(": {m}")).unwrap_or_default()
                            )),
                            Err(e) => Err(format!(
                                "{e}{}",
                                if stderr.is_empty() {
                                    String::new()
                                } else {
                                    format!("; stderr: {}", stderr.trim())
                                }
                            )),
                        }
                    })
                })
                .join()
                .unwrap_or_else(|_| Err("the health check panicked".to_string()))
        });
        verdict.map(|()| Health::Healthy).map_err(unhealthy)
    }
}
