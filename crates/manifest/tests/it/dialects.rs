use std::time::Duration;

use plugd_manifest::{
    BlastScope, Dialect, EntryPoint, HandlerKind, HttpSpec, IoDefinition, Language, Runtime,
    TrustLevel,
};
use serde_json::json;

use crate::ok;

/// Seed 001, "Plugin Manifest", verbatim.
pub const OMNISCOPE_SEED: &str = r#"{
  "name": "my_plugin",
  "version": "1.0.0",
  "author": "Your Name",
  "author_email": "you@example.com",
  "description": "Plugin description",
  "language": "python",
  "entry_point": "my_plugin.py",
  "category": "analysis",
  "tags": ["custom", "analysis"],
  "extension_points": ["analysis"],
  "dependencies": ["numpy", "pandas"],
  "permissions": ["read_data", "write_data"],
  "config": {
    "param1": {
      "type": "string",
      "default": "value",
      "description": "Parameter description"
    }
  },
  "min_platform_version": "1.0.0"
}"#;

#[test]
fn omniscope_seed_manifest() {
    let m = ok("manifest.json", OMNISCOPE_SEED);
    assert_eq!(m.dialect, Dialect::OmniScope);
    assert_eq!(m.id, "my-plugin", "derived from the name");
    assert_eq!(m.name, "my_plugin");
    assert_eq!(m.version, semver::Version::new(1, 0, 0));
    assert_eq!(m.runtime, Runtime::File);
    assert_eq!(m.language, Some(Language::Python));
    assert_eq!(m.entry_point, EntryPoint::File("my_plugin.py".into()));
    assert_eq!(m.author.as_deref(), Some("Your Name"));
    assert_eq!(m.author_email.as_deref(), Some("you@example.com"));
    assert_eq!(m.category.as_deref(), Some("analysis"));
    assert_eq!(m.tags, ["custom", "analysis"]);
    assert_eq!(m.extension_points, ["analysis"]);
    assert_eq!(m.dependencies.python, ["numpy", "pandas"]);
    assert!(m.dependencies.r.is_empty() && m.dependencies.system.is_empty());
    let perms: Vec<(String, String)> = m
        .permissions
        .iter()
        .map(|p| (p.to_string(), p.original.clone()))
        .collect();
    assert_eq!(
        perms,
        [
            ("data:read".to_string(), "read_data".to_string()),
            ("data:write".to_string(), "write_data".to_string())
        ]
    );
    assert_eq!(m.config["param1"].kind.as_deref(), Some("string"));
    assert_eq!(
        m.config["param1"].description.as_deref(),
        Some("Parameter description")
    );
    assert_eq!(
        m.config_defaults(),
        json!({"param1": "value"}).as_object().unwrap().clone()
    );
    assert_eq!(m.min_platform_version, Some(semver::Version::new(1, 0, 0)));
    assert_eq!(m.trust_level, TrustLevel::Sandboxed);
    assert!(m.actions.is_empty());
}

#[test]
fn omniscope_r_plugin_dependencies_are_r_packages_and_the_sdk_file_name_is_the_default_entry() {
    let m = ok(
        "manifest.json",
        r#"{"name": "correlation_analyzer", "version": "1.2.0", "language": "r",
            "dependencies": ["Hmisc", "data.table"], "permissions": ["read_data", "network", "file_system"]}"#,
    );
    assert_eq!(m.language, Some(Language::R));
    assert_eq!(m.dependencies.r, ["Hmisc", "data.table"]);
    assert!(m.dependencies.python.is_empty());
    assert_eq!(
        m.entry_point,
        EntryPoint::File("correlation_analyzer.R".into())
    );
    assert_eq!(m.runtime, Runtime::File);
    let perms: Vec<String> = m.permissions.iter().map(ToString::to_string).collect();
    assert_eq!(perms, ["data:read", "net:connect", "fs:access"]);
    assert!(m.wants_network());
}

