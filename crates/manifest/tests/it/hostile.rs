use std::path::Path;

use plugd_manifest::{LoadError, MAX_PROBLEMS, parse};

use crate::dialects::{
    MIGRAINE_DOCKER_MANAGER, MIGRAINE_LOG_PROCESSOR, OMNISCOPE_SEED, PLUGD_FULL, STAGE7_CONTAINER,
    WINGMAN_SEED,
};

const SAMPLES: &[(&str, &str)] = &[
    ("manifest.json", OMNISCOPE_SEED),
    ("manifest.json", STAGE7_CONTAINER),
    ("plugin.yaml", MIGRAINE_LOG_PROCESSOR),
    ("plugin.yaml", MIGRAINE_DOCKER_MANAGER),
    ("manifest.yaml", WINGMAN_SEED),
    ("manifest.yaml", PLUGD_FULL),
];

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parse_as(file: &str, bytes: &[u8]) -> Result<plugd_manifest::Manifest, LoadError> {
    parse(bytes, Path::new(file))
}

#[test]
fn every_truncation_of_every_dialect_is_an_answer_not_a_panic() {
    for (file, text) in SAMPLES {
        assert!(
            parse_as(file, text.as_bytes()).is_ok(),
            "the sample itself must be valid: {file}"
        );
        let mut refused = 0;
        for end in 0..text.len() {
            // Byte-level cuts include ones inside multi-byte characters, which must be refused
            // as non-UTF-8 rather than crash.
            if parse_as(file, &text.as_bytes()[..end]).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 0, "some truncations of {file} must be refused");
    }
}

#[test]
fn mutated_manifests_are_an_answer_not_a_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let alphabet: &[u8] = b"{}[]:,\"'-#&*!|>?% \n\t0123456789.abcxyz\\\xff\xc3";
    for (file, text) in SAMPLES {
        for _ in 0..400 {
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = alphabet[rng.below(alphabet.len())],
                    1 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let _ = parse_as(file, &bytes);
        }
    }
}

#[test]
fn random_garbage_is_an_answer_not_a_panic() {
    let mut rng = XorShift(42);
    for file in ["manifest.yaml", "manifest.json", "plugin.yaml"] {
        for _ in 0..300 {
            let len = rng.below(300);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // No garbage holds a name, a version and an entry point.
            assert!(parse_as(file, &bytes).is_err());
            // Garbage made of YAML/JSON punctuation reaches the parsers' deeper paths.
            let punct: Vec<u8> = (0..len)
                .map(|_| b"{}[]:,-?&*!|> \n\"'a1"[rng.below(19)])
                .collect();
            assert!(parse_as(file, &punct).is_err());
        }
    }
}

#[test]
fn well_formed_documents_of_the_wrong_shape_are_problems() {
    for (file, text) in [
        (
            "manifest.yaml",
            "name: [a, b]\nversion: {x: 1}\nentry_point: 7\npermissions: {a: b}\nhooks: [1, 2]\n",
        ),
        (
            "plugin.yaml",
            "name: x\nversion: 1.0.0\nhooks: {event: x}\ncommands: 5\nconfig: [1]\n",
        ),
        (
            "manifest.json",
            r#"{"verb": ["X"], "version": true, "container": [], "api": 3, "security": "all", "inputDefinitions": {}}"#,
        ),
        (
            "manifest.json",
            r#"{"name": {}, "version": null, "config": "x", "dependencies": 1, "resources": []}"#,
        ),
    ] {
        match parse_as(file, text.as_bytes()) {
            Err(LoadError::Invalid { problems, .. }) => {
                assert!(problems.len() >= 3, "{file}: {problems:#?}")
            }
            other => panic!("{file}: expected problems, got {other:?}"),
        }
    }
}

#[test]
fn yaml_alias_bombs_are_refused() {
    let mut bomb = String::from(
        "name: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, next) in ('a'..='h').zip('b'..='i') {
        bomb.push_str(&format!(
            "{next}: &{next} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    assert!(matches!(
        parse_as("manifest.yaml", bomb.as_bytes()),
        Err(LoadError::Parse { .. })
    ));
    // Few aliases of one big anchor: under the parser's own limit, caught by the text budget.
    let wide = format!(
        "description: &d \"{}\"\ntags: [{}]\n",
        "x".repeat(300_000),
        vec!["*d"; 20].join(",")
    );
    let err = parse_as("manifest.yaml", wide.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("alias bomb"), "{err}");
}

#[test]
fn absurd_nesting_is_refused() {
    let deep = format!("name: x\nconfig: {}1{}\n", "[".repeat(200), "]".repeat(200));
    let err = parse_as("manifest.yaml", deep.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, LoadError::Parse { .. }) && err.to_string().contains("nested more than 64"),
        "{err}"
    );
    let deep = format!(
        "{{\"config\": {}1{}}}",
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    let err = parse_as("manifest.json", deep.as_bytes()).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err}");
}

#[test]
fn non_utf8_is_refused() {
    let err = parse_as("manifest.yaml", b"name: caf\xe9\nversion: 1.0.0\n").unwrap_err();
    assert!(
        matches!(&err, LoadError::Parse { line: Some(1), column: Some(10), message, .. } if message.contains("UTF-8")),
        "{err:?}"
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![b' '; 1024 * 1024 + 1];
    assert!(matches!(
        parse_as("manifest.json", &big),
        Err(LoadError::TooLarge {
            size: 1_048_577,
            ..
        })
    ));
}

#[test]
fn the_problem_list_is_capped() {
    let tags = vec!["''"; 1000].join(", ");
    let text = format!("id: x\nname: X\nversion: 1.0.0\nentry_point: x.py\ntags: [{tags}]\n");
    let err = parse_as("manifest.yaml", text.as_bytes()).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        problems[MAX_PROBLEMS].to_string(),
        "… and 800 more problems not listed"
    );
}

#[test]
fn unknown_file_names_are_refused() {
    let err = parse_as("manifest.toml", b"name = 'x'").unwrap_err();
    assert!(
        err.to_string().contains("not a manifest file name"),
        "{err}"
    );
}