#[test]
fn omniscope_sdk_class_entry_point_runs_as_python_function() {
    let m = ok(
        "manifest.json",
        r#"{"name": "my_plugin", "version": "1.0.0", "language": "python", "entry_point": "my_plugin:MyPlugin"}"#,
    );
    assert_eq!(m.runtime, Runtime::PythonFunction);
    assert_eq!(
        m.entry_point,
        EntryPoint::ModuleClass {
            module: "my_plugin".into(),
            class: "MyPlugin".into()
        }
    );
}

/// Seed 002's manifest fragment, verbatim inside the fields every Stage7 container plugin has.
pub const STAGE7_CONTAINER: &str = r#"{
  "id": "weather-container",
  "verb": "WEATHER_CONTAINER",
  "name": "Weather Container Plugin",
  "description": "Get weather information for any location using containerized execution",
  "version": "1.0.0",
  "language": "container",
  "inputDefinitions": [
    {"name": "location", "type": "string", "required": true, "description": "Location name"}
  ],
  "outputDefinitions": [
    {"name": "temperature", "type": "number", "description": "Temperature in Celsius"}
  ],
  "container": {
    "dockerfile": "Dockerfile",
    "buildContext": "./",
    "image": "stage7/your-plugin:1.0.0",
    "ports": [{"container": 8080, "host": 0}],
    "environment": {"PLUGIN_ENV": "production"},
    "resources": {"memory": "256m", "cpu": "0.5"},
    "healthCheck": {
      "path": "/health",
      "interval": "30s",
      "timeout": "10s",
      "retries": 3
    }
  },
  "api": {
    "endpoint": "/execute",
    "method": "POST",
    "timeout": 30000
  },
  "security": {
    "permissions": ["network_access"],
    "sandboxOptions": {"timeout": 30000, "memoryLimit": "256m"}
  },
  "metadata": {
    "author": "Stage7 Team",
    "category": "utility",
    "tags": ["weather", "container", "api"]
  }
}"#;

#[test]
fn stage7_container_plugin() {
    let m = ok("manifest.json", STAGE7_CONTAINER);
    assert_eq!(m.dialect, Dialect::Stage7);
    assert_eq!(m.id, "weather-container");
    assert_eq!(m.verb.as_deref(), Some("WEATHER_CONTAINER"));
    assert_eq!(m.runtime, Runtime::Http);
    assert_eq!(m.language, Some(Language::Container));
    assert_eq!(m.entry_point, EntryPoint::File("Dockerfile".into()));
    assert_eq!(
        m.http,
        Some(HttpSpec {
            port: 8080,
            health_path: "/health".into(),
            health_interval: Duration::from_secs(30),
            health_timeout: Duration::from_secs(10),
            health_retries: 3,
            execute_path: "/execute".into(),
            method: "POST".into(),
            timeout: Duration::from_secs(30),
        })
    );
    assert_eq!(m.resources.memory, Some(256 * 1024 * 1024));
    assert_eq!(m.resources.cpu, Some(0.5));
    assert_eq!(m.resources.timeout, Some(Duration::from_secs(30)));
    let container = m.container.as_ref().unwrap();
    assert_eq!(container.image.as_deref(), Some("stage7/your-plugin:1.0.0"));
    assert_eq!(container.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(
        container.build_context.as_deref(),
        Some("."),
        "`./` is the package root"
    );
    assert_eq!(container.environment["PLUGIN_ENV"], "production");
    let perms: Vec<(String, &str)> = m
        .permissions
        .iter()
        .map(|p| (p.to_string(), p.original.as_str()))
        .collect();
    assert_eq!(perms, [("net:connect".to_string(), "network_access")]);
    assert_eq!(m.actions.len(), 1);
    assert_eq!(m.actions[0].name, "WEATHER_CONTAINER");
    assert_eq!(
        m.input_definitions,
        [IoDefinition {
            name: "location".into(),
            value_type: Some("string".into()),
            required: true,
            description: Some("Location name".into()),
        }]
    );
    assert_eq!(m.output_definitions[0].name, "temperature");
    assert!(!m.output_definitions[0].required);
    assert_eq!(m.author.as_deref(), Some("Stage7 Team"));
    assert_eq!(m.category.as_deref(), Some("utility"));
    assert_eq!(m.tags, ["weather", "container", "api"]);
}

#[test]
fn stage7_container_without_ports_or_api_uses_the_template_defaults() {
    let m = ok(
        "manifest.json",
        r#"{"verb": "PING", "version": "0.1.0", "language": "container", "container": {"network_access": true}}"#,
    );
    assert_eq!(m.http, Some(HttpSpec::default()));
    assert_eq!(
        m.name, "PING",
        "a Stage7 plugin without a name is known by its verb"
    );
    assert_eq!(m.id, "ping");
    assert!(m.wants_network());
}

/// The shape of Stage7's own python plugins (TEXT_ANALYSIS, FILE_OPS_PYTHON), with a kebab-case id.
const STAGE7_PYTHON: &str = r#"{
  "id": "plugin-file-ops",
  "verb": "FILE_OPERATION",
  "description": "Provides services for file operations: read, write, append",
  "inputDefinitions": [
    {"name": "path", "required": false, "type": "string", "description": "The path"},
    {"name": "operation", "required": true, "valueType": "string"}
  ],
  "outputDefinitions": [{"name": "result", "required": true, "type": "any"}],
  "language": "python",
  "entryPoint": {"main": "main.py", "function": "execute_plugin"},
  "operations": ["read", {"name": "write", "description": "Write content"}],
  "security": {
    "permissions": ["fs.read", "fs.write"],
    "sandboxOptions": {"allowEval": false, "timeout": 30000, "memory": 134217728},
    "trust": {"publisher": "stage7-core", "signature": null}
  },
  "version": "2.0.0",
  "metadata": {"author": "Stage7 Development Team", "tags": ["file", "io"], "category": "utility", "license": "MIT"},
  "configuration": [
    {"name": "timeout", "type": "number", "description": "Timeout in ms", "defaultValue": 30000, "required": false}
  ],
  "createdAt": "2024-12-01T00:00:00Z"
}"#;

#[test]
fn stage7_python_plugin() {
    let m = ok("manifest.json", STAGE7_PYTHON);
    assert_eq!(m.runtime, Runtime::StdioBatch);
    assert_eq!(m.language, Some(Language::Python));
    assert_eq!(m.entry_point, EntryPoint::File("main.py".into()));
    assert_eq!(m.name, "FILE_OPERATION");
    let actions: Vec<&str> = m.action_names().collect();
    assert_eq!(actions, ["FILE_OPERATION", "read", "write"]);
    assert_eq!(m.actions[2].description.as_deref(), Some("Write content"));
    assert_eq!(m.input_definitions[1].value_type.as_deref(), Some("string"));
    assert!(m.input_definitions[1].required);
    let perms: Vec<(String, &str)> = m
        .permissions
        .iter()
        .map(|p| (p.to_string(), p.original.as_str()))
        .collect();
    assert_eq!(
        perms,
        [
            ("fs:read".to_string(), "fs.read"),
            ("fs:write".to_string(), "fs.write")
        ]
    );
    assert_eq!(m.resources.memory, Some(134_217_728));
    assert_eq!(m.resources.timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        m.config_defaults(),
        json!({"timeout": 30000}).as_object().unwrap().clone()
    );
    assert_eq!(m.license.as_deref(), Some("MIT"));
    assert_eq!(m.signature, None);
    assert_eq!(m.http, None);
}

#[test]
fn stage7_type_python_without_entry_point_starts_from_main_py() {
    let m = ok(
        "manifest.json",
        r#"{"id": "t", "verb": "T", "version": "1.0.0", "type": "python"}"#,
    );
    assert_eq!(m.runtime, Runtime::StdioBatch);
    assert_eq!(m.entry_point, EntryPoint::File("main.py".into()));
}

/// Seed 003, section 1.1, verbatim.
pub const MIGRAINE_LOG_PROCESSOR: &str = r#"# plugins/log-processor.yaml
name: log-processor
version: 1.0.0
type: command-output-interceptor
description: Processes command output and logs to file

hooks:
  - event: command-output
    pattern: ".*"  # Apply to all commands
    handler:
      type: python  # or 'bash'
      module: log_processor  # Python module name
      function: process_log
    script: |
      #!/bin/bash
      # Fallback bash script if Python handler fails
      echo "$(date): $MIGRAINE_CMD_OUTPUT" >> "$MIGRAINE_LOG_FILE"

config:
  log_file: "./workflow.log"
  max_file_size: "10MB"
"#;

#[test]
fn migraine_hook_plugin() {
    let m = ok("plugin.yaml", MIGRAINE_LOG_PROCESSOR);
    assert_eq!(m.dialect, Dialect::Migraine);
    assert_eq!(m.id, "log-processor");
    assert_eq!(m.runtime, Runtime::PythonFunction);
    assert_eq!(m.language, Some(Language::Python));
    assert_eq!(
        m.entry_point,
        EntryPoint::ModuleFunction {
            module: "log_processor".into(),
            function: "process_log".into()
        }
    );
    assert_eq!(m.entry_point.to_string(), "log_processor:process_log");
    assert_eq!(m.category.as_deref(), Some("command-output-interceptor"));
    let hook = &m.hooks[0];
    assert_eq!(hook.event, "command-output");
    assert_eq!(hook.pattern.as_deref(), Some(".*"));
    let handler = hook.handler.as_ref().unwrap();
    assert_eq!(handler.kind, HandlerKind::Python);
    assert_eq!(handler.module.as_deref(), Some("log_processor"));
    assert!(hook.script.as_deref().unwrap().starts_with("#!/bin/bash\n"));
    assert_eq!(
        m.config_defaults(),
        json!({"log_file": "./workflow.log", "max_file_size": "10MB"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(m.config["log_file"].kind.as_deref(), Some("string"));
}

/// Seed 003, section 2.2, verbatim, inside a plugin.
#[test]
fn migraine_hook_with_bash_on_error() {
    let m = ok(
        "plugin.yaml",
        r#"name: server-monitor
version: 0.3.0
hooks:
  - event: post-command
    pattern: "server.*start"
    handler:
      type: python
      module: server_monitor
      function: monitor_server
    on_error:
      type: bash
      script: |
        # Fallback bash script
        echo "Server monitoring failed, using bash fallback" >> /tmp/migraine.log
"#,
    );
    let on_error = m.hooks[0].on_error.as_ref().unwrap();
    assert_eq!(on_error.kind, HandlerKind::Bash);
    assert!(
        on_error
            .script
            .as_deref()
            .unwrap()
            .contains("bash fallback")
    );
    assert_eq!(m.entry_point.to_string(), "server_monitor:monitor_server");
}

/// Seed 003, section 4.2, verbatim.
pub const MIGRAINE_DOCKER_MANAGER: &str = r#"# plugins/docker-manager/plugin.yaml
name: docker-manager
version: "1.0.0"
description: "Docker container and image management tools"
author: "Plugin Developer"
license: "MIT"

# Plugin capabilities and commands it provides
commands:
  - name: docker-list-containers
    description: "List running Docker containers"
    usage: "migraine plugin docker-manager docker-list-containers [options]"
  - name: docker-build-image
    description: "Build Docker image from context"
    usage: "migraine plugin docker-manager docker-build-image --file Dockerfile --tag myimage:latest"
  - name: docker-deploy
    description: "Deploy container to Docker"
    usage: "migraine plugin docker-manager docker-deploy --image myapp:latest --port 8080"
  - name: docker-logs
    description: "Get logs from container"
    usage: "migraine plugin docker-manager docker-logs --container myapp"

# Dependencies this plugin requires
dependencies:
  - docker
  - docker-socket  # Unix socket access

# Configuration options
config:
  docker_socket: "/var/run/docker.sock"
  default_registry: "docker.io"

hooks:
  # Can still have hooks that integrate with workflows if needed
  - event: "workflow:post-deploy"
    command: "docker-logs --container {{container_name}}"

# Installation requirements
install_requires:
  - "docker CLI tools"
  - "Docker daemon running"
"#;

#[test]
fn migraine_standalone_command_plugin() {
    let m = ok("plugin.yaml", MIGRAINE_DOCKER_MANAGER);
    assert_eq!(m.runtime, Runtime::Command);
    assert_eq!(
        m.entry_point,
        EntryPoint::File("docker-manager".into()),
        "named like the plugin"
    );
    assert_eq!(m.language, Some(Language::Exec));
    let commands: Vec<&str> = m.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        commands,
        [
            "docker-list-containers",
            "docker-build-image",
            "docker-deploy",
            "docker-logs"
        ]
    );
    let actions: Vec<&str> = m.action_names().collect();
    assert_eq!(actions, commands, "each command is also an action");
    assert_eq!(
        m.commands[3].usage.as_deref(),
        Some("migraine plugin docker-manager docker-logs --container myapp")
    );
    assert_eq!(m.dependencies.system, ["docker", "docker-socket"]);
    assert_eq!(
        m.hooks[0].command.as_deref(),
        Some("docker-logs --container {{container_name}}")
    );
    assert_eq!(
        m.config["docker_socket"].default,
        Some(json!("/var/run/docker.sock"))
    );
    assert_eq!(m.license.as_deref(), Some("MIT"));
}

/// Seed 004, "Manifest Schema", verbatim.
pub const WINGMAN_SEED: &str = r#"id: my-plugin                    # Unique ID (kebab-case)
name: My Plugin                  # Human-readable name
version: 1.0.0                   # Semantic version
author: your-name                # Author/organization
description: What this plugin does

trust_level: sandboxed           # trusted | verified | sandboxed
permissions:                     # Required permissions
  - docker:read
  - docker:restart

blast_radius:
  scope: container               # vm | container | host | network
  mutates_state: true            # Does it modify state?
  reversible: true               # Can actions be undone?

python_requires: ">=3.11"
dependencies:                    # pip packages (sandboxed: ignored)
  - httpx>=0.24.0

entry_point: plugin:MyPlugin     # module:ClassName
"#;

#[test]
fn wingman_seed_manifest() {
    let m = ok("manifest.yaml", WINGMAN_SEED);
    assert_eq!(m.dialect, Dialect::Plugd);
    assert_eq!(m.id, "my-plugin");
    assert_eq!(m.name, "My Plugin");
    assert_eq!(m.runtime, Runtime::PythonFunction);
    assert_eq!(m.language, Some(Language::Python));
    assert_eq!(
        m.entry_point,
        EntryPoint::ModuleClass {
            module: "plugin".into(),
            class: "MyPlugin".into()
        }
    );
    assert_eq!(m.trust_level, TrustLevel::Sandboxed);
    let perms: Vec<String> = m.permissions.iter().map(ToString::to_string).collect();
    assert_eq!(perms, ["docker:read", "docker:restart"]);
    let blast = m.blast_radius.as_ref().unwrap();
    assert_eq!(blast.scope, Some(BlastScope::Container));
    assert_eq!(
        (blast.mutates_state, blast.reversible),
        (Some(true), Some(true))
    );
    assert_eq!(m.python_requires.as_deref(), Some(">=3.11"));
    assert_eq!(m.dependencies.python, ["httpx>=0.24.0"]);
    assert!(!m.wants_network());
}

/// plugd's own format, using every section.
pub const PLUGD_FULL: &str = r#"
id: full-demo
name: Full Demo
version: 2.1.0-beta.1
author: plugd
author_email: dev@plugd.invalid
description: |
  Uses every field of plugd's own manifest.
license: Apache-2.0
homepage: https://plugd.invalid/full-demo
category: demo
tags: [demo, test]
runtime: ndjson
language: bash
entry_point: bin/run.sh
actions:
  - echo
  - name: reverse
    description: Reverses a string
    input: {type: object, properties: {text: {type: string}}}
    output_schema: {type: string}
commands:
  - name: status
    usage: full-demo status
extension_points: [pre-command, preprocessing]
hooks:
  - event: pre-command
    pattern: "^deploy"
    priority: 10
    handler: {type: bash, script: hooks/pre.sh}
permissions: ["net:connect:example.com:443", "fs:read:/data", "proxmox:snapshot:create"]
trust_level: verified
blast_radius: {scope: host, mutates_state: false}
dependencies:
  plugins: {base-lib: "^1.2", other: ">=0.3, <0.5"}
  python: [requests]
  r: [ggplot2]
  system: [jq]
config:
  threshold: {type: number, default: 0.5, description: Cut-off}
  mode: {type: string, default: fast, options: [fast, slow]}
  token: {type: string, description: No default}
resources: {memory: 512MB, cpu: 2, timeout: 1m, processes: 32}
min_platform_version: 0.1.0
signature: RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3
x-vendor-extension: allowed and ignored
"#;

#[test]
fn plugd_full_manifest() {
    let m = ok("manifest.yaml", PLUGD_FULL);
    assert_eq!(m.version.to_string(), "2.1.0-beta.1");
    assert_eq!(m.runtime, Runtime::Ndjson);
    assert_eq!(m.language, Some(Language::Bash));
    assert_eq!(m.entry_point, EntryPoint::File("bin/run.sh".into()));
    assert_eq!(m.actions.len(), 2);
    assert_eq!(
        m.actions[1].input,
        Some(json!({"type": "object", "properties": {"text": {"type": "string"}}}))
    );
    assert_eq!(m.actions[1].output, Some(json!({"type": "string"})));
    assert_eq!(m.commands[0].name, "status");
    assert_eq!(m.hooks[0].priority, 10);
    assert_eq!(
        m.hooks[0].handler.as_ref().unwrap().script.as_deref(),
        Some("hooks/pre.sh")
    );
    let q: Vec<(&str, &str, Option<&str>)> = m
        .permissions
        .iter()
        .map(|p| {
            (
                p.resource.as_str(),
                p.action.as_str(),
                p.qualifier.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        q,
        [
            ("net", "connect", Some("example.com:443")),
            ("fs", "read", Some("/data")),
            ("proxmox", "snapshot", Some("create")),
        ]
    );
    assert_eq!(m.trust_level, TrustLevel::Verified);
    assert_eq!(
        m.dependencies.plugins["other"],
        semver::VersionReq::parse(">=0.3, <0.5").unwrap()
    );
    assert_eq!(m.dependencies.r, ["ggplot2"]);
    assert_eq!(m.dependencies.system, ["jq"]);
    assert_eq!(
        m.config_defaults(),
        json!({"threshold": 0.5, "mode": "fast"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(m.resources.memory, Some(512 * 1024 * 1024));
    assert_eq!(m.resources.cpu, Some(2.0));
    assert_eq!(m.resources.timeout, Some(Duration::from_secs(60)));
    assert_eq!(m.resources.processes, Some(32));
    assert!(m.signature.is_some());
}

#[test]
fn plugd_http_runtime_with_its_own_http_section() {
    let m = ok(
        "manifest.yaml",
        "id: web\nname: Web\nversion: 1.0.0\nruntime: http\nentry_point: server.py\n\
         http: {port: 9000, health_path: /healthz, timeout: 5, method: put}\n",
    );
    let http = m.http.unwrap();
    assert_eq!(http.port, 9000);
    assert_eq!(http.health_path, "/healthz");
    assert_eq!(http.timeout, Duration::from_secs(5));
    assert_eq!(http.method, "PUT");
    assert_eq!(http.execute_path, "/execute");
}

#[test]
fn yaml_files_with_other_names_are_told_apart_by_content() {
    // Seed 003 keeps single-file plugins as plugins/<name>.yaml.
    let m = ok("log-processor.yaml", MIGRAINE_LOG_PROCESSOR);
    assert_eq!(m.dialect, Dialect::Migraine);
    let m = ok("wingman.yaml", WINGMAN_SEED);
    assert_eq!(m.dialect, Dialect::Plugd);
}
